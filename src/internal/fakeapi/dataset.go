package fakeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

// Dataset is what a fake API serves: the items of each resource sorted by id,
// each held as the exact JSON the API emits for it (compact, fields in the
// API's order, non-ASCII and '&' written as themselves).
type Dataset struct {
	res map[string]*collection
}

type collection struct {
	items []item
	byID  map[int]int // id → index in items
}

type item struct {
	id     int
	raw    []byte            // compact JSON of the item
	fields map[string]string // the string fields the API filters on
}

// filterable lists, per resource, the query parameters the API filters on.
var filterable = map[string][]string{
	rickmorty.ResourceCharacter: {"name", "status", "species", "type", "gender"},
	rickmorty.ResourceLocation:  {"name", "type", "dimension"},
	rickmorty.ResourceEpisode:   {"name", "episode"},
}

// Load reads character.json, location.json and episode.json from dir, each
// a JSON array of items exactly as the API serves them (such as the offline
// snapshot in ../shared/rickandmorty). Items are kept byte for byte, minus
// insignificant whitespace, in the field order of the files.
func Load(dir string) (*Dataset, error) {
	raws := map[string][]json.RawMessage{}
	for _, r := range rickmorty.Resources {
		path := filepath.Join(dir, r+".json")
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(b, &arr); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		raws[r] = arr
	}
	return fromRaw(raws)
}

// FromItems builds a Dataset from typed items, serialized as the API does.
func FromItems(characters []rickmorty.Character, locations []rickmorty.Location, episodes []rickmorty.Episode) (*Dataset, error) {
	raws := map[string][]json.RawMessage{}
	var err error
	if raws[rickmorty.ResourceCharacter], err = marshalAll(characters); err != nil {
		return nil, err
	}
	if raws[rickmorty.ResourceLocation], err = marshalAll(locations); err != nil {
		return nil, err
	}
	if raws[rickmorty.ResourceEpisode], err = marshalAll(episodes); err != nil {
		return nil, err
	}
	return fromRaw(raws)
}

func marshalAll[T any](items []T) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(items))
	for i, it := range items {
		b, err := marshal(it)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// marshal encodes v the way JavaScript's JSON.stringify does for the API's
// data: compact, and without Go's escaping of <, > and & (the real data has
// "Rick & Morty's Thanksploitation Spectacular").
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func fromRaw(raws map[string][]json.RawMessage) (*Dataset, error) {
	d := &Dataset{res: map[string]*collection{}}
	for _, r := range rickmorty.Resources {
		c := &collection{byID: map[int]int{}}
		for i, raw := range raws[r] {
			it, err := newItem(r, raw)
			if err != nil {
				return nil, fmt.Errorf("%s item %d: %w", r, i, err)
			}
			c.items = append(c.items, it)
		}
		sort.SliceStable(c.items, func(i, j int) bool { return c.items[i].id < c.items[j].id })
		for i, it := range c.items {
			if _, dup := c.byID[it.id]; dup {
				return nil, fmt.Errorf("%s: duplicate id %d", r, it.id)
			}
			c.byID[it.id] = i
		}
		d.res[r] = c
	}
	return d, nil
}

func newItem(resource string, raw json.RawMessage) (item, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return item{}, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &obj); err != nil {
		return item{}, fmt.Errorf("not an object: %w", err)
	}
	var id int
	if err := json.Unmarshal(obj["id"], &id); err != nil || id < 1 {
		return item{}, errors.New("no positive integer id")
	}
	it := item{id: id, raw: buf.Bytes(), fields: map[string]string{}}
	for _, f := range filterable[resource] {
		var s string
		if json.Unmarshal(obj[f], &s) == nil {
			it.fields[f] = s
		}
	}
	return it, nil
}

// Count is the number of items of resource.
func (d *Dataset) Count(resource string) int {
	if c := d.res[resource]; c != nil {
		return len(c.items)
	}
	return 0
}

// Pages is the number of pages of resource.
func (d *Dataset) Pages(resource string) int {
	return pages(d.Count(resource))
}

func pages(n int) int {
	return (n + rickmorty.PageSize - 1) / rickmorty.PageSize
}

// Page renders page n of resource as the fake API serves it when its API root
// is base (such as "http://127.0.0.1:8080/api"), which the next and prev
// links point at. ok is false past the last page.
func (d *Dataset) Page(resource string, n int, base string) (body []byte, ok bool) {
	c := d.res[resource]
	if c == nil {
		return nil, false
	}
	return renderPage(c.items, resource, n, base, "")
}

// renderPage writes {"info":{...},"results":[...]} for page n of items;
// query is appended to the next and prev links (the filters, "&name=rick").
func renderPage(items []item, resource string, n int, base, query string) ([]byte, bool) {
	total := pages(len(items))
	if n < 1 || n > total {
		return nil, false
	}
	link := func(p int) []byte {
		b, _ := marshal(rickmorty.PageURL(base, resource, p) + query)
		return b
	}
	var buf bytes.Buffer
	buf.WriteString(`{"info":{"count":`)
	buf.WriteString(strconv.Itoa(len(items)))
	buf.WriteString(`,"pages":`)
	buf.WriteString(strconv.Itoa(total))
	buf.WriteString(`,"next":`)
	if n < total {
		buf.Write(link(n + 1))
	} else {
		buf.WriteString("null")
	}
	buf.WriteString(`,"prev":`)
	if n > 1 {
		buf.Write(link(n - 1))
	} else {
		buf.WriteString("null")
	}
	buf.WriteString(`},"results":[`)
	end := min(n*rickmorty.PageSize, len(items))
	for i, it := range items[(n-1)*rickmorty.PageSize : end] {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it.raw)
	}
	buf.WriteString("]}")
	return buf.Bytes(), true
}

// filter returns the items matching the API's filters: each given parameter
// is a case-insensitive substring of the field, except a gender starting
// with "male", which must be a prefix (so "male" does not match "Female").
func (c *collection) filter(params []param) []item {
	if len(params) == 0 {
		return c.items
	}
	var out []item
	for _, it := range c.items {
		if matches(it, params) {
			out = append(out, it)
		}
	}
	return out
}

func matches(it item, params []param) bool {
	for _, p := range params {
		v, want := strings.ToLower(it.fields[p.key]), strings.ToLower(p.value)
		if p.key == "gender" && strings.HasPrefix(want, "male") {
			if !strings.HasPrefix(v, want) {
				return false
			}
			continue
		}
		if !strings.Contains(v, want) {
			return false
		}
	}
	return true
}

// param is one filter of a listing request, in request order.
type param struct{ key, value string }
