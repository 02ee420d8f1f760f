package extract

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

func TestBackoffIsFullJitter(t *testing.T) {
	base, max := 100*time.Millisecond, 5*time.Second
	tests := []struct {
		attempt int
		u       float64
		want    time.Duration
	}{
		{0, 0, 0},
		{0, 0.5, 50 * time.Millisecond},
		{0, 0.999, 99900 * time.Microsecond},
		{1, 0.5, 100 * time.Millisecond},
		{3, 1, 800 * time.Millisecond},
		{5, 1, 3200 * time.Millisecond},
		{6, 1, 5 * time.Second}, // capped
		{62, 1, 5 * time.Second},
		{1000, 0.5, 2500 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := backoff(tt.attempt, base, max, tt.u); got != tt.want {
			t.Errorf("backoff(%d, u=%v) = %v, want %v", tt.attempt, tt.u, got, tt.want)
		}
	}
}

func testRun(cfg Config) *run {
	c := New(cfg, newMemStore(), http.DefaultClient, nil, nil)
	c.rand = func() float64 { return 0.5 }
	return &run{Crawler: c}
}

func TestRetryDelay(t *testing.T) {
	cfg := Config{RetryMax: 3, RetryBudget: 100, BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second, MaxRetryAfter: time.Minute}
	status := func(code int, retryAfter string) error {
		return fmt.Errorf("wrapped: %w", &rickmorty.StatusError{URL: "u", StatusCode: code, RetryAfter: retryAfter})
	}
	tests := []struct {
		name    string
		err     error
		attempt int
		delay   time.Duration
		giveUp  string // substring of the error when not retried
		held    bool   // every request held back
	}{
		{"network error", errors.New("connection reset"), 0, 50 * time.Millisecond, "", false},
		{"second attempt", errors.New("connection reset"), 1, 100 * time.Millisecond, "", false},
		{"500", status(500, ""), 2, 200 * time.Millisecond, "", false},
		{"503 with Retry-After", status(503, "4"), 0, 4 * time.Second, "", true},
		{"429 with Retry-After", status(429, "2"), 0, 2 * time.Second, "", true},
		{"429 with Retry-After 0", status(429, "0"), 0, 0, "", true},
		{"429 with a bad Retry-After", status(429, "later"), 0, 50 * time.Millisecond, "", false},
		{"429 asking too much", status(429, "3600"), 0, 0, "more than the 1m0s honoured", false},
		{"404 is final", status(404, ""), 0, 0, "404", false},
		{"400 is final", status(400, "5"), 0, 0, "400", false},
		{"too large is final", fmt.Errorf("x: %w", rickmorty.ErrTooLarge), 0, 0, "too large", false},
		{"retries exhausted", status(502, ""), 3, 0, "giving up after 4 attempts", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRun(cfg)
			delay, err := r.retryDelay(tt.err, tt.attempt)
			if tt.giveUp != "" {
				if err == nil || !strings.Contains(err.Error(), tt.giveUp) {
					t.Fatalf("error %v, want one containing %q", err, tt.giveUp)
				}
				return
			}
			if err != nil || delay != tt.delay {
				t.Fatalf("retryDelay = %v, %v; want %v", delay, err, tt.delay)
			}
			if held := !r.notBefore.IsZero(); held != tt.held {
				t.Errorf("requests held back: %v, want %v", held, tt.held)
			}
			if r.retries.Load() != 1 {
				t.Errorf("retries taken: %d", r.retries.Load())
			}
		})
	}
}

func TestRetryBudgetIsShared(t *testing.T) {
	r := testRun(Config{RetryMax: 5, RetryBudget: 2})
	for i := 0; i < 2; i++ {
		if _, err := r.retryDelay(errors.New("reset"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.retryDelay(errors.New("reset"), 0); err == nil || !strings.Contains(err.Error(), "retry budget of 2") {
		t.Errorf("third retry: %v", err)
	}
	if none := testRun(Config{RetryMax: 0, RetryBudget: 10}); true {
		if _, err := none.retryDelay(errors.New("reset"), 0); err == nil {
			t.Error("RetryMax 0 retried")
		}
	}
}

func item(resource string, id int) string {
	return fmt.Sprintf(`{"id":%d,"name":"x","url":"https://mirror.example/api/%s/%d"}`, id, resource, id)
}

// pageBody builds a page of resource with info and the given ids.
func pageBody(resource string, count, pages int, next, prev bool, ids ...int) string {
	link := func(on bool) string {
		if on {
			return `"https://elsewhere.example/api/x?page=9"`
		}
		return "null"
	}
	items := make([]string, len(ids))
	for i, id := range ids {
		items[i] = item(resource, id)
	}
	return fmt.Sprintf(`{"info":{"count":%d,"pages":%d,"next":%s,"prev":%s},"results":[%s]}`, count, pages, link(next), link(prev), strings.Join(items, ","))
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestFirstPageValidation(t *testing.T) {
	tests := []struct {
		name string
		body string
		want listing
		err  string
	}{
		{"real shape", pageBody("character", 45, 3, true, false, seq(1, 20)...), listing{45, 3, 20}, ""},
		{"single page", pageBody("episode", 3, 1, false, false, 1, 2, 3), listing{3, 1, 3}, ""},
		{"other page size", pageBody("location", 25, 3, true, false, seq(1, 10)...), listing{25, 3, 10}, ""},
		{"not JSON", `{"info":{"count":`, listing{}, "not valid JSON"},
		{"array", `[]`, listing{}, "decoding page"},
		{"no info", `{"results":[]}`, listing{}, "no info"},
		{"no count", `{"info":{"pages":1,"next":null,"prev":null},"results":[]}`, listing{}, "lacks count or pages"},
		{"count not an integer", `{"info":{"count":1.5,"pages":1,"next":null,"prev":null},"results":[]}`, listing{}, "decoding page"},
		{"negative", pageBody("episode", -1, 1, false, false, 1), listing{}, "negative"},
		{"no results", `{"info":{"count":1,"pages":1,"next":null,"prev":null}}`, listing{}, "no results array"},
		{"empty listing", pageBody("episode", 0, 0, false, false), listing{}, "listing is empty"},
		{"prev on page 1", pageBody("episode", 3, 1, false, true, 1, 2, 3), listing{}, "info.prev is set on page 1"},
		{"no next", pageBody("episode", 30, 2, false, false, seq(1, 20)...), listing{}, "info.next is null on page 1 of 2"},
		{"next as number", `{"info":{"count":1,"pages":1,"next":3,"prev":null},"results":[` + item("episode", 1) + `]}`, listing{}, "info.next is neither"},
		{"missing next", `{"info":{"count":1,"pages":1,"prev":null},"results":[` + item("episode", 1) + `]}`, listing{}, "info lacks next"},
		{"pages disagree", pageBody("episode", 45, 2, true, false, seq(1, 20)...), listing{}, "disagree"},
		{"count disagrees", pageBody("episode", 4, 1, false, false, 1, 2, 3), listing{}, "disagree"},
		{"item without id", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"url":"https://x/api/episode/1"}]}`, listing{}, "has no id"},
		{"id not integer", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":"1","url":"https://x/api/episode/1"}]}`, listing{}, "not a positive integer"},
		{"id zero", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":0,"url":"https://x/api/episode/0"}]}`, listing{}, "not a positive integer"},
		{"id fraction", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":1.5,"url":"https://x/api/episode/1"}]}`, listing{}, "not a positive integer"},
		{"item not object", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[7]}`, listing{}, "not an object"},
		{"id null", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":null,"url":"https://x/api/episode/1"}]}`, listing{}, "has no id"},
		{"id exponent", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":1e0,"url":"https://x/api/episode/1"}]}`, listing{}, "not a positive integer"},
		{"no url", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":1}]}`, listing{}, "has no url"},
		{"empty url", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":1,"url":""}]}`, listing{}, "has no url"},
		{"url of another resource", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":1,"url":"https://x/api/character/1"}]}`, listing{}, "does not name episode 1"},
		{"url of another id", `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":1,"url":"https://x/api/episode/2"}]}`, listing{}, "does not name episode 1"},
		{"duplicate id", pageBody("episode", 2, 1, false, false, 1, 1), listing{}, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resource := "episode"
			for _, r := range rickmorty.Resources {
				if strings.Contains(tt.body, "/api/"+r+"/") && strings.Contains(tt.body, "mirror.example") {
					resource = r
				}
			}
			got, err := firstPage(resource, []byte(tt.body))
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("firstPage = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestLaterPageValidation(t *testing.T) {
	first := listing{Count: 45, Pages: 3, Size: 20}
	tests := []struct {
		name  string
		n     int
		body  string
		drift bool
		err   string
	}{
		{"middle page", 2, pageBody("character", 45, 3, true, true, seq(21, 40)...), false, ""},
		{"last page", 3, pageBody("character", 45, 3, false, true, seq(41, 45)...), false, ""},
		{"short middle page", 2, pageBody("character", 45, 3, true, true, seq(21, 39)...), false, "19 results, want 20"},
		{"long last page", 3, pageBody("character", 45, 3, false, true, seq(41, 46)...), false, "6 results, want 5"},
		{"past the end", 4, pageBody("character", 45, 3, false, true, 61), false, "past info.pages"},
		{"no prev", 2, pageBody("character", 45, 3, true, false, seq(21, 40)...), false, "info.prev is null on page 2"},
		{"grew", 3, pageBody("character", 50, 3, false, true, seq(41, 50)...), true, ""},
		{"grew a page", 3, pageBody("character", 65, 4, true, true, seq(41, 60)...), true, ""},
		{"grew with bigger pages", 2, pageBody("character", 65, 3, true, true, seq(21, 45)...), false, "more than page 1's 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drift, err := laterPage("character", tt.n, []byte(tt.body), first)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || (drift != nil) != tt.drift {
				t.Fatalf("drift %+v, err %v; want drift %v", drift, err, tt.drift)
			}
		})
	}
}

func TestRootValidation(t *testing.T) {
	listed, ignored, err := checkRoot([]byte(`{"characters":"https://a/api/character","locations":"http://b:1/api/location","episodes":"x/episode","planets":"https://a/api/planet","n":3}`))
	if err != nil || len(listed) != 3 || len(ignored) != 2 {
		t.Errorf("listed %v, ignored %v, err %v", listed, ignored, err)
	}
	for _, bad := range []string{`[]`, `{}`, `{"x":"https://a/api/planet"}`, `{"characters":`} {
		if _, _, err := checkRoot([]byte(bad)); err == nil {
			t.Errorf("checkRoot(%s): no error", bad)
		}
	}
}

func TestKeys(t *testing.T) {
	if k := bucket.PageKey("character", 7); k != "raw/character/page-0007.json" {
		t.Errorf("Key = %q", k)
	}
	if k := bucket.PageKey("episode", 12345); k != "raw/episode/page-12345.json" {
		t.Errorf("Key = %q", k)
	}
	id := newRunID(time.Date(2026, 11, 22, 6, 0, 0, 123e6, time.UTC))
	if !strings.HasPrefix(id, "20261122T060000.123Z-") || strings.ContainsAny(bucket.ExtractManifestKey(id), " +=") {
		t.Errorf("run id %q", id)
	}
}

func FuzzPageValidation(f *testing.F) {
	f.Add(pageBody("character", 45, 3, true, false, seq(1, 20)...), 1)
	f.Add(pageBody("character", 45, 3, false, true, seq(41, 45)...), 3)
	f.Add(`{"info":{"count":9223372036854775807,"pages":1,"next":null,"prev":null},"results":[{"id":1,"url":"/api/character/1"}]}`, 1)
	f.Add(`{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":1,"url":"/api/character/1","id":2}]}`, 1)
	f.Add(`[`, 2)
	f.Fuzz(func(t *testing.T, body string, n int) {
		if n < 1 {
			return
		}
		if n == 1 {
			l, err := firstPage("character", []byte(body))
			if err == nil && (l.Size < 1 || l.Pages < 1 || l.Count < 1 || l.Pages != (l.Count+l.Size-1)/l.Size) {
				t.Fatalf("accepted an inconsistent first page: %+v", l)
			}
			return
		}
		_, _ = laterPage("character", n, []byte(body), listing{Count: 45, Pages: 3, Size: 20})
	})
}

func TestTooManyPagesIsRefused(t *testing.T) {
	a := startAPI(t, generate(t, fakeapi.Sizes{Characters: 20, Locations: 20, Episodes: 20}), fakeapi.Faults{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.RequestURI() == "/api/episode?page=1" {
				w.Write([]byte(pageBody("episode", 2000000, 100000, true, false, seq(1, 20)...)))
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	store := newMemStore()
	res, err := New(quick(a.base, "b", 4), store, nil, time.Now, testLogger(t)).Run(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "info.pages 100000 is over the limit of 10000 pages") || res.Requests != 4 {
		t.Errorf("%+v, %v", res, err)
	}
}
