package rickmorty

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url      string
		resource string
		id       int
		ok       bool
	}{
		{"https://rickandmortyapi.com/api/character/38", "character", 38, true},
		{"http://127.0.0.1:8080/api/location/3", "location", 3, true},
		{"https://mirror.example/v2/rm/api/episode/51/", "episode", 51, true},
		{"https://rickandmortyapi.com/api/episode/7?x=1#frag", "episode", 7, true},
		{"/api/character/1", "character", 1, true},
		{"https://rickandmortyapi.com/api/character/2147483647", "character", 2147483647, true},
		{"", "", 0, false}, // unknown origin
		{"https://rickandmortyapi.com/api/character/", "", 0, false},
		{"https://rickandmortyapi.com/api/character", "", 0, false},
		{"https://rickandmortyapi.com/api/character/avatar/1.jpeg", "", 0, false},
		{"https://rickandmortyapi.com/api/planet/3", "", 0, false},
		{"https://rickandmortyapi.com/api/Character/3", "", 0, false},
		{"https://rickandmortyapi.com/api/character/0", "", 0, false},
		{"https://rickandmortyapi.com/api/character/-3", "", 0, false},
		{"https://rickandmortyapi.com/api/character/+3", "", 0, false},
		{"https://rickandmortyapi.com/api/character/007", "", 0, false},
		{"https://rickandmortyapi.com/api/character/3a", "", 0, false},
		{"https://rickandmortyapi.com/api/character/2147483648", "", 0, false},
		{"https://rickandmortyapi.com/api/character/99999999999999999999", "", 0, false},
		{"https://rickandmortyapi.com/api/character/1,2,3", "", 0, false},
		{"https://rickandmortyapi.com/api/character/%31", "character", 1, true}, // decoded path
		{"::not a url", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			r, id, ok := ParseURL(tt.url)
			if r != tt.resource || id != tt.id || ok != tt.ok {
				t.Errorf("ParseURL(%q) = %q, %d, %v; want %q, %d, %v", tt.url, r, id, ok, tt.resource, tt.id, tt.ok)
			}
		})
	}
}

func TestParseResourceURLAndBuilders(t *testing.T) {
	if r, ok := ParseResourceURL("http://127.0.0.1:9/api/episode"); !ok || r != "episode" {
		t.Errorf("ParseResourceURL = %q, %v", r, ok)
	}
	if _, ok := ParseResourceURL("http://127.0.0.1:9/api"); ok {
		t.Error("ParseResourceURL(root) ok")
	}
	if got := PageURL("http://h/api/", "character", 7); got != "http://h/api/character?page=7" {
		t.Errorf("PageURL = %q", got)
	}
	if got := ItemURL(DefaultBaseURL, "location", 3); got != "https://rickandmortyapi.com/api/location/3" {
		t.Errorf("ItemURL = %q", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"Sun, 22 Nov 2026 06:00:30 GMT", 30 * time.Second, true}, // RFC 1123
		{"Sunday, 22-Nov-26 06:01:00 GMT", time.Minute, true},     // RFC 850
		{"Sun Nov 22 06:00:05 2026", 5 * time.Second, true},       // ANSI C
		{"Sun, 22 Nov 2026 05:59:00 GMT", 0, true},                // in the past
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestClientGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("User-Agent") != "test-agent" {
				http.Error(w, "no user agent", 400)
				return
			}
			io.WriteString(w, `{"ok":true}`)
		case "/throttled":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":"slow down"}`)
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"There is nothing here"}`)
		case "/short":
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, `{"info":`)
			// the handler returns with 92 bytes missing: the connection is closed
		case "/large":
			w.Write(bytes.Repeat([]byte("x"), 2048))
		}
	}))
	defer srv.Close()
	c := &Client{HTTP: srv.Client(), UserAgent: "test-agent", MaxBody: 1024}
	ctx := context.Background()

	if b, err := c.Get(ctx, srv.URL+"/ok"); err != nil || string(b) != `{"ok":true}` {
		t.Errorf("ok: %q, %v", b, err)
	}
	_, err := c.Get(ctx, srv.URL+"/throttled")
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 429 || se.RetryAfter != "3" || !se.Retryable() {
		t.Errorf("throttled: %#v", err)
	}
	_, err = c.Get(ctx, srv.URL+"/missing")
	if !errors.As(err, &se) || se.StatusCode != 404 || se.Retryable() || se.Body != `{"error":"There is nothing here"}` {
		t.Errorf("missing: %#v", err)
	}
	if _, err = c.Get(ctx, srv.URL+"/short"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short body: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err = c.Get(ctx, srv.URL+"/large"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("large body: %v, want ErrTooLarge", err)
	}
}

// The types reproduce the real API's JSON: decoding every item of the
// snapshot and encoding it again gives the same bytes (field names, order,
// empty strings and arrays, unescaped non-ASCII and '&').
func TestTypesRoundTripTheSnapshot(t *testing.T) {
	dir := testenv.Snapshot(t)
	check := func(t *testing.T, file string, decode func(json.RawMessage) (any, error)) {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var items []json.RawMessage
		if err := json.Unmarshal(b, &items); err != nil {
			t.Fatal(err)
		}
		for i, raw := range items {
			v, err := decode(raw)
			if err != nil {
				t.Fatalf("item %d: %v", i, err)
			}
			var want, got bytes.Buffer
			json.Compact(&want, raw)
			enc := json.NewEncoder(&got)
			enc.SetEscapeHTML(false)
			enc.Encode(v)
			if g := bytes.TrimSpace(got.Bytes()); !bytes.Equal(g, want.Bytes()) {
				t.Fatalf("item %d does not round-trip:\n got %s\nwant %s", i, g, want.Bytes())
			}
		}
	}
	t.Run("character", func(t *testing.T) {
		check(t, "character.json", func(r json.RawMessage) (any, error) {
			var c Character
			err := json.Unmarshal(r, &c)
			if err == nil && c.Origin.URL != "" {
				if res, id, ok := ParseURL(c.Origin.URL); !ok || res != ResourceLocation || id < 1 {
					t.Errorf("character %d: origin %q does not parse", c.ID, c.Origin.URL)
				}
			}
			if _, perr := ParseCreated(c.Created); perr != nil {
				t.Error(perr)
			}
			return c, err
		})
	})
	t.Run("location", func(t *testing.T) {
		check(t, "location.json", func(r json.RawMessage) (any, error) {
			var l Location
			err := json.Unmarshal(r, &l)
			return l, err
		})
	})
	t.Run("episode", func(t *testing.T) {
		check(t, "episode.json", func(r json.RawMessage) (any, error) {
			var e Episode
			err := json.Unmarshal(r, &e)
			if _, perr := ParseAirDate(e.AirDate); perr != nil {
				t.Error(perr)
			}
			return e, err
		})
	})
}

func TestPageDecodes(t *testing.T) {
	const body = `{"info":{"count":826,"pages":42,"next":"https://rickandmortyapi.com/api/character?page=2","prev":null},"results":[{"id":1,"name":"Rick Sanchez","status":"Alive","species":"Human","type":"","gender":"Male","origin":{"name":"unknown","url":""},"location":{"name":"Citadel of Ricks","url":"https://rickandmortyapi.com/api/location/3"},"image":"https://rickandmortyapi.com/api/character/avatar/1.jpeg","episode":["https://rickandmortyapi.com/api/episode/1"],"url":"https://rickandmortyapi.com/api/character/1","created":"2017-11-04T18:48:46.250Z"}]}`
	var p Page[Character]
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Info.Count != 826 || p.Info.Pages != 42 || p.Info.Prev != nil || p.Info.Next == nil || len(p.Results) != 1 {
		t.Fatalf("page = %+v", p)
	}
	c := p.Results[0]
	if c.Origin != (Ref{Name: "unknown", URL: ""}) || c.Location.URL == "" || c.Type != "" {
		t.Errorf("character = %+v", c)
	}
	created, err := ParseCreated(c.Created)
	if err != nil || created.Format(TimeLayout) != c.Created {
		t.Errorf("created %q: %v, %v", c.Created, created, err)
	}
	if d, err := ParseAirDate("December 2, 2013"); err != nil || d.Format("2006-01-02") != "2013-12-02" {
		t.Errorf("air date: %v, %v", d, err)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"https://rickandmortyapi.com/api/character/38", "", "/api/location/1/", "http://h/api/episode/2147483648", "x/character/0", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, id, ok := ParseURL(s)
		if !ok {
			if r != "" || id != 0 {
				t.Fatalf("not ok but %q, %d", r, id)
			}
			return
		}
		if !KnownResource(r) || id < 1 || id > 2147483647 {
			t.Fatalf("ParseURL(%q) = %q, %d", s, r, id)
		}
		if r2, id2, ok2 := ParseURL(ItemURL("http://mirror/api", r, id)); !ok2 || r2 != r || id2 != id {
			t.Fatalf("round trip of %q, %d: %q, %d, %v", r, id, r2, id2, ok2)
		}
	})
}
