package dashboard_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/dashboard"
)

func TestCheckAddr(t *testing.T) {
	for _, c := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8765", "", true},
		{"localhost:8765", "", true},
		{"[::1]:8765", "", true},
		{"127.0.0.2:0", "", true},
		{"0.0.0.0:8765", "", false},
		{":8765", "", false},
		{"192.168.1.5:8765", "", false},
		{"0.0.0.0:8765", "s3cret", true},
		{"no-port", "", false},
	} {
		if err := dashboard.CheckAddr(c.addr, c.token); (err == nil) != c.ok {
			t.Errorf("CheckAddr(%q, token %v) = %v, want ok %v", c.addr, c.token != "", err, c.ok)
		}
	}
}

// actionLog records the actions the handler queued.
type actionLog struct {
	mu   sync.Mutex
	done []string
}

func (a *actionLog) add(s string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.done = append(a.done, s)
	return nil
}

func (a *actionLog) list() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.done, ",")
}

func newPage(t *testing.T, token string) (*httptest.Server, *actionLog) {
	t.Helper()
	s := newStage(t)
	m := dashboard.New(dashboard.Config{Bucket: s.b, BucketName: s.name, Tables: tableNames()})
	log := &actionLog{}
	h := dashboard.NewHandler(dashboard.ServerConfig{Monitor: m, Token: token, Actions: dashboard.Actions{
		Crawl:     func() error { return log.add("crawl") },
		Export:    func() error { return log.add("export") },
		Reprocess: func(p string) error { return log.add("reprocess " + p) },
	}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, log
}

func do(t *testing.T, c *http.Client, method, u string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Without a token the page answers only to a loopback Host (a page whose
// name was rebound to 127.0.0.1 cannot read it), and an action must come
// from the page itself: a POST from another origin is refused.
func TestPageOnLoopbackRefusesOtherOriginsAndHosts(t *testing.T) {
	srv, log := newPage(t, "")
	c := srv.Client()
	u, _ := url.Parse(srv.URL)

	resp, body := do(t, c, "GET", srv.URL+"/", nil, "")
	if resp.StatusCode != 200 || !strings.Contains(body, "/static/page.js") {
		t.Fatalf("page: %d %.200s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers: CSP %q, nosniff %q", csp, resp.Header.Get("X-Content-Type-Options"))
	}
	for _, asset := range []string{"/static/page.js", "/static/page.css"} {
		if resp, _ := do(t, c, "GET", srv.URL+asset, nil, ""); resp.StatusCode != 200 {
			t.Errorf("%s: %d", asset, resp.StatusCode)
		}
	}
	resp, body = do(t, c, "GET", srv.URL+"/api/status", nil, "")
	var st dashboard.Status
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &st) != nil || len(st.Tables) != 4 || len(st.Problems) != 2 {
		t.Errorf("status: %d %.300s", resp.StatusCode, body)
	}

	if resp, _ := do(t, c, "GET", srv.URL+"/api/status", map[string]string{"Host": "attacker.example:" + u.Port()}, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("status with a foreign Host: %d, want 403", resp.StatusCode)
	}
	for name, hdr := range map[string]map[string]string{
		"another origin":       {"Origin": "http://attacker.example"},
		"a cross-site fetch":   {"Sec-Fetch-Site": "cross-site", "Origin": "http://attacker.example"},
		"an opaque origin":     {"Origin": "null"},
		"a same-site subframe": {"Sec-Fetch-Site": "same-site"},
	} {
		if resp, body := do(t, c, "POST", srv.URL+"/api/actions/export", hdr, ""); resp.StatusCode != http.StatusForbidden {
			t.Errorf("export from %s: %d %s, want 403", name, resp.StatusCode, body)
		}
	}
	if got := log.list(); got != "" {
		t.Fatalf("refused requests queued actions: %s", got)
	}
	own := map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}
	for _, a := range []string{"crawl", "export"} {
		if resp, body := do(t, c, "POST", srv.URL+"/api/actions/"+a, own, ""); resp.StatusCode != http.StatusAccepted {
			t.Errorf("%s from the page: %d %s", a, resp.StatusCode, body)
		}
	}
	do(t, c, "POST", srv.URL+"/api/actions/reprocess", own, "prefix=raw%2Fcharacter%2F")
	if resp, _ := do(t, c, "GET", srv.URL+"/api/actions/export", nil, ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("an action by GET: %d, want 405", resp.StatusCode)
	}
	if got := log.list(); got != "crawl,export,reprocess raw/character/" {
		t.Errorf("actions = %s", got)
	}
}

// With a token every request needs it: in the Authorization header, or as
// ?token= once (which leaves a cookie and takes the token out of the URL).
func TestPageWithTokenChecksEveryRequest(t *testing.T) {
	const token = "s3cret-token"
	srv, log := newPage(t, token)
	c := srv.Client()
	for _, path := range []string{"/", "/static/page.js", "/api/status", "/api/stream", "/api/object?key=rejected%2Fx.jsonl"} {
		if resp, _ := do(t, c, "GET", srv.URL+path, nil, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, resp.StatusCode)
		}
		if resp, _ := do(t, c, "GET", srv.URL+path, map[string]string{"Authorization": "Bearer wrong"}, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, resp.StatusCode)
		}
	}
	if resp, _ := do(t, c, "POST", srv.URL+"/api/actions/crawl", nil, ""); resp.StatusCode != http.StatusUnauthorized || log.list() != "" {
		t.Errorf("crawl without the token: %d, actions %q", resp.StatusCode, log.list())
	}
	if resp, _ := do(t, c, "GET", srv.URL+"/api/status", map[string]string{"Authorization": "Bearer " + token, "Host": "pipeline.example"}, ""); resp.StatusCode != 200 {
		t.Errorf("status with the token, from any host: %d", resp.StatusCode)
	}

	// ?token= sets the cookie and redirects to the URL without it.
	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := do(t, &noFollow, "GET", srv.URL+"/?token="+token, nil, "")
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		cookie = ck
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("?token=: %d, Location %q, cookie %+v", resp.StatusCode, resp.Header.Get("Location"), cookie)
	}
	if resp, _ := do(t, c, "GET", srv.URL+"/api/status", map[string]string{"Cookie": cookie.Name + "=" + cookie.Value}, ""); resp.StatusCode != 200 {
		t.Errorf("status with the cookie: %d", resp.StatusCode)
	}
	if resp, _ := do(t, c, "POST", srv.URL+"/api/actions/export", map[string]string{"Cookie": cookie.Name + "=" + cookie.Value, "Origin": "http://attacker.example"}, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("export with the cookie from another origin: %d, want 403", resp.StatusCode)
	}
	if resp, _ := do(t, c, "POST", srv.URL+"/api/actions/export", map[string]string{"Authorization": "Bearer " + token}, ""); resp.StatusCode != http.StatusAccepted || log.list() != "export" {
		t.Errorf("export with the token: %d, actions %q", resp.StatusCode, log.list())
	}
}

// The stream sends the status at once, as a server-sent event.
func TestStreamSendsStatus(t *testing.T) {
	srv, _ := newPage(t, "")
	resp, err := srv.Client().Get(srv.URL + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	var event, data string
	for data == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = v
		}
	}
	var st dashboard.Status
	if event != "status" || json.Unmarshal([]byte(data), &st) != nil || len(st.Tables) != 4 || len(st.Problems) != 2 {
		t.Errorf("event %q: %.300s", event, data)
	}
}
