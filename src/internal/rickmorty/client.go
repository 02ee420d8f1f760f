package rickmorty

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Doer sends one HTTP request; *http.Client is one.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// DefaultMaxBody bounds the size of one document. A page of the real API is
// about 15 KB; anything near this bound is not a page.
const DefaultMaxBody = 16 << 20

// ErrTooLarge is returned for a body over the client's MaxBody.
var ErrTooLarge = errors.New("response body too large")

// Client fetches API documents. Get is one attempt: retrying, pacing and
// concurrency are the caller's policy.
type Client struct {
	HTTP      Doer
	UserAgent string // sent when not empty
	MaxBody   int64  // 0 means DefaultMaxBody
}

// StatusError is an answer other than 200 OK.
type StatusError struct {
	URL        string
	StatusCode int
	RetryAfter string // the Retry-After header, verbatim ("" when absent)
	Body       string // the start of the body, for the error message
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("GET %s: %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Retryable reports whether the status is worth another attempt later:
// 408, 429 and every 5xx.
func (e *StatusError) Retryable() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout || e.StatusCode >= 500
}

// Get fetches url and returns the whole body of a 200 answer. Other statuses
// return a *StatusError; a body cut short (fewer bytes than its
// Content-Length announced) returns an error wrapping io.ErrUnexpectedEOF.
func (c *Client) Get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("getting %s: %w", url, err)
	}
	defer resp.Body.Close()
	max := c.MaxBody
	if max <= 0 {
		max = DefaultMaxBody
	}
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return nil, &StatusError{
			URL:        url,
			StatusCode: resp.StatusCode,
			RetryAfter: resp.Header.Get("Retry-After"),
			Body:       printable(snippet),
		}
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("getting %s: %w: Content-Length %d > %d", url, ErrTooLarge, resp.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s after %d bytes: %w", url, len(body), err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("getting %s: %w: over %d bytes", url, ErrTooLarge, max)
	}
	return body, nil
}

// printable keeps an error body readable: valid UTF-8, one line.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Join(strings.Fields(s), " ")
	for len(s) > 200 {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// ParseRetryAfter reads a Retry-After header: delay-seconds ("120") or an
// HTTP date, relative to now. A date in the past gives 0. ok is false for an
// empty or malformed value.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d = t.Sub(now); d < 0 {
		d = 0
	}
	return d, true
}

// NewHTTPClient returns a client for up to conns concurrent requests to one
// host that keeps that many connections alive between requests (the default
// transport keeps 2, so a crawl of 4 would reconnect constantly). It sets no
// overall timeout: callers bound each request with its context.
func NewHTTPClient(conns int) *http.Client {
	if conns < 1 {
		conns = 1
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = conns
	if t.MaxIdleConns < conns {
		t.MaxIdleConns = conns
	}
	return &http.Client{Transport: t}
}
