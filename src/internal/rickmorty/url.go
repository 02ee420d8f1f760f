package rickmorty

import (
	"math"
	"net/url"
	"strconv"
	"strings"
)

// ParseURL returns the resource and id an item URL points at, taken from its
// last two path segments whatever the scheme and host, so that
// "https://rickandmortyapi.com/api/location/3" and a mirror's
// "http://127.0.0.1:8080/api/location/3" both give ("location", 3, true).
// ok is false for an empty URL (an unknown origin or location), a resource
// other than Resources, or an id that is not a canonical decimal in
// [1, 2147483647]. A query, a fragment and one trailing slash are ignored.
func ParseURL(rawURL string) (resource string, id int, ok bool) {
	segs := pathSegments(rawURL)
	if len(segs) < 2 {
		return "", 0, false
	}
	resource, idText := segs[len(segs)-2], segs[len(segs)-1]
	if !KnownResource(resource) {
		return "", 0, false
	}
	id, ok = parseID(idText)
	if !ok {
		return "", 0, false
	}
	return resource, id, true
}

// ParseResourceURL returns the resource a listing URL names by its last path
// segment ("https://rickandmortyapi.com/api/character" gives "character").
// ok is false when that segment is not one of Resources.
func ParseResourceURL(rawURL string) (resource string, ok bool) {
	segs := pathSegments(rawURL)
	if len(segs) == 0 || !KnownResource(segs[len(segs)-1]) {
		return "", false
	}
	return segs[len(segs)-1], true
}

// ResourceURL is the listing URL of resource under base (the API root, such
// as DefaultBaseURL).
func ResourceURL(base, resource string) string {
	return strings.TrimRight(base, "/") + "/" + resource
}

// PageURL is the URL of page n of resource under base.
func PageURL(base, resource string, n int) string {
	return ResourceURL(base, resource) + "?page=" + strconv.Itoa(n)
}

// ItemURL is the URL of one item of resource under base.
func ItemURL(base, resource string, id int) string {
	return ResourceURL(base, resource) + "/" + strconv.Itoa(id)
}

func pathSegments(rawURL string) []string {
	if rawURL == "" {
		return nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil
	}
	p := strings.TrimSuffix(u.Path, "/")
	if p == "" {
		return nil
	}
	return strings.Split(strings.TrimPrefix(p, "/"), "/")
}

// parseID accepts a canonical positive decimal that fits an INT column:
// no sign, no leading zero, no spaces.
func parseID(s string) (int, bool) {
	if s == "" || len(s) > 10 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > math.MaxInt32 {
		return 0, false
	}
	return int(n), true
}
