package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// browser is a headless Debian chromium driven over the DevTools protocol:
// it records what the page wrote to its console (errors, exceptions, CSP
// violations) and the dialogs it opened, accepting each.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	console  []string
	dialogs  []string
	requests []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		testenv.Unavailable(t, "Debian's chromium is not installed (.ci/services.sh installs it)")
	}
	// As root, without a sandbox; without the background networking that
	// would keep calling a closed network.
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1500))
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(cancel3)
	b := &browser{ctx: ctx}
	messages := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				b.mu.Lock()
				b.console = append(b.console, m.String())
				b.mu.Unlock()
			}
		}
	}()
	go func() {
		for d, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, string(d.Type)+": "+d.Message)
			b.mu.Unlock()
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}) //nolint:errcheck // the test checks the effect
		}
	}()
	go func() {
		for r, err := range requests {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.requests = append(b.requests, r.Request.URL)
			b.mu.Unlock()
		}
	}()
	return b
}

func (b *browser) do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) eval(t *testing.T, js string) string {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return s
}

// waitText waits until the text of sel satisfies ok, without reloading.
func (b *browser) waitText(t *testing.T, what, sel string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent.trim()`, sel)))
		if err == nil && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the page did not show it within a minute (%s = %q, %v)", what, sel, s, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// screenshot saves the page as name under the test's artifacts, and under
// src/internal/dashboard/screenshots/ for the README when
// UPDATE_SCREENSHOTS=1.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.ArtifactDir()
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", filepath.Join(dir, name))
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		if err := os.WriteFile(filepath.Join(testenv.RepoRoot(), "src", "internal", "dashboard", "screenshots", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// clean fails the test when the page threw, logged an error (a blocked
// script or load is one) or opened a dialog it should not have, since the
// last call.
func (b *browser) clean(t *testing.T, allowedDialogs ...string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.console {
		t.Errorf("console: %s", c)
	}
	for _, d := range b.dialogs {
		ok := false
		for _, a := range allowedDialogs {
			ok = ok || strings.HasPrefix(d, a)
		}
		if !ok {
			t.Errorf("unexpected dialog %q", d)
		}
	}
	b.console, b.dialogs = nil, nil
}

// hostile reads a file of the reliability suite's hostile corpus.
func hostile(name string) string {
	return filepath.Join(testenv.RepoRoot(), "src", "internal", "reliability", "testdata", "hostile", name)
}

// pwned says whether any script of a hostile key, report or object ran, or
// left markup behind.
const pwned = `String(window.__pwned !== undefined || document.querySelectorAll('img, iframe, [onerror], [onload], #problems b, #detail h1').length > 0)`

// The page of `pipeline serve` in a real browser: it follows a page dropped
// with the AWS CLI and a malformed file without a reload, shows hostile keys
// and reports as text, exports on a click and shows the watermark move.
// Then the report of a `pipeline run` opens offline from the file system,
// with the numbers of the run's --json.
func TestBrowserPageAndReport(t *testing.T) {
	b := newBrowser(t)
	_, dsn := testenv.MySQL(t)
	srv := startServe(t, dsn)

	b.do(t, chromedp.Navigate(srv.page), chromedp.WaitVisible(chromedp.CSS(`#live[data-state="live"]`)))
	b.eval(t, `window.__sameDocument = "yes"`)
	chars := `#tables tr[data-table="characters"] td[data-field="rows"]`
	if got := b.text(t, chars); !strings.HasPrefix(got, "0") {
		t.Errorf("characters before any load: %q", got)
	}

	// A page dropped with the AWS CLI: the count changes, without a reload.
	ds, err := fakeapi.Generate(fakeapi.Sizes{Characters: 45, Locations: 21, Episodes: 3}, 7)
	if err != nil {
		t.Fatal(err)
	}
	drop := func(local, key string) {
		t.Helper()
		awsCLI(t, srv.endpoint, "s3", "cp", local, "s3://"+localBucket+"/"+key)
	}
	for n := 1; n <= 2; n++ {
		p := filepath.Join(t.TempDir(), "page.json")
		if err := os.WriteFile(p, servedPage(t, ds, "character", n), 0o644); err != nil {
			t.Fatal(err)
		}
		drop(p, fmt.Sprintf("raw/character/page-%04d.json", n))
		want := fmt.Sprint(20 * n)
		b.waitText(t, "the characters of page "+want, chars, func(s string) bool { return s == want })
	}
	if b.eval(t, `String(window.__sameDocument)`) != "yes" {
		t.Fatal("the page was reloaded")
	}

	// Hostile keys and contents: a proxy's HTML error page (quarantined) and
	// records of the wrong shapes (rejected), each under a key that is
	// markup.
	quarantinedKey := `raw/character/<img src=x onerror="window.__pwned=1">.json`
	rejectedKey := `raw/character/"><b onmouseover=window.__pwned=2>bold</b>'.json`
	drop(hostile("raw/html.json"), quarantinedKey)
	drop(hostile("raw/wrong-shapes.json"), rejectedKey)
	q := `#problems tr[data-kind="quarantined"]`
	got := b.waitText(t, "the quarantined file and its reason", q, func(s string) bool { return strings.Contains(s, "invalid character '<'") })
	if !strings.Contains(got, quarantinedKey) {
		t.Errorf("the quarantined row %q does not show the key as text", got)
	}
	got = b.waitText(t, "the rejected records and their reason", `#problems tr[data-kind="rejected"]`, func(s string) bool { return strings.Contains(s, "id: must be a positive integer") })
	if !strings.Contains(got, rejectedKey) {
		t.Errorf("the rejected row %q does not show the key as text", got)
	}
	b.waitText(t, "the events of the hostile keys", "#events tbody", func(s string) bool { return strings.Contains(s, quarantinedKey) })

	// A click shows the report and the first bytes, as text.
	b.do(t, chromedp.Click(chromedp.CSS(q)))
	b.waitText(t, "the first bytes of the quarantined file", "#detail-bytes", func(s string) bool {
		return strings.Contains(s, "<html><body><h1>502 Bad Gateway</h1></body></html>")
	})
	if rep := b.text(t, "#detail-report"); !strings.Contains(rep, `"reason"`) || !strings.Contains(rep, `onerror=`) {
		t.Errorf("the report shown: %q", rep)
	}
	if b.eval(t, pwned) != "false" {
		t.Error("a hostile key or object ran script or left markup in the page")
	}

	// Export now: the watermark appears, then moves with the next export.
	mark := `#tables tr[data-table="characters"] td[data-field="watermark"]`
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$`)
	if before := b.text(t, mark); before != "none yet" {
		t.Errorf("watermark before any export: %q", before)
	}
	b.do(t, chromedp.Click(chromedp.CSS("#export")))
	first := b.waitText(t, "the watermark after export now", mark, stamp.MatchString)
	b.waitText(t, "the rows of the first export", `#tables tr[data-table="characters"] td[data-field="exported"]`, func(s string) bool { return s != "–" && s != "0" })
	before := b.text(t, chars)
	p := filepath.Join(t.TempDir(), "page.json")
	if err := os.WriteFile(p, servedPage(t, ds, "character", 3), 0o644); err != nil {
		t.Fatal(err)
	}
	drop(p, "raw/character/page-0003.json")
	b.waitText(t, "the third page's characters", chars, func(s string) bool { return s != before })
	b.do(t, chromedp.Click(chromedp.CSS("#export")))
	second := b.waitText(t, "the watermark moving", mark, func(s string) bool { return stamp.MatchString(s) && s != first })
	if second <= first {
		t.Errorf("the watermark moved back: %s, then %s", first, second)
	}
	b.waitText(t, "the export in the actions", "#actions", func(s string) bool { return strings.Contains(s, "export (page): done") })

	// Reprocess asks first, then runs.
	b.do(t, chromedp.SetValue(chromedp.CSS("#prefix"), "raw/character/page-"), chromedp.Click(chromedp.CSS("#reprocess")))
	b.waitText(t, "the reprocess done", "#actions", func(s string) bool { return strings.Contains(s, "reprocess (page): done") })
	b.do(t, chromedp.ScrollIntoView(chromedp.CSS("#chain")))
	b.screenshot(t, "page.png")
	if b.eval(t, pwned) != "false" {
		t.Error("a hostile key or object ran script or left markup in the page")
	}
	b.do(t, chromedp.Navigate("about:blank")) // closes the event stream before serve stops
	b.clean(t, "confirm: Reprocess every .json object under raw/character/page-?")
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited with %d: %s", code, srv.stderr.String())
	}

	// The report of a run, opened from the file system.
	_, runDSN := testenv.MySQL(t)
	res := runPipeline(t, 0, "--offline", "--characters", "45", "--locations", "21", "--episodes", "3", "--data-dir", t.TempDir(), "--mysql-dsn", runDSN)
	b.mu.Lock()
	b.requests = nil
	b.mu.Unlock()
	b.do(t, chromedp.Navigate("file://"+res.Report), chromedp.WaitVisible(chromedp.CSS("#gantt")))
	for table, r := range res.Rows {
		for field, want := range map[string]int64{"transformed": int64(r.Transformed), "loaded": r.Loaded, "total": r.Total, "exported": r.Exported} {
			if got := b.text(t, fmt.Sprintf(`#rows tr[data-table=%q] td[data-field=%q]`, table, field)); got != fmt.Sprint(want) {
				t.Errorf("report: %s %s = %s, --json says %d", table, field, got, want)
			}
		}
	}
	if got := b.text(t, `#stages tr[data-stage="extract"]`); !strings.Contains(got, fmt.Sprintf("%d written", res.Extract.Written)) {
		t.Errorf("report extract stage %q, --json says %d written", got, res.Extract.Written)
	}
	if got := b.text(t, "#verdict"); got != "succeeded" {
		t.Errorf("report verdict %q for a run without failures", got)
	}
	for _, d := range res.Delivery {
		fn, field := d.Target, "invocations"
		if d.Kind == "queue" {
			fn, field = loadID, "messages"
		}
		if got := b.text(t, fmt.Sprintf(`#invocations tr[data-function=%q] td[data-field=%q]`, fn, field)); got != fmt.Sprint(d.Deliveries) {
			t.Errorf("report: %s %s = %s, --json delivered %d", fn, field, got, d.Deliveries)
		}
	}
	files := 0
	for _, et := range res.Export.Tables {
		for _, key := range et.Files {
			files++
			row := b.eval(t, fmt.Sprintf(`Array.from(document.querySelectorAll('#exports tbody tr')).filter(r => r.cells[2].textContent === %q).map(r => r.cells[3].textContent).join()`, key))
			if row != fmt.Sprint(et.Rows) {
				t.Errorf("report: export file %s has %q rows, --json says %d", key, row, et.Rows)
			}
		}
	}
	if n := b.eval(t, `String(document.querySelectorAll('#exports tbody tr').length)`); n != fmt.Sprint(files) || files == 0 {
		t.Errorf("report lists %s export files, --json %d", n, files)
	}
	if n := b.eval(t, `String(document.querySelectorAll('#gantt rect.bar').length)`); n == "0" {
		t.Error("the timeline has no bar")
	}
	b.screenshot(t, "report.png")
	b.mu.Lock()
	for _, u := range b.requests {
		if !strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the report loaded %s: it must load nothing", u)
		}
	}
	b.mu.Unlock()
	b.clean(t)
}
