package rickmorty

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// answer is a Doer serving one fixed response.
type answer struct {
	status        int
	body          []byte
	contentLength int64
	retryAfter    string
}

func (a answer) Do(*http.Request) (*http.Response, error) {
	h := http.Header{}
	if a.retryAfter != "" {
		h.Set("Retry-After", a.retryAfter)
	}
	return &http.Response{StatusCode: a.status, Header: h, Body: io.NopCloser(bytes.NewReader(a.body)), ContentLength: a.contentLength}, nil
}

// FuzzClientGet: whatever the API answers (status, body, Content-Length,
// Retry-After), Get returns the whole body of a 200 within MaxBody, refuses
// a larger one with ErrTooLarge, and turns any other status into a
// StatusError whose body excerpt is one line of valid UTF-8 fit for a log.
func FuzzClientGet(f *testing.F) {
	f.Add(200, []byte(`{"info":{},"results":[]}`), int64(-1), "", uint16(1024))
	f.Add(200, []byte("x"), int64(5000), "", uint16(100))
	f.Add(429, []byte("slow down"), int64(-1), "120", uint16(1024))
	f.Add(503, []byte("<html>\n<body>\xff\xfe 502 Bad\tGateway</body>\r\n</html>"), int64(-1), "Wed, 21 Oct 2015 07:28:00 GMT", uint16(1024))
	f.Add(404, []byte(`{"error":"There is nothing here"}`), int64(34), "", uint16(1024))
	f.Add(200, bytes.Repeat([]byte("a"), 300), int64(-1), "", uint16(299))
	f.Fuzz(func(t *testing.T, status int, body []byte, contentLength int64, retryAfter string, maxBody uint16) {
		if status < 100 || status > 999 {
			return
		}
		c := &Client{HTTP: answer{status, body, contentLength, retryAfter}, MaxBody: int64(maxBody) + 1}
		const url = "http://api.test/api/character?page=1"
		got, err := c.Get(context.Background(), url)
		var se *StatusError
		switch {
		case status != http.StatusOK:
			if !errors.As(err, &se) || se.StatusCode != status || se.RetryAfter != strings.TrimSpace(retryAfter) && se.RetryAfter != retryAfter {
				t.Fatalf("status %d: %v", status, err)
			}
			if !utf8.ValidString(se.Body) || strings.ContainsAny(se.Body, "\r\n") || len(se.Body) > 200 || !strings.Contains(se.Error(), url) {
				t.Fatalf("status %d: error body %q", status, se.Body)
			}
		case int64(len(body)) > c.MaxBody || contentLength > c.MaxBody:
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("a body of %d bytes (Content-Length %d) over %d: %v", len(body), contentLength, c.MaxBody, err)
			}
		case err != nil || !bytes.Equal(got, body):
			t.Fatalf("200 with %d bytes: got %d bytes, %v", len(body), len(got), err)
		}
	})
}

// FuzzParseRetryAfter: any Retry-After header gives a delay that is never
// negative, or ok=false; delay-seconds are read exactly.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "0", " 7 ", "-1", "1e3", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", "Sun, 06 Nov 1994 08:49:37 GMT", "soon", ""} {
		f.Add(s, int64(1445412480))
	}
	f.Fuzz(func(t *testing.T, v string, now int64) {
		d, ok := ParseRetryAfter(v, time.Unix(now, 0))
		if !ok {
			if d != 0 {
				t.Fatalf("%q: not ok but %v", v, d)
			}
			return
		}
		if d < 0 {
			t.Fatalf("%q: negative delay %v", v, d)
		}
		if secs, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil && d != time.Duration(secs)*time.Second {
			t.Fatalf("%q: %v, want %ds", v, d, secs)
		}
	})
}

// FuzzPageRoundTrip: whatever page the API serves, if it decodes into the
// resource types it marshals back (HTML escaping off) to JSON that decodes
// to the same value: the types lose nothing they accepted.
func FuzzPageRoundTrip(f *testing.F) {
	f.Add([]byte(`{"info":{"count":826,"pages":42,"next":"https://rickandmortyapi.com/api/character?page=2","prev":null},"results":[{"id":1,"name":"Rick Sanchez","status":"Alive","species":"Human","type":"","gender":"Male","origin":{"name":"unknown","url":""},"location":{"name":"Citadel of Ricks","url":"https://rickandmortyapi.com/api/location/3"},"image":"https://rickandmortyapi.com/api/character/avatar/1.jpeg","episode":["https://rickandmortyapi.com/api/episode/1"],"url":"https://rickandmortyapi.com/api/character/1","created":"2017-11-04T18:48:46.250Z"}]}`))
	f.Add([]byte(`{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":1,"name":"<b>&amp;</b>","air_date":"December 2, 2013","episode":"S01E01","characters":[],"url":"","created":""}]}`))
	f.Add([]byte(`{"error":"There is nothing here"}`))
	f.Add([]byte(`{"info":null,"results":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[Page[Character]](t, b)
		roundTrip[Page[Location]](t, b)
		roundTrip[Page[Episode]](t, b)
		roundTrip[ErrorBody](t, b)
		roundTrip[Root](t, b)
	})
}

func roundTrip[T any](t *testing.T, b []byte) {
	t.Helper()
	var v T
	if json.Unmarshal(b, &v) != nil {
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("%T decoded from %q does not encode: %v", v, b, err)
	}
	var again T
	if err := json.Unmarshal(buf.Bytes(), &again); err != nil || !reflect.DeepEqual(again, v) {
		t.Fatalf("%T: %q decoded to %+v, re-encoded as %s, decoded to %+v (%v)", v, b, v, buf.Bytes(), again, err)
	}
}
