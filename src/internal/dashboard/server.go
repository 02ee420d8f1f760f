package dashboard

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
)

//go:embed assets
var assets embed.FS

// DefaultAddr is where the page listens unless told otherwise.
const DefaultAddr = "127.0.0.1:8765"

// tokenCookie carries the token after the first request gave it in the URL,
// so the page's own requests (fetch, EventSource) need not repeat it.
const tokenCookie = "pipeline_ui_token"

// Actions are what the page's buttons ask for. Each queues its work and
// returns at once; an error says why it could not be queued.
type Actions struct {
	Crawl     func() error
	Export    func() error
	Reprocess func(prefix string) error
}

// ServerConfig configures the page's HTTP handler.
type ServerConfig struct {
	Monitor *Monitor
	Actions Actions
	// Token, when set, is required on every request: as
	// "Authorization: Bearer <token>", as ?token=<token> (which sets a
	// cookie for the page's own requests), or as that cookie.
	Token string
	// Heartbeat is how often the event stream sends a comment to keep idle
	// connections open; default 15s.
	Heartbeat time.Duration
}

// CheckAddr refuses to serve the page on an address other than loopback
// without a token: the page can trigger crawls and exports.
func CheckAddr(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--ui-addr %q: %w", addr, err)
	}
	if !isLoopback(host) && token == "" {
		return fmt.Errorf("--ui-addr %s is not a loopback address: give --ui-token (or $PIPELINE_UI_TOKEN) so that only you can use the page", addr)
	}
	return nil
}

// isLoopback reports whether host (a name or an IP, without port) is the
// loopback interface.
func isLoopback(host string) bool {
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewHandler returns the page, its assets, GET /api/status, the event
// stream and the actions.
func NewHandler(cfg ServerConfig) http.Handler {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	s := &server{cfg: cfg}
	static, _ := fs.Sub(assets, "assets")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /api/status", s.status)
	mux.HandleFunc("GET /api/stream", s.stream)
	mux.HandleFunc("GET /api/object", s.object)
	mux.HandleFunc("POST /api/actions/crawl", s.action(func(*http.Request) error { return cfg.Actions.Crawl() }))
	mux.HandleFunc("POST /api/actions/export", s.action(func(*http.Request) error { return cfg.Actions.Export() }))
	mux.HandleFunc("POST /api/actions/reprocess", s.action(func(r *http.Request) error {
		prefix := r.PostFormValue("prefix")
		if prefix == "" {
			prefix = bucket.RawPrefix
		}
		return cfg.Actions.Reprocess(prefix)
	}))
	// Actions are POSTs: a page elsewhere cannot make the browser send one
	// (Origin and Sec-Fetch-Site are checked against the Host).
	cop := http.NewCrossOriginProtection()
	return s.secure(s.authorize(cop.Handler(mux)))
}

type server struct {
	cfg ServerConfig
}

// secure sets the headers every answer carries: no script but the page's
// own file, no framing, no sniffing, no caching.
func (s *server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// authorize checks the token on every request when there is one; without
// one (loopback only), it refuses a Host that is not loopback, so a page
// whose name was rebound to 127.0.0.1 cannot read the status.
func (s *server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token == "" {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if !isLoopback(host) {
				writeError(w, http.StatusForbidden, fmt.Errorf("host %q is not loopback: the page answers only to 127.0.0.1 and localhost (give --ui-token to serve it elsewhere)", host))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if q := r.URL.Query().Get("token"); q != "" && s.tokenOK(q) && r.Method == http.MethodGet {
			// Keep the token out of the address bar and the history: a
			// cookie carries it from now on.
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: q, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			u := *r.URL
			qs := u.Query()
			qs.Del("token")
			u.RawQuery = qs.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		if s.tokenOK(bearer(r)) {
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(tokenCookie); err == nil && s.tokenOK(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusUnauthorized, errors.New("this page needs the token given to --ui-token: open /?token=<token>, or send Authorization: Bearer <token>"))
	})
}

func (s *server) tokenOK(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

func (s *server) page(w http.ResponseWriter, r *http.Request) {
	b, err := assets.ReadFile("assets/page.html")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b)
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Monitor.Refresh(r.Context()))
}

// stream sends the status as server-sent events: at once, then whenever
// the monitor refreshes it.
func (s *server) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	ch, cancel := s.cfg.Monitor.subscribe()
	defer cancel()
	first, err := json.Marshal(s.cfg.Monitor.Refresh(r.Context()))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	send := func(b []byte) bool {
		_, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", b)
		fl.Flush()
		return err == nil
	}
	if !send(first) {
		return
	}
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-ch:
			if !send(b) {
				return
			}
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

func (s *server) object(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	d, err := s.cfg.Monitor.Detail(r.Context(), key)
	switch {
	case errors.Is(err, ErrNotShown):
		writeError(w, http.StatusBadRequest, fmt.Errorf("%q: %w", key, err))
	case errors.Is(err, bucket.ErrGone):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		writeError(w, http.StatusBadGateway, err)
	default:
		writeJSON(w, http.StatusOK, d)
	}
}

// action answers 202 once fn queued the work.
func (s *server) action(fn func(*http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := fn(r); err != nil {
			writeError(w, http.StatusConflict, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"queued": strings.TrimPrefix(r.URL.Path, "/api/actions/")})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// PageURL is the address to open for a listener on addr.
func PageURL(addr string) string {
	return (&url.URL{Scheme: "http", Host: addr, Path: "/"}).String()
}
