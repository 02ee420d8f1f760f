// Package fakeapi is a fake Rick and Morty API (not a database replica): an
// http.Handler serving a Dataset (generated, or loaded from the API's own
// JSON) with the real API's paths, shapes, status codes and error bodies, and
// with faults injected on demand for tests and benchmarks.
//
// Served paths (GET and HEAD):
//
//	/api                          the root document, links to the three listings
//	/api/{resource}?page=N        a page of 20 items with info{count,pages,next,prev};
//	                              filters as the API's (name, status, ... per resource)
//	/api/{resource}/{id}          one item, or 404 {"error":"Character not found"}
//	/api/{resource}/1,2,3         an array of the items that exist ([1,2,3] works too)
//
// Past the last page, and on any other path, the answer is 404
// {"error":"There is nothing here"}. The next/prev links and the root
// document point at the fake API itself (Options.BaseURL, or
// http://<Host>/api of each request); the items' own URLs are data and are
// served as the dataset holds them.
package fakeapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

// Options configure a Server.
type Options struct {
	// BaseURL is the API root the fake API advertises in links, such as
	// "http://127.0.0.1:8080/api". Empty: derived from each request's Host.
	BaseURL string
	Faults  Faults
}

// Faults are injected into responses. Each request draws one number from a
// hash of (Seed, method and URL, how many times that URL was requested
// before), so a given sequence of attempts at one URL meets the same faults
// in every run, whatever the interleaving of concurrent requests.
type Faults struct {
	Latency    time.Duration // added before every answer
	Fail       float64       // fraction of requests answered 500
	Throttle   float64       // fraction answered 429 with Retry-After
	RetryAfter string        // the Retry-After value sent with 429s; "" means "1" (second)
	Cut        float64       // fraction whose connection is closed mid-body (Content-Length announces it all)
	Seed       uint64
}

// Stats counts what a Server did.
type Stats struct {
	Requests     int64 `json:"requests"`
	Failed       int64 `json:"failed500"`
	Throttled    int64 `json:"throttled429"`
	Cut          int64 `json:"cut"`
	InFlight     int64 `json:"inFlight"`
	PeakInFlight int64 `json:"peakInFlight"`
}

// Server is the fake API's http.Handler.
type Server struct {
	ds   *Dataset
	opts Options

	requests, failed, throttled, cut atomic.Int64
	inFlight, peak                   atomic.Int64

	mu       sync.Mutex
	attempts map[string]uint64 // requests seen per method+URL
}

// New returns a Server for ds.
func New(ds *Dataset, opts Options) *Server {
	return &Server{ds: ds, opts: opts, attempts: map[string]uint64{}}
}

// Dataset is the data the server serves.
func (s *Server) Dataset() *Dataset { return s.ds }

// Stats returns the counters. A request is in flight from its arrival until
// the server starts writing its answer, so a client that waits for whole
// answers never sees more requests in flight here than it has open.
func (s *Server) Stats() Stats {
	return Stats{
		Requests:     s.requests.Load(),
		Failed:       s.failed.Load(),
		Throttled:    s.throttled.Load(),
		Cut:          s.cut.Load(),
		InFlight:     s.inFlight.Load(),
		PeakInFlight: s.peak.Load(),
	}
}

// ResetStats zeroes the counters and the fault draws (requests in flight
// stay counted).
func (s *Server) ResetStats() {
	s.requests.Store(0)
	s.failed.Store(0)
	s.throttled.Store(0)
	s.cut.Store(0)
	s.peak.Store(s.inFlight.Load())
	s.mu.Lock()
	s.attempts = map[string]uint64{}
	s.mu.Unlock()
}

// answer is a response to write.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func jsonAnswer(status int, body []byte) answer {
	return answer{status: status, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: body}
}

func errorAnswer(status int, msg string) answer {
	b, _ := marshal(rickmorty.ErrorBody{Error: msg})
	return jsonAnswer(status, b)
}

// The API's error messages.
const (
	msgNoPage   = "There is nothing here"
	msgBadParam = "Hey! you must provide an id"
	msgBadArray = "Bad... bad array :/"
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	n := s.inFlight.Add(1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	var once sync.Once
	leave := func() { once.Do(func() { s.inFlight.Add(-1) }) }
	defer leave()

	f := s.opts.Faults
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	a := s.route(r)
	switch u := s.draw(r); {
	case u < f.Fail:
		s.failed.Add(1)
		a = errorAnswer(http.StatusInternalServerError, "Internal Server Error (injected)")
	case u < f.Fail+f.Throttle:
		s.throttled.Add(1)
		a = errorAnswer(http.StatusTooManyRequests, "Too Many Requests (injected)")
		ra := f.RetryAfter
		if ra == "" {
			ra = "1"
		}
		a.header.Set("Retry-After", ra)
	case u < f.Fail+f.Throttle+f.Cut:
		s.cut.Add(1)
		leave()
		cutShort(w, a)
		return
	}
	leave()
	h := w.Header()
	for k, v := range a.header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(a.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
}

// draw returns the request's fault number in [0, 1).
func (s *Server) draw(r *http.Request) float64 {
	f := s.opts.Faults
	if f.Fail <= 0 && f.Throttle <= 0 && f.Cut <= 0 {
		return 1
	}
	key := r.Method + " " + r.URL.RequestURI()
	s.mu.Lock()
	n := s.attempts[key]
	s.attempts[key] = n + 1
	s.mu.Unlock()
	h := f.Seed ^ 0x9e3779b97f4a7c15
	for i := 0; i < len(key); i++ { // FNV-1a over the key, folded into the seed
		h ^= uint64(key[i])
		h *= 0x100000001b3
	}
	return unit(mix(h + n*0xbf58476d1ce4e5b9))
}

// cutShort answers a over a hijacked connection: the status line, the
// headers with the full Content-Length, half the body, then closes.
func cutShort(w http.ResponseWriter, a answer) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): a reset stream is the closest thing.
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	bw := bufio.NewWriter(conn)
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", a.status, http.StatusText(a.status))
	for k, vs := range a.header {
		for _, v := range vs {
			fmt.Fprintf(bw, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(bw, "Content-Length: %d\r\nConnection: close\r\n\r\n", len(a.body))
	bw.Write(a.body[:len(a.body)/2])
	_ = bw.Flush()
}

var arrayParam = regexp.MustCompile(`^\[.+\]$`)

// route answers the request as the real API does.
func (s *Server) route(r *http.Request) answer {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errorAnswer(http.StatusNotFound, msgNoPage)
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api")
	if !ok || (rest != "" && rest[0] != '/') {
		return errorAnswer(http.StatusNotFound, msgNoPage)
	}
	base := s.base(r)
	rest = strings.Trim(rest, "/")
	if rest == "" {
		b, _ := marshal(rickmorty.Root{
			Characters: rickmorty.ResourceURL(base, rickmorty.ResourceCharacter),
			Locations:  rickmorty.ResourceURL(base, rickmorty.ResourceLocation),
			Episodes:   rickmorty.ResourceURL(base, rickmorty.ResourceEpisode),
		})
		return jsonAnswer(http.StatusOK, b)
	}
	resource, id, hasID := strings.Cut(rest, "/")
	c := s.ds.res[resource]
	if c == nil || strings.Contains(id, "/") {
		return errorAnswer(http.StatusNotFound, msgNoPage)
	}
	if !hasID {
		return s.list(c, resource, base, r.URL.RawQuery)
	}
	return s.byID(c, resource, id)
}

func (s *Server) base(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return strings.TrimRight(s.opts.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/api"
}

// list answers a listing: ?page=N (anything but a positive integer means 1)
// and the resource's filters, which the next/prev links repeat in request
// order, as the API does.
func (s *Server) list(c *collection, resource, base, rawQuery string) answer {
	page := 1
	var params []param
	seen := map[string]bool{}
	for _, kv := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || seen[k] {
			continue
		}
		seen[k] = true
		v = strings.TrimSpace(v)
		if k == "page" {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				page = n
			}
			continue
		}
		for _, f := range filterable[resource] {
			if k == f && v != "" {
				params = append(params, param{k, v})
			}
		}
	}
	var query strings.Builder
	for _, p := range params {
		query.WriteString("&" + p.key + "=" + p.value)
	}
	body, ok := renderPage(c.filter(params), resource, page, base, query.String())
	if !ok {
		return errorAnswer(http.StatusNotFound, msgNoPage)
	}
	return jsonAnswer(http.StatusOK, body)
}

// byID answers /{resource}/{id}, /{resource}/1,2,3 and /{resource}/[1,2,3].
func (s *Server) byID(c *collection, resource, id string) answer {
	var ids []float64
	switch {
	case arrayParam.MatchString(id):
		if err := json.Unmarshal([]byte(id), &ids); err != nil {
			return errorAnswer(http.StatusInternalServerError, msgBadArray)
		}
	case strings.ContainsAny(id, "[]"):
		return errorAnswer(http.StatusInternalServerError, msgBadArray)
	case strings.Contains(id, ",") && len(id) > 1:
		for _, part := range strings.Split(id, ",") {
			if f, err := strconv.ParseFloat(strings.TrimSpace(part), 64); err == nil {
				ids = append(ids, f)
			}
		}
	default:
		n, err := strconv.Atoi(id)
		if err != nil {
			return errorAnswer(http.StatusInternalServerError, msgBadParam)
		}
		i, ok := c.byID[n]
		if !ok {
			return errorAnswer(http.StatusNotFound, notFound(resource))
		}
		return jsonAnswer(http.StatusOK, c.items[i].raw)
	}
	// An array: the items that exist, once each, in id order.
	want := map[int]bool{}
	for _, f := range ids {
		if f == float64(int(f)) {
			want[int(f)] = true
		}
	}
	body := []byte{'['}
	for _, it := range c.items {
		if want[it.id] {
			if len(body) > 1 {
				body = append(body, ',')
			}
			body = append(body, it.raw...)
		}
	}
	return jsonAnswer(http.StatusOK, append(body, ']'))
}

func notFound(resource string) string {
	return strings.ToUpper(resource[:1]) + resource[1:] + " not found"
}
