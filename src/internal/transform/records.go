package transform

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// Fields of the API's resources (the union of the three).
const (
	fID = iota
	fName
	fStatus
	fSpecies
	fType
	fGender
	fOrigin
	fLocation
	fImage
	fEpisode
	fURL
	fCreated
	fDimension
	fResidents
	fAirDate
	fCharacters
	nFields
)

var fieldNames = [nFields]string{
	"id", "name", "status", "species", "type", "gender", "origin", "location", "image", "episode",
	"url", "created", "dimension", "residents", "air_date", "characters",
}

func fieldIndex(name string) int {
	switch name {
	case "id":
		return fID
	case "name":
		return fName
	case "status":
		return fStatus
	case "species":
		return fSpecies
	case "type":
		return fType
	case "gender":
		return fGender
	case "origin":
		return fOrigin
	case "location":
		return fLocation
	case "image":
		return fImage
	case "episode":
		return fEpisode
	case "url":
		return fURL
	case "created":
		return fCreated
	case "dimension":
		return fDimension
	case "residents":
		return fResidents
	case "air_date":
		return fAirDate
	case "characters":
		return fCharacters
	}
	return -1
}

// recordFields are the raw values of a record's known members (nil: absent).
type recordFields struct {
	v    [nFields][]byte
	dups []string
}

func (f *recordFields) load(raw []byte) {
	*f = recordFields{dups: f.dups[:0]}
	members(raw, func(key, val []byte) {
		var i int
		if len(key) >= 2 && bytes.IndexByte(key, '\\') < 0 {
			i = fieldIndex(string(key[1 : len(key)-1]))
		} else if s, ok := unquote(key); ok {
			i = fieldIndex(s)
		} else {
			return
		}
		if i < 0 {
			return // unknown members are ignored
		}
		if f.v[i] != nil {
			f.dups = append(f.dups, fieldNames[i])
			return
		}
		f.v[i] = val
	})
}

// isString reports whether the raw value v is a JSON string.
func isString(v []byte) bool { return len(v) > 0 && v[0] == '"' }

// process validates one record of the decided resource and writes its rows,
// or rejects it.
func (t *transformer) process(index int, raw []byte) error {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return t.reject(index, 0, raw, fmt.Sprintf("record is %s, want an object", kind(raw[i:])))
	}
	t.f.load(raw)
	e := errField{raw: raw, rs: string(raw)}
	for _, d := range t.f.dups {
		e.add(d, "repeated key")
	}
	var id int64
	var write func() error
	switch t.res {
	case Character:
		id, write = t.character(&e)
	case Location:
		id, write = t.location(&e)
	case Episode:
		id, write = t.episode(&e)
	}
	if !e.ok() {
		return t.reject(index, id, raw, strings.Join(e.msgs, "; "))
	}
	if first, dup := t.seen[id]; dup {
		t.rep.Duplicates++
		return t.reject(index, id, raw, fmt.Sprintf("id: duplicate of the record at index %d, which is kept", first))
	}
	t.seen[id] = index
	return write()
}

// self checks the record's url: it must name this file's resource and the
// record's id.
func (t *transformer) self(e *errField, id int64) string {
	u := e.str("url", t.f.v[fURL])
	if !isString(t.f.v[fURL]) {
		return u
	}
	r, uid, ok := parseURL(u)
	switch {
	case !ok:
		e.add("url", "not an API resource URL: %s", clip(u))
	case r != t.res:
		told := "its first item's url"
		if t.rep.ResourceFrom == "key" {
			told = "its key"
		}
		e.add("url", "names a %s, but this object holds %ss (told by %s)", r, t.res, told)
	case id != 0 && uid != id:
		e.add("url", "names id %d, the record's id is %d", uid, id)
	}
	return u
}

// created reads the API's timestamp as a processed-CSV datetime.
func (t *transformer) created(e *errField) string {
	v := t.f.v[fCreated]
	s := e.str("created", v)
	if !isString(v) {
		return ""
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		e.add("created", "not an RFC 3339 time: %s", clip(s))
		return ""
	}
	if ts = ts.UTC(); ts.Year() < 1000 {
		e.add("created", "year %d is before 1000", ts.Year())
		return ""
	}
	return ts.Format(warehouse.TimeLayout)
}

// place reads a character's origin or location: {"name":..., "url":...};
// url "" (unknown) gives a NULL id.
func (t *transformer) place(e *errField, field string, v []byte) (tablecsv.Field, string) {
	if v == nil {
		e.add(field, "missing")
		return tablecsv.Null, ""
	}
	if v[0] != '{' {
		e.add(field, "must be an object, got %s", kind(v))
		return tablecsv.Null, ""
	}
	var name, url []byte
	var repeated bool
	members(v, func(key, val []byte) {
		switch {
		case keyIs(key, "name"):
			repeated = repeated || name != nil
			name = val
		case keyIs(key, "url"):
			repeated = repeated || url != nil
			url = val
		}
	})
	if repeated {
		e.add(field, "repeated key")
	}
	n := e.str(field+".name", name)
	u := e.str(field+".url", url)
	if !isString(url) || u == "" {
		return tablecsv.Null, n
	}
	r, id, ok := parseURL(u)
	if !ok || r != Location {
		e.add(field+".url", "not a location URL: %s", clip(u))
		return tablecsv.Null, n
	}
	return t.intField(id), n
}

// refs reads a list of API URLs of resource want and returns their ids,
// sorted and without repeats.
func (t *transformer) refs(e *errField, field string, v []byte, want Resource) []int64 {
	if v == nil {
		e.add(field, "missing")
		return nil
	}
	if v[0] != '[' {
		e.add(field, "must be an array, got %s", kind(v))
		return nil
	}
	var ids []int64
	bad := false
	elements(v, func(i int, el []byte) {
		if bad {
			return
		}
		s, ok := e.text(el)
		if !ok {
			e.add(fmt.Sprintf("%s[%d]", field, i), "must be a string, got %s", kind(el))
			bad = true
			return
		}
		if want == "" {
			return
		}
		r, id, ok := parseURL(s)
		if !ok || r != want {
			e.add(fmt.Sprintf("%s[%d]", field, i), "not %s URL: %s", article(want), clip(s))
			bad = true
			return
		}
		ids = append(ids, id)
	})
	return sortedUnique(ids)
}

func article(r Resource) string {
	if r == Episode {
		return "an episode"
	}
	return "a " + string(r)
}

func (t *transformer) character(e *errField) (int64, func() error) {
	f := &t.f
	id := e.id("id", f.v[fID])
	name := e.str("name", f.v[fName])
	status := e.str("status", f.v[fStatus])
	species := e.str("species", f.v[fSpecies])
	typ := e.str("type", f.v[fType])
	gender := e.str("gender", f.v[fGender])
	originID, originName := t.place(e, "origin", f.v[fOrigin])
	locationID, locationName := t.place(e, "location", f.v[fLocation])
	image := e.str("image", f.v[fImage])
	episodes := t.refs(e, "episode", f.v[fEpisode], Episode)
	url := t.self(e, id)
	created := t.created(e)
	return id, func() error {
		idf := t.intField(id)
		t.fields = append(t.fields[:0],
			idf, tablecsv.Text(name), tablecsv.Text(status), tablecsv.Text(species), tablecsv.Text(typ),
			tablecsv.Text(gender), originID, tablecsv.Text(originName), locationID, tablecsv.Text(locationName),
			tablecsv.Text(image), tablecsv.Text(url), tablecsv.Text(created), tablecsv.Text(t.fetchedAt))
		if err := t.row(warehouse.Characters, t.fields); err != nil {
			return err
		}
		for _, ep := range episodes {
			t.fields = append(t.fields[:0], idf, t.intField(ep))
			if err := t.row(warehouse.CharacterEpisodes, t.fields); err != nil {
				return err
			}
		}
		return nil
	}
}

func (t *transformer) location(e *errField) (int64, func() error) {
	f := &t.f
	id := e.id("id", f.v[fID])
	name := e.str("name", f.v[fName])
	typ := e.str("type", f.v[fType])
	dimension := e.str("dimension", f.v[fDimension])
	t.refs(e, "residents", f.v[fResidents], "") // type-checked, not stored
	url := t.self(e, id)
	created := t.created(e)
	return id, func() error {
		t.fields = append(t.fields[:0],
			t.intField(id), tablecsv.Text(name), tablecsv.Text(typ), tablecsv.Text(dimension),
			tablecsv.Text(url), tablecsv.Text(created), tablecsv.Text(t.fetchedAt))
		return t.row(warehouse.Locations, t.fields)
	}
}

func (t *transformer) episode(e *errField) (int64, func() error) {
	f := &t.f
	id := e.id("id", f.v[fID])
	name := e.str("name", f.v[fName])
	airDate := e.str("air_date", f.v[fAirDate])
	if isString(f.v[fAirDate]) {
		if d, err := time.Parse("January 2, 2006", airDate); err != nil {
			e.add("air_date", `not a date like "December 2, 2013": %s`, clip(airDate))
		} else if d.Year() < 1000 {
			e.add("air_date", "year %d is before 1000", d.Year())
		} else {
			airDate = d.Format(warehouse.DateLayout)
		}
	}
	code := e.str("episode", f.v[fEpisode])
	season, number, ok := parseEpisodeCode(code)
	if !ok && isString(f.v[fEpisode]) {
		e.add("episode", "not an episode code like S01E01: %s", clip(code))
	}
	characters := t.refs(e, "characters", f.v[fCharacters], Character)
	url := t.self(e, id)
	created := t.created(e)
	return id, func() error {
		idf := t.intField(id)
		t.fields = append(t.fields[:0],
			idf, tablecsv.Text(name), tablecsv.Text(airDate), tablecsv.Text(code),
			t.intField(season), t.intField(number), tablecsv.Text(url), tablecsv.Text(created), tablecsv.Text(t.fetchedAt))
		if err := t.row(warehouse.Episodes, t.fields); err != nil {
			return err
		}
		for _, ch := range characters {
			t.fields = append(t.fields[:0], t.intField(ch), idf)
			if err := t.row(warehouse.CharacterEpisodes, t.fields); err != nil {
				return err
			}
		}
		return nil
	}
}

// parseEpisodeCode splits "S01E01" into season and episode number (1 to 4
// digits each).
func parseEpisodeCode(s string) (season, number int64, ok bool) {
	rest, ok := strings.CutPrefix(s, "S")
	if !ok {
		return 0, 0, false
	}
	sd, nd, ok := strings.Cut(rest, "E")
	if !ok || !digits(sd) || !digits(nd) {
		return 0, 0, false
	}
	season, _ = strconv.ParseInt(sd, 10, 64)
	number, _ = strconv.ParseInt(nd, 10, 64)
	return season, number, true
}

func digits(s string) bool {
	if len(s) == 0 || len(s) > 4 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
