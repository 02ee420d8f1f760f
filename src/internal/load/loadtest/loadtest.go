// Package loadtest generates processed CSVs, as Transform writes them, for
// tests and benchmarks of Load: deterministic crawls of pages of every table,
// with awkward text (quotes, commas, newlines, `\N`, ’ ζ Á, empty strings),
// NULLs, and links listed from both sides.
package loadtest

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// File is one processed object.
type File struct {
	Key   string // processed/<table>/<resource>/page-NNNN.csv
	Table string
	Body  []byte
	Rows  [][]tablecsv.Field
}

// Crawl describes one generated crawl of the API.
type Crawl struct {
	Characters, Locations, Episodes int // entities (ids 1..n)
	PageSize                        int // rows per page (default 20)
	// FetchedAt is when the first page was fetched; page i of a resource is
	// fetched i seconds later.
	FetchedAt time.Time
	// Revision changes the values of some entities (every 5th), as a later
	// crawl of a changing API would see them. Revision 0 is the original.
	Revision int
}

func (c Crawl) pageSize() int {
	if c.PageSize > 0 {
		return c.PageSize
	}
	return 20
}

// Files returns the crawl's processed files: for every page of characters,
// locations and episodes, its table's file, and for character and episode
// pages the character_episodes file of the links they list.
func (c Crawl) Files() []File {
	var files []File
	ps := c.pageSize()
	page := func(resource, table string, total int, row func(id int, fetched time.Time) []tablecsv.Field, links func(id int) [][2]int) {
		for p := 0; p*ps < total; p++ {
			fetched := c.FetchedAt.Add(time.Duration(p) * time.Second)
			var rows, linkRows [][]tablecsv.Field
			for id := p*ps + 1; id <= min((p+1)*ps, total); id++ {
				rows = append(rows, row(id, fetched))
				if links != nil {
					for _, l := range links(id) {
						linkRows = append(linkRows, []tablecsv.Field{itoa(l[0]), itoa(l[1])})
					}
				}
			}
			page := bucket.PageKey(resource, p+1)
			files = append(files, newFile(bucket.ProcessedKey(table, page), table, rows))
			if links != nil {
				files = append(files, newFile(bucket.ProcessedKey(warehouse.CharacterEpisodes, page), warehouse.CharacterEpisodes, linkRows))
			}
		}
	}
	page("location", warehouse.Locations, c.Locations, c.location, nil)
	page("character", warehouse.Characters, c.Characters, c.character, func(id int) [][2]int {
		var out [][2]int
		for _, e := range c.episodesOf(id) {
			out = append(out, [2]int{id, e})
		}
		return out
	})
	page("episode", warehouse.Episodes, c.Episodes, c.episode, func(id int) [][2]int {
		var out [][2]int
		for ch := 1; ch <= c.Characters; ch++ {
			if slices.Contains(c.episodesOf(ch), id) {
				out = append(out, [2]int{ch, id})
			}
		}
		return out
	})
	return files
}

func newFile(key, table string, rows [][]tablecsv.Field) File {
	t, _ := warehouse.Lookup(table)
	var b bytes.Buffer
	if err := Write(&b, t, rows); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	return File{Key: key, Table: table, Body: b.Bytes(), Rows: rows}
}

// Write writes a processed CSV of t: the header, then rows.
func Write(w io.Writer, t warehouse.Table, rows [][]tablecsv.Field) error {
	cw := tablecsv.NewWriter(w)
	if err := cw.WriteHeader(t.Header()); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(r); err != nil {
			return err
		}
	}
	return cw.Flush()
}

// changed reports whether entity id has different values in this revision.
func (c Crawl) changed(id int) bool { return c.Revision > 0 && id%5 == 0 }

func (c Crawl) rev(id int) string {
	if c.changed(id) {
		return " (rev " + strconv.Itoa(c.Revision) + ")"
	}
	return ""
}

var awkward = []string{"’ ζ Á", `say "hi", then`, "two\nlines", `\N`, "NULL", "", " ", "=1+2", "'; DROP TABLE characters; --", "comma, inside"}

func created(id int) time.Time {
	return time.Date(2017, 11, 4, 18, 48, 46, 0, time.UTC).Add(time.Duration(id) * 1234567 * time.Microsecond).Truncate(time.Millisecond)
}

func (c Crawl) location(id int, fetched time.Time) []tablecsv.Field {
	return []tablecsv.Field{
		itoa(id), tablecsv.Text(fmt.Sprintf("Location %d%s", id, c.rev(id))),
		tablecsv.Text(awkward[id%len(awkward)]), tablecsv.Text(fmt.Sprintf("Dimension C-%d", id%13)),
		tablecsv.Text(fmt.Sprintf("https://rickandmortyapi.com/api/location/%d", id)),
		tablecsv.Text(warehouse.FormatTime(created(id))), tablecsv.Text(warehouse.FormatTime(fetched)),
	}
}

func (c Crawl) character(id int, fetched time.Time) []tablecsv.Field {
	status := []string{"Alive", "Dead", "unknown"}[id%3]
	if c.changed(id) {
		status = "Dead"
	}
	origin, originName := tablecsv.Null, "unknown"
	if id%4 != 0 && c.Locations > 0 {
		o := id%c.Locations + 1
		origin, originName = itoa(o), fmt.Sprintf("Location %d", o)
	}
	location, locationName := tablecsv.Null, ""
	if id%6 != 0 && c.Locations > 0 {
		l := (id*7)%c.Locations + 1
		location, locationName = itoa(l), fmt.Sprintf("Location %d", l)
	}
	return []tablecsv.Field{
		itoa(id), tablecsv.Text(fmt.Sprintf("Character %d%s", id, c.rev(id))), tablecsv.Text(status),
		tablecsv.Text([]string{"Human", "Alien", "Humanoid", "Robot"}[id%4]), tablecsv.Text(awkward[id%len(awkward)]),
		tablecsv.Text([]string{"Male", "Female", "Genderless", "unknown"}[id%4]),
		origin, tablecsv.Text(originName), location, tablecsv.Text(locationName),
		tablecsv.Text(fmt.Sprintf("https://rickandmortyapi.com/api/character/avatar/%d.jpeg", id)),
		tablecsv.Text(fmt.Sprintf("https://rickandmortyapi.com/api/character/%d", id)),
		tablecsv.Text(warehouse.FormatTime(created(id))), tablecsv.Text(warehouse.FormatTime(fetched)),
	}
}

func (c Crawl) episode(id int, fetched time.Time) []tablecsv.Field {
	season, number := (id-1)/11+1, (id-1)%11+1
	air := time.Date(2013, 12, 2, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 7*id)
	return []tablecsv.Field{
		itoa(id), tablecsv.Text(fmt.Sprintf("Episode %d%s", id, c.rev(id))), tablecsv.Text(warehouse.FormatDate(air)),
		tablecsv.Text(fmt.Sprintf("S%02dE%02d", season, number)), itoa(season), itoa(number),
		tablecsv.Text(fmt.Sprintf("https://rickandmortyapi.com/api/episode/%d", id)),
		tablecsv.Text(warehouse.FormatTime(created(id))), tablecsv.Text(warehouse.FormatTime(fetched)),
	}
}

// episodesOf lists the episodes character id appears in.
func (c Crawl) episodesOf(id int) []int {
	if c.Episodes == 0 {
		return nil
	}
	var out []int
	for k := 0; k < 1+id%3; k++ {
		e := (id*(k+3))%c.Episodes + 1
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

func itoa(n int) tablecsv.Field { return tablecsv.Text(strconv.Itoa(n)) }

// Expected returns, per table, the data dump (warehousedb.DumpData) that loading
// files in any order must produce: for each key, the row with the latest
// fetched_at (the last such in files order on ties).
func Expected(files []File) map[string]string {
	type keyed struct {
		key     [2]int64
		fetched string
		row     []tablecsv.Field
	}
	best := map[string]map[[2]int64]keyed{}
	for _, f := range files {
		t, _ := warehouse.Lookup(f.Table)
		if best[f.Table] == nil {
			best[f.Table] = map[[2]int64]keyed{}
		}
		for _, r := range f.Rows {
			var k [2]int64
			for i := range t.Key {
				k[i], _ = strconv.ParseInt(r[i].Value, 10, 64)
			}
			fetched := ""
			if t.Versioned {
				fetched = r[len(r)-1].Value
			}
			if old, ok := best[f.Table][k]; ok && old.fetched > fetched {
				continue
			}
			best[f.Table][k] = keyed{k, fetched, r}
		}
	}
	out := map[string]string{}
	for _, t := range warehouse.Tables() {
		var rows []keyed
		for _, r := range best[t.Name] {
			rows = append(rows, r)
		}
		slices.SortFunc(rows, func(a, b keyed) int {
			if a.key[0] != b.key[0] {
				return int(a.key[0] - b.key[0])
			}
			return int(a.key[1] - b.key[1])
		})
		var body [][]tablecsv.Field
		for _, r := range rows {
			body = append(body, r.row)
		}
		var b bytes.Buffer
		_ = Write(&b, t, body)
		out[t.Name] = b.String()
	}
	return out
}
