package fakeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

func mustGenerate(t testing.TB, sz Sizes, seed uint64) *Dataset {
	t.Helper()
	ds, err := Generate(sz, seed)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func get(t testing.TB, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func TestRoutes(t *testing.T) {
	srv := httptest.NewServer(New(mustGenerate(t, DefaultSizes, 1), Options{}))
	defer srv.Close()
	api := srv.URL + "/api"
	tests := []struct {
		path   string
		status int
		want   string // the body, or its start when it ends with "…"
	}{
		{"/api", 200, `{"characters":"` + api + `/character","locations":"` + api + `/location","episodes":"` + api + `/episode"}`},
		{"/api/", 200, `{"characters":"` + api + `/character",…`},
		{"/api/character", 200, `{"info":{"count":826,"pages":42,"next":"` + api + `/character?page=2","prev":null},"results":[{"id":1,"name":"Rick Sanchez","status":…`},
		{"/api/character?page=1", 200, `{"info":{"count":826,"pages":42,"next":"` + api + `/character?page=2","prev":null},…`},
		{"/api/character?page=abc", 200, `{"info":{"count":826,"pages":42,"next":"` + api + `/character?page=2","prev":null},…`},
		{"/api/character?page=-2", 200, `{"info":{"count":826,"pages":42,"next":"` + api + `/character?page=2","prev":null},…`},
		{"/api/character/?page=2", 200, `{"info":{"count":826,"pages":42,"next":"` + api + `/character?page=3","prev":"` + api + `/character?page=1"},"results":[{"id":21,…`},
		{"/api/character?page=42", 200, `{"info":{"count":826,"pages":42,"next":null,"prev":"` + api + `/character?page=41"},"results":[{"id":821,…`},
		{"/api/character?page=43", 404, `{"error":"There is nothing here"}`},
		{"/api/episode?page=3", 200, `{"info":{"count":51,"pages":3,"next":null,"prev":"` + api + `/episode?page=2"},"results":[{"id":41,…`},
		{"/api/location/1", 200, `{"id":1,"name":…`},
		{"/api/character/826", 200, `{"id":826,…`},
		{"/api/character/827", 404, `{"error":"Character not found"}`},
		{"/api/location/0", 404, `{"error":"Location not found"}`},
		{"/api/episode/99", 404, `{"error":"Episode not found"}`},
		{"/api/episode/abc", 500, `{"error":"Hey! you must provide an id"}`},
		{"/api/episode/[1,2", 500, `{"error":"Bad... bad array :/"}`},
		{"/api/episode/[1,x]", 500, `{"error":"Bad... bad array :/"}`},
		{"/api/planet", 404, `{"error":"There is nothing here"}`},
		{"/api/character/1/2", 404, `{"error":"There is nothing here"}`},
		{"/apix", 404, `{"error":"There is nothing here"}`},
		{"/", 404, `{"error":"There is nothing here"}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, h, body := get(t, srv.URL+tt.path)
			if status != tt.status {
				t.Errorf("status %d, want %d: %s", status, tt.status, body)
			}
			if ct := h.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if prefix, ok := strings.CutSuffix(tt.want, "…"); ok {
				if !bytes.HasPrefix(body, []byte(prefix)) {
					t.Errorf("body\n%.300s\ndoes not start with\n%s", body, prefix)
				}
			} else if string(body) != tt.want {
				t.Errorf("body\n%s\nwant\n%s", body, tt.want)
			}
		})
	}
}

func TestArraysOfIDs(t *testing.T) {
	srv := httptest.NewServer(New(mustGenerate(t, Sizes{30, 5, 4}, 1), Options{}))
	defer srv.Close()
	for path, want := range map[string][]int{
		"/api/character/3,1,2":     {1, 2, 3},
		"/api/character/[2,30,31]": {2, 30},
		"/api/character/5,5,x,99":  {5},
		"/api/location/9,10":       {},
	} {
		status, _, body := get(t, srv.URL+path)
		var items []rickmorty.Character
		if err := json.Unmarshal(body, &items); status != 200 || err != nil {
			t.Fatalf("%s: %d %s (%v)", path, status, body, err)
		}
		var got []int
		for _, it := range items {
			got = append(got, it.ID)
		}
		if len(got) != len(want) || (len(got) > 0 && !equalInts(got, want)) {
			t.Errorf("%s: ids %v, want %v", path, got, want)
		}
		if len(want) == 0 && string(body) != "[]" {
			t.Errorf("%s: body %s, want []", path, body)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFilters(t *testing.T) {
	srv := httptest.NewServer(New(mustGenerate(t, DefaultSizes, 1), Options{BaseURL: "http://replica.test/api"}))
	defer srv.Close()
	_, _, body := get(t, srv.URL+"/api/character?gender=male&status=alive")
	var p rickmorty.Page[rickmorty.Character]
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Info.Count == 0 || p.Info.Pages != (p.Info.Count+19)/20 {
		t.Fatalf("info %+v", p.Info)
	}
	for _, c := range p.Results {
		if c.Gender != "Male" || c.Status != "Alive" {
			t.Errorf("character %d: %s %s matches gender=male&status=alive", c.ID, c.Gender, c.Status)
		}
	}
	if want := "http://replica.test/api/character?page=2&gender=male&status=alive"; p.Info.Next == nil || *p.Info.Next != want {
		t.Errorf("next = %v, want %s", p.Info.Next, want)
	}
	status, _, body := get(t, srv.URL+"/api/character?name=no-such-name-at-all")
	if status != 404 || string(body) != `{"error":"There is nothing here"}` {
		t.Errorf("empty filter result: %d %s", status, body)
	}
	_, _, body = get(t, srv.URL+"/api/episode?episode=S01")
	var pe rickmorty.Page[rickmorty.Episode]
	if err := json.Unmarshal(body, &pe); err != nil || pe.Info.Count != 11 {
		t.Errorf("episode=S01: count %d, %v", pe.Info.Count, err)
	}
}

func TestHeadAndMethods(t *testing.T) {
	srv := httptest.NewServer(New(mustGenerate(t, Sizes{3, 3, 3}, 1), Options{}))
	defer srv.Close()
	resp, err := http.Head(srv.URL + "/api/character")
	if err != nil || resp.StatusCode != 200 || resp.ContentLength <= 0 {
		t.Errorf("HEAD: %v %v", resp, err)
	}
	resp, err = http.Post(srv.URL+"/api/character", "application/json", nil)
	if err != nil || resp.StatusCode != 404 {
		t.Errorf("POST: %v %v", resp, err)
	}
}

// The generated dataset has the real data's counts and quirks at the
// default size (../shared/rickandmorty/README.md).
func TestSyntheticQuirks(t *testing.T) {
	chars, locs, eps := Synthetic(DefaultSizes, 1)
	if len(chars) != 826 || len(locs) != 126 || len(eps) != 51 {
		t.Fatalf("sizes %d/%d/%d", len(chars), len(locs), len(eps))
	}
	count := func(n int, f func(i int) bool) int {
		k := 0
		for i := 0; i < n; i++ {
			if f(i) {
				k++
			}
		}
		return k
	}
	status := map[string]int{}
	gender := map[string]int{}
	for _, c := range chars {
		status[c.Status]++
		gender[c.Gender]++
	}
	checks := []struct {
		name      string
		got, want int
	}{
		{"unknown origins", count(826, func(i int) bool { return chars[i].Origin == rickmorty.Ref{Name: "unknown", URL: ""} }), 300},
		{"unknown locations", count(826, func(i int) bool { return chars[i].Location == rickmorty.Ref{Name: "unknown", URL: ""} }), 21},
		{"empty character type", count(826, func(i int) bool { return chars[i].Type == "" }), 401},
		{"empty location type", count(126, func(i int) bool { return locs[i].Type == "" }), 1},
		{"location 118 type", boolInt(locs[117].Type == ""), 1},
		{"empty dimension", count(126, func(i int) bool { return locs[i].Dimension == "" }), 2},
		{"no residents", count(126, func(i int) bool { return len(locs[i].Residents) == 0 }), 32},
		{"unsorted residents", count(126, func(i int) bool { return !sortedURLs(locs[i].Residents) }), 7},
		{"unsorted episode characters", count(51, func(i int) bool { return !sortedURLs(eps[i].Characters) }), 12},
		{"unsorted character episodes", count(826, func(i int) bool { return !sortedURLs(chars[i].Episode) }), 0},
		{"’ in character names", count(826, func(i int) bool { return strings.Contains(chars[i].Name, "’") }), 14},
		{"’ in location names", count(126, func(i int) bool { return strings.Contains(locs[i].Name, "’") }), 2},
		{"ζ in location 31", boolInt(strings.Contains(locs[30].Name, "ζ")), 1},
		{"Á in location 75", boolInt(strings.Contains(locs[74].Name, "Á")), 1},
		{"í in a character name", count(826, func(i int) bool { return strings.Contains(chars[i].Name, "í") }), 1},
		{"Alive", status["Alive"], 439}, {"Dead", status["Dead"], 287}, {"unknown status", status["unknown"], 100},
		{"Male", gender["Male"], 610}, {"Female", gender["Female"], 148}, {"unknown gender", gender["unknown"], 49}, {"Genderless", gender["Genderless"], 19},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}

	// The three cross-reference disagreements, and nothing else.
	type link struct{ c, e int }
	ce, ec := map[link]bool{}, map[link]bool{}
	for _, c := range chars {
		for _, u := range c.Episode {
			_, e, _ := rickmorty.ParseURL(u)
			ce[link{c.ID, e}] = true
		}
	}
	for _, e := range eps {
		for _, u := range e.Characters {
			_, c, _ := rickmorty.ParseURL(u)
			ec[link{c, e.ID}] = true
		}
	}
	var onlyCE, onlyEC []link
	for l := range ce {
		if !ec[l] {
			onlyCE = append(onlyCE, l)
		}
	}
	for l := range ec {
		if !ce[l] {
			onlyEC = append(onlyEC, l)
		}
	}
	if len(onlyCE) != 2 || onlyCE[0].c != 125 || onlyCE[1].c != 125 {
		t.Errorf("character→episode links missing from the episodes: %v, want two of character 125", onlyCE)
	}
	if len(onlyEC) != 1 || onlyEC[0] != (link{663, 10}) {
		t.Errorf("episode→character links missing from the characters: %v, want episode 10 → 663", onlyEC)
	}
	for _, l := range locs {
		residents := map[int]bool{}
		for _, u := range l.Residents {
			_, id, _ := rickmorty.ParseURL(u)
			residents[id] = true
		}
		for _, c := range chars {
			if c.Location.URL == l.URL && !residents[c.ID] && !(c.ID == 125 && l.ID == 35) {
				t.Errorf("location %d does not list resident %d", l.ID, c.ID)
			}
		}
		if l.ID == 35 && residents[125] {
			t.Error("location 35 lists character 125")
		}
	}
	if chars[124].Location.URL != locs[34].URL {
		t.Errorf("character 125 is at %q, want location 35", chars[124].Location.URL)
	}

	// Formats.
	if eps[0].AirDate != "December 2, 2013" || eps[0].Code != "S01E01" || eps[11].Code != "S02E01" || eps[50].Code != "S05E10" {
		t.Errorf("episodes: %q %q %q %q", eps[0].AirDate, eps[0].Code, eps[11].Code, eps[50].Code)
	}
	for _, c := range chars {
		if _, err := time.Parse(rickmorty.TimeLayout, c.Created); err != nil {
			t.Fatalf("character %d created %q: %v", c.ID, c.Created, err)
		}
	}
}

func sortedURLs(urls []string) bool {
	prev := 0
	for _, u := range urls {
		_, id, _ := rickmorty.ParseURL(u)
		if id < prev {
			return false
		}
		prev = id
	}
	return true
}

func TestGeneratedJSONLooksLikeTheAPI(t *testing.T) {
	ds := mustGenerate(t, DefaultSizes, 1)
	body, ok := ds.Page("episode", 3, "http://x/api")
	if !ok {
		t.Fatal("no page 3")
	}
	if bytes.Contains(body, []byte(`\u0026`)) || !bytes.Contains(body, []byte("Rick & Morty’s")) {
		t.Errorf("'&' or '’' escaped in %s", body)
	}
	one := ds.res["location"].items[0].raw
	if !bytes.HasPrefix(one, []byte(`{"id":1,"name":`)) || !bytes.Contains(one, []byte(`","type":"`)) {
		t.Errorf("location 1: %s", one)
	}
	empty := ds.res["location"]
	for _, it := range empty.items {
		if bytes.Contains(it.raw, []byte(`"residents":null`)) {
			t.Fatalf("location %d: residents null, want []", it.id)
		}
	}
}

func TestGenerateIsDeterministicAndScales(t *testing.T) {
	a := mustGenerate(t, DefaultSizes, 7)
	b := mustGenerate(t, DefaultSizes, 7)
	c := mustGenerate(t, DefaultSizes, 8)
	for _, r := range rickmorty.Resources {
		pa, _ := a.Page(r, 2, "http://x/api")
		pb, _ := b.Page(r, 2, "http://x/api")
		pc, _ := c.Page(r, 2, "http://x/api")
		if !bytes.Equal(pa, pb) {
			t.Errorf("%s: same seed, different bytes", r)
		}
		if bytes.Equal(pa, pc) {
			t.Errorf("%s: different seeds, same bytes", r)
		}
	}
	for _, sz := range []Sizes{{0, 0, 0}, {1, 1, 1}, {2, 1, 1}, {5, 2, 3}, {4000, 400, 200}} {
		ds := mustGenerate(t, sz, 1)
		if ds.Count("character") != sz.Characters || ds.Count("location") != sz.Locations || ds.Count("episode") != sz.Episodes {
			t.Errorf("%+v: counts %d/%d/%d", sz, ds.Count("character"), ds.Count("location"), ds.Count("episode"))
		}
		for _, r := range rickmorty.Resources {
			for n := 1; n <= ds.Pages(r); n++ {
				body, _ := ds.Page(r, n, "http://x/api")
				if !json.Valid(body) {
					t.Fatalf("%+v: %s page %d is not JSON", sz, r, n)
				}
			}
		}
	}
}

// Served from a folder, the snapshot's items come out byte for byte as the
// files hold them (minus whitespace), in pages of 20.
func TestLoadServesTheSnapshot(t *testing.T) {
	dir := testenv.Snapshot(t)
	ds, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for r, want := range map[string][2]int{"character": {826, 42}, "location": {126, 7}, "episode": {51, 3}} {
		if ds.Count(r) != want[0] || ds.Pages(r) != want[1] {
			t.Errorf("%s: %d items, %d pages; want %v", r, ds.Count(r), ds.Pages(r), want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "location.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw []json.RawMessage
	json.Unmarshal(b, &raw)
	var want bytes.Buffer
	want.WriteString(`{"info":{"count":126,"pages":7,"next":null,"prev":"http://x/api/location?page=6"},"results":[`)
	for i, r := range raw[120:] {
		if i > 0 {
			want.WriteByte(',')
		}
		json.Compact(&want, r)
	}
	want.WriteString("]}")
	got, _ := ds.Page("location", 7, "http://x/api")
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("location page 7:\n got %.400s\nwant %.400s", got, want.Bytes())
	}
}

func TestLoadRejectsBadFolders(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil {
		t.Error("empty folder: no error")
	}
	for _, r := range rickmorty.Resources {
		os.WriteFile(filepath.Join(dir, r+".json"), []byte(`[{"id":1},{"id":1}]`), 0o644)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "duplicate id 1") {
		t.Errorf("duplicate ids: %v", err)
	}
}

func TestFaults(t *testing.T) {
	ds := mustGenerate(t, Sizes{40, 5, 5}, 1)
	t.Run("500", func(t *testing.T) {
		srv := httptest.NewServer(New(ds, Options{Faults: Faults{Fail: 1}}))
		defer srv.Close()
		if status, _, _ := get(t, srv.URL+"/api/character"); status != 500 {
			t.Errorf("status %d", status)
		}
	})
	t.Run("429", func(t *testing.T) {
		srv := httptest.NewServer(New(ds, Options{Faults: Faults{Throttle: 1, RetryAfter: "7"}}))
		defer srv.Close()
		status, h, _ := get(t, srv.URL+"/api/character")
		if status != 429 || h.Get("Retry-After") != "7" {
			t.Errorf("status %d, Retry-After %q", status, h.Get("Retry-After"))
		}
	})
	t.Run("cut", func(t *testing.T) {
		s := New(ds, Options{Faults: Faults{Cut: 1}})
		srv := httptest.NewServer(s)
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/api/character?page=2")
		if err != nil {
			t.Fatal(err)
		}
		full, _ := ds.Page("character", 2, srv.URL+"/api")
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ContentLength != int64(len(full)) || !errors.Is(err, io.ErrUnexpectedEOF) || len(b) == 0 || len(b) >= len(full) {
			t.Errorf("Content-Length %d (page %d), read %d bytes, err %v", resp.ContentLength, len(full), len(b), err)
		}
		if st := s.Stats(); st.Cut != 1 || st.InFlight != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		seq := func() []int {
			srv := httptest.NewServer(New(ds, Options{Faults: Faults{Fail: 0.3, Throttle: 0.2, RetryAfter: "0", Seed: 42}}))
			defer srv.Close()
			var out []int
			for i := 0; i < 30; i++ {
				status, _, _ := get(t, srv.URL+"/api/location?page=1")
				out = append(out, status)
			}
			return out
		}
		a, b := seq(), seq()
		if !equalInts(a, b) {
			t.Errorf("same seed, different faults:\n%v\n%v", a, b)
		}
		n := map[int]int{}
		for _, s := range a {
			n[s]++
		}
		if n[500] == 0 || n[429] == 0 || n[200] == 0 {
			t.Errorf("statuses %v: want some of each", n)
		}
	})
}

// Every request counts as in flight until its answer is written; the peak
// is the most ever counted at once.
func TestInFlightAndPeak(t *testing.T) {
	s := New(mustGenerate(t, Sizes{3, 3, 3}, 1), Options{Faults: Faults{Latency: time.Hour}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/character", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	for s.Stats().InFlight < 4 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	for s.Stats().InFlight > 0 {
		time.Sleep(time.Millisecond)
	}
	if st := s.Stats(); st.PeakInFlight != 4 || st.Requests != 4 {
		t.Errorf("stats %+v, want peak 4 of 4 requests", st)
	}
	s.ResetStats()
	if st := s.Stats(); st.PeakInFlight != 0 || st.Requests != 0 {
		t.Errorf("after reset: %+v", st)
	}
}

// Whatever the path and query, the fake API answers JSON without panicking.
func FuzzRoutes(f *testing.F) {
	s := New(mustGenerate(f, Sizes{45, 21, 3}, 1), Options{})
	for _, p := range [][2]string{{"/api", ""}, {"/api/character", "page=3&name=a"}, {"/api/character/1,2", ""}, {"/api/episode/[1,2]", ""}, {"/api/location/x", "page=%zz"}, {"/api/character/[", "gender=male"}} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path, RawQuery: query}, Host: "replica.test", Header: http.Header{}}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s?%s: %d %q is not JSON", path, query, w.Code, w.Body.Bytes())
		}
	})
}
