package transform

import (
	"strings"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// Resource is an API resource.
type Resource string

// The API's resources, named as in their URLs.
const (
	Character Resource = "character"
	Location  Resource = "location"
	Episode   Resource = "episode"
)

// Tables returns the warehouse tables a file of resource r fills, in the
// order Transform writes them.
func (r Resource) Tables() []string {
	switch r {
	case Character:
		return []string{warehouse.Characters, warehouse.CharacterEpisodes}
	case Location:
		return []string{warehouse.Locations}
	case Episode:
		return []string{warehouse.Episodes, warehouse.CharacterEpisodes}
	}
	return nil
}

func resourceNamed(s string) (Resource, bool) {
	switch r := Resource(s); r {
	case Character, Location, Episode:
		return r, true
	}
	return "", false
}

// parseURL returns the resource and id an API URL names: its last two path
// segments, whatever the host (a mirror or a fake API serves the same paths),
// e.g. https://rickandmortyapi.com/api/character/1. It accepts absolute
// http(s) URLs only; the id must be a canonical decimal in 1..2147483647
// (as rickmorty.ParseURL); a query or fragment is ignored, and so is one
// trailing slash.
func parseURL(u string) (Resource, int64, bool) {
	rest, ok := cutPrefixFold(u, "https://")
	if !ok {
		if rest, ok = cutPrefixFold(u, "http://"); !ok {
			return "", 0, false
		}
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] == '?' || rest[i] == '#' {
			rest = rest[:i]
			break
		}
	}
	host, path, ok := strings.Cut(rest, "/")
	if !ok || host == "" {
		return "", 0, false
	}
	path = strings.TrimSuffix(path, "/")
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", 0, false
	}
	idText := path[i+1:]
	if idText == "" || len(idText) > 10 || idText[0] == '0' { // canonical decimal only
		return "", 0, false
	}
	var id int64
	for i := 0; i < len(idText); i++ {
		c := idText[i]
		if c < '0' || c > '9' {
			return "", 0, false
		}
		id = id*10 + int64(c-'0')
	}
	if id <= 0 || id > maxID {
		return "", 0, false
	}
	seg := path[:i]
	seg = seg[strings.LastIndexByte(seg, '/')+1:]
	r, ok := resourceNamed(seg)
	if !ok {
		return "", 0, false
	}
	return r, id, true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// ResourceFromKey returns the resource a raw key's path names:
// raw/<resource>/... .
func ResourceFromKey(key string) (Resource, bool) {
	seg, ok := bucket.RawResource(key)
	if !ok {
		return "", false
	}
	return resourceNamed(seg)
}

// checkKeyLengths returns an InvalidObjectError when an output of rawKey
// (a processed CSV of one of its resource's tables, or its rejected file)
// would have a key longer than S3 accepts: a permanent problem of the object.
func checkKeyLengths(rawKey string) error {
	var tables []string
	if r, ok := ResourceFromKey(rawKey); ok {
		tables = r.Tables()
	} else {
		for _, t := range warehouse.Tables() {
			tables = append(tables, t.Name)
		}
	}
	if err := bucket.CheckOutputKeys(rawKey, tables); err != nil {
		return invalid("%v", err)
	}
	return nil
}
