package extract

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

// listing is what page 1 of a resource establishes for the others.
type listing struct {
	Count int // info.count
	Pages int // info.pages
	Size  int // results on every page but the last
}

// page is a decoded page header: what validation needs, nothing more.
type page struct {
	Count, Pages int
	HasNext      bool
	HasPrev      bool
	Results      int
}

// errInvalidJSON marks a body that is not JSON at all: possibly a transient
// corruption, so the fetch is retried.
var errInvalidJSON = errors.New("body is not valid JSON")

// checkPage validates the shape of page n of resource: an object with
// info{count,pages,next,prev} and results[], every result an object with a
// positive integer id and a url naming this resource and id (from its last
// path segments, whatever the host), no id twice, and info consistent with
// the page's position (prev null only on page 1, next null only on the
// last, n within pages).
func checkPage(resource string, n int, body []byte) (page, error) {
	if !json.Valid(body) {
		return page{}, errInvalidJSON
	}
	var doc struct {
		Info *struct {
			Count *int            `json:"count"`
			Pages *int            `json:"pages"`
			Next  json.RawMessage `json:"next"`
			Prev  json.RawMessage `json:"prev"`
		} `json:"info"`
		Results *[]json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return page{}, fmt.Errorf("decoding page: %w", err)
	}
	switch {
	case doc.Info == nil:
		return page{}, errors.New("no info object")
	case doc.Info.Count == nil || doc.Info.Pages == nil:
		return page{}, errors.New("info lacks count or pages")
	case *doc.Info.Count < 0 || *doc.Info.Pages < 0:
		return page{}, fmt.Errorf("negative info.count %d or info.pages %d", *doc.Info.Count, *doc.Info.Pages)
	case doc.Results == nil:
		return page{}, errors.New("no results array")
	}
	next, err := link(doc.Info.Next, "next")
	if err != nil {
		return page{}, err
	}
	prev, err := link(doc.Info.Prev, "prev")
	if err != nil {
		return page{}, err
	}
	p := page{Count: *doc.Info.Count, Pages: *doc.Info.Pages, HasNext: next, HasPrev: prev, Results: len(*doc.Results)}
	switch {
	case p.Count == 0:
		return p, errors.New("the listing is empty (info.count 0)")
	case n > p.Pages:
		return p, fmt.Errorf("page %d is past info.pages %d", n, p.Pages)
	case p.HasPrev != (n > 1):
		return p, fmt.Errorf("info.prev is %s on page %d", nullOrNot(p.HasPrev), n)
	case p.HasNext != (n < p.Pages):
		return p, fmt.Errorf("info.next is %s on page %d of %d", nullOrNot(p.HasNext), n, p.Pages)
	case p.Results == 0:
		return p, errors.New("no results")
	}
	seen := make(map[int64]bool, p.Results)
	for i, raw := range *doc.Results {
		var it struct {
			ID  json.RawMessage `json:"id"`
			URL *string         `json:"url"`
		}
		if err := json.Unmarshal(raw, &it); err != nil {
			return p, fmt.Errorf("result %d is not an object: %w", i, err)
		}
		if len(it.ID) == 0 || string(it.ID) == "null" {
			return p, fmt.Errorf("result %d has no id", i)
		}
		id, err := strconv.ParseInt(string(it.ID), 10, 64) // a JSON integer: no quotes, fraction or exponent
		if err != nil || id < 1 || id > math.MaxInt32 {
			return p, fmt.Errorf("result %d: id %s is not a positive integer", i, it.ID)
		}
		if seen[id] {
			return p, fmt.Errorf("result %d: id %d appears twice", i, id)
		}
		seen[id] = true
		if it.URL == nil || *it.URL == "" {
			return p, fmt.Errorf("result %d (id %d) has no url", i, id)
		}
		r, uid, ok := rickmorty.ParseURL(*it.URL)
		if !ok || r != resource || int64(uid) != id {
			return p, fmt.Errorf("result %d (id %d): url %q does not name %s %d", i, id, *it.URL, resource, id)
		}
	}
	return p, nil
}

func link(raw json.RawMessage, name string) (present bool, err error) {
	if len(raw) == 0 {
		return false, fmt.Errorf("info lacks %s", name)
	}
	if string(raw) == "null" {
		return false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || s == "" {
		return false, fmt.Errorf("info.%s is neither a URL nor null", name)
	}
	return true, nil
}

func nullOrNot(present bool) string {
	if present {
		return "set"
	}
	return "null"
}

// firstPage validates page 1 and returns the listing it establishes: the
// page size is its number of results, and info.pages must be what
// info.count and that size give.
func firstPage(resource string, body []byte) (listing, error) {
	p, err := checkPage(resource, 1, body)
	if err != nil {
		return listing{}, err
	}
	l := listing{Count: p.Count, Pages: p.Pages, Size: p.Results}
	if want := (l.Count + l.Size - 1) / l.Size; l.Pages != want || (l.Pages == 1 && p.Results != l.Count) {
		return listing{}, fmt.Errorf("info.pages %d and info.count %d disagree with %d results on page 1", l.Pages, l.Count, p.Results)
	}
	return l, nil
}

// laterPage validates page n > 1 against page 1's listing. When the page's
// count or pages differ from page 1's, the dataset changed during the crawl:
// the page is still valid as served, and drifted reports the change.
func laterPage(resource string, n int, body []byte, first listing) (drifted *page, err error) {
	p, err := checkPage(resource, n, body)
	if err != nil {
		return nil, err
	}
	if p.Count != first.Count || p.Pages != first.Pages {
		if p.Results > first.Size {
			return nil, fmt.Errorf("%d results, more than page 1's %d", p.Results, first.Size)
		}
		return &p, nil
	}
	want := first.Size
	if n == first.Pages {
		want = first.Count - (first.Pages-1)*first.Size
	}
	if p.Results != want {
		return nil, fmt.Errorf("%d results, want %d (count %d, %d per page)", p.Results, want, first.Count, first.Size)
	}
	return nil, nil
}

// checkRoot validates the root document and returns the known resources it
// lists (the last path segment of each URL, whatever the host) and the
// listing URLs it holds that name no known resource.
func checkRoot(body []byte) (listed map[string]bool, ignored []string, err error) {
	if !json.Valid(body) {
		return nil, nil, errInvalidJSON
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("root document is not an object: %w", err)
	}
	listed = map[string]bool{}
	for key, raw := range doc {
		var u string
		if json.Unmarshal(raw, &u) != nil {
			ignored = append(ignored, key)
			continue
		}
		if r, ok := rickmorty.ParseResourceURL(u); ok {
			listed[r] = true
		} else {
			ignored = append(ignored, key)
		}
	}
	if len(listed) == 0 {
		return nil, ignored, errors.New("root document lists no known resource")
	}
	return listed, ignored, nil
}
