package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/dashboard"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// servedPage returns page n of resource as the fake API serves it.
func servedPage(t *testing.T, ds *fakeapi.Dataset, resource string, n int) []byte {
	t.Helper()
	srv := httptest.NewServer(fakeapi.New(ds, fakeapi.Options{BaseURL: "https://rickandmortyapi.com/api"}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/api/" + resource + "?page=" + string(rune('0'+n)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventually polls cond until it holds, failing the test after a minute.
func eventually(t *testing.T, what string, out *syncBuffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within a minute; serve printed:\n%s", what, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getStatus reads GET /api/status of the page at base.
func getStatus(t *testing.T, base string) dashboard.Status {
	t.Helper()
	resp, err := http.Get(base + "api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st dashboard.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/status: %d %v", resp.StatusCode, err)
	}
	return st
}

// post sends an action to the page at base, as a script would (no Origin).
func post(t *testing.T, base, action string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(base+"api/actions/"+action, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// serveSession is a `pipeline serve` running in the test.
type serveSession struct {
	endpoint, page string // the S3 endpoint and the page's URL
	dir            string // --data-dir
	stdout, stderr syncBuffer
	cancel         context.CancelFunc
	done           chan int
}

// startServe runs `pipeline serve` on MySQL dsn with a page on a free
// port, no schedule and no initial crawl, and waits for its endpoints.
func startServe(t *testing.T, dsn string, extra ...string) *serveSession {
	t.Helper()
	s := &serveSession{dir: t.TempDir(), done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	t.Cleanup(cancel)
	args := append([]string{"serve", "--data-dir", s.dir, "--s3-addr", "127.0.0.1:0", "--mysql-dsn", dsn, "--offline",
		"--no-initial-extract", "--extract-every", "0", "--export-every", "0", "--ui-addr", "127.0.0.1:0"}, extra...)
	go func() { s.done <- run(ctx, args, &s.stdout, &s.stderr) }()
	re := regexp.MustCompile(`S3 endpoint  (http://127\.0\.0\.1:\d+)`)
	pageRe := regexp.MustCompile(`page         (http://127\.0\.0\.1:\d+/) `)
	eventually(t, "serve printing its endpoints", &s.stdout, func() bool {
		select {
		case code := <-s.done:
			t.Fatalf("serve exited with %d: %s%s", code, s.stdout.String(), s.stderr.String())
		default:
		}
		if m := re.FindStringSubmatch(s.stdout.String()); m != nil {
			s.endpoint = m[1]
		}
		if m := pageRe.FindStringSubmatch(s.stdout.String()); m != nil {
			s.page = m[1]
		}
		return s.endpoint != "" && s.page != ""
	})
	return s
}

// stop is Ctrl-C: it returns serve's exit status.
func (s *serveSession) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		return code
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop within a minute of Ctrl-C")
	}
	return -1
}

// awsCLI runs the AWS CLI against the S3 endpoint with the local stack's
// credentials and nothing of the user's configuration.
func awsCLI(t *testing.T, endpoint string, args ...string) {
	t.Helper()
	cmd := exec.Command(testenv.AWSCLI(t), append([]string{"--endpoint-url", endpoint}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "AWS_ACCESS_KEY_ID="+locals3.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+locals3.SecretAccessKey,
		"AWS_REGION="+locals3.Region, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aws %v: %v\n%s", args, err, out)
	}
}

// `pipeline serve`: a page put under raw/ with the AWS CLI, and one copied
// into the folder, flow into MySQL; a malformed file ends in quarantine/
// with its report and the stack goes on; Ctrl-C stops it cleanly. Its page's
// GET /api/status says so at every step, and its actions export and
// reprocess.
func TestServeFlowsDroppedPagesIntoMySQL(t *testing.T) {
	testenv.AWSCLI(t)
	db, dsn := testenv.MySQL(t)
	srv := startServe(t, dsn)
	dir, page, stdout, stderr := srv.dir, srv.page, &srv.stdout, &srv.stderr
	st := getStatus(t, page)
	if len(st.Tables) != 4 || st.Tables["characters"] != 0 || len(st.Queues) != 2 || st.Bucket != localBucket {
		t.Errorf("status at start: tables %v, queues %+v, bucket %q", st.Tables, st.Queues, st.Bucket)
	}
	for _, want := range []string{"AWS_ACCESS_KEY_ID=" + locals3.AccessKeyID, "bucket " + localBucket, "MySQL        root@tcp("} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("serve does not print %q:\n%s", want, stdout.String())
		}
	}

	ds, err := fakeapi.Generate(fakeapi.Sizes{Characters: 45, Locations: 21, Episodes: 3}, 7)
	if err != nil {
		t.Fatal(err)
	}
	pageFile := filepath.Join(t.TempDir(), "page.json")
	if err := os.WriteFile(pageFile, servedPage(t, ds, "character", 1), 0o644); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil && err != sql.ErrNoRows {
			return -1 // the table may not exist before the first load
		}
		return n
	}

	awsCLI(t, srv.endpoint, "s3", "cp", pageFile, "s3://"+localBucket+"/raw/character/page-0001.json")
	eventually(t, "the 20 characters of the page loaded", stdout, func() bool { return count("SELECT COUNT(*) FROM characters") == 20 })
	// The rows are committed before their message is acknowledged: wait for
	// the queues to drain too.
	eventually(t, "the status counting the 20 characters, the queues drained", stdout, func() bool {
		st = getStatus(t, page)
		for _, q := range st.Queues {
			if q.Waiting != 0 {
				return false
			}
		}
		return st.Tables["characters"] == 20 && st.Objects["raw/"] == 1
	})
	var transformed, loaded bool
	for _, e := range st.Events {
		transformed = transformed || e.Key == "raw/character/page-0001.json" && e.Function == transformID && e.Outcome == "transformed"
		loaded = loaded || strings.HasPrefix(e.Key, "processed/characters/") && e.Function == loadID && e.Outcome == "loaded" && e.Rows == 20
	}
	if !transformed || !loaded || st.Written["raw/"] != 1 || st.RowsLoaded == 0 || st.LastRunStart == nil {
		t.Errorf("status after a page: events %+v, written %v, rows loaded %d", st.Events, st.Written, st.RowsLoaded)
	}
	for _, q := range st.Queues {
		if q.Sent == 0 || q.Waiting != 0 || q.DeadLetters != 0 {
			t.Errorf("queue %+v after a page, want sent, none waiting, no dead letters", q)
		}
	}

	// A malformed file copied straight into the folder: quarantined with its report.
	folder := filepath.Join(dir, "s3", localBucket)
	if err := os.WriteFile(filepath.Join(folder, "raw", "character", "bad page.json"), []byte(`{"info":{"count":1,`), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(folder, filepath.FromSlash(bucket.ReportKey("raw/character/bad page.json")))
	eventually(t, "the malformed file quarantined", stdout, func() bool { _, err := os.Stat(report); return err == nil })
	var rep map[string]any
	if b, err := os.ReadFile(report); err != nil || json.Unmarshal(b, &rep) != nil || !strings.Contains(string(b), "bad page.json") {
		t.Errorf("error report %s: %v %s", report, err, b)
	}
	if _, err := os.Stat(filepath.Join(folder, filepath.FromSlash(bucket.QuarantineKey("raw/character/bad page.json")))); err != nil {
		t.Errorf("the malformed file is not kept in quarantine/: %v", err)
	}
	var bad dashboard.Problem
	eventually(t, "the status showing the malformed file", stdout, func() bool {
		for _, p := range getStatus(t, page).Problems {
			if p.Source == "raw/character/bad page.json" {
				bad = p
			}
		}
		return bad.Source != ""
	})
	if bad.Kind != dashboard.Quarantined || bad.Stage != "transform" || !strings.Contains(bad.Reason, "truncated JSON") {
		t.Errorf("the malformed file in the status: %+v", bad)
	}

	// The stack goes on: a second page, this time copied into the folder.
	if err := os.WriteFile(filepath.Join(folder, "raw", "character", "page-0002.json"), servedPage(t, ds, "character", 2), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second page loaded", stdout, func() bool { return count("SELECT COUNT(*) FROM characters") == 40 })

	// Export now: the watermarks appear. Reprocess: raw/ only.
	if code, body := post(t, page, "export", nil); code != http.StatusAccepted {
		t.Fatalf("export now: %d %s", code, body)
	}
	eventually(t, "the export's watermark", stdout, func() bool {
		w := getStatus(t, page).Watermarks["characters"]
		return w != nil && w.Rows == 40 && w.Error == ""
	})
	if code, body := post(t, page, "reprocess", url.Values{"prefix": {"processed/"}}); code != http.StatusConflict || !strings.Contains(body, "only raw objects") {
		t.Errorf("reprocess processed/: %d %s, want refused", code, body)
	}
	if code, body := post(t, page, "reprocess", url.Values{"prefix": {"raw/character/page-"}}); code != http.StatusAccepted {
		t.Fatalf("reprocess: %d %s", code, body)
	}
	eventually(t, "the reprocess done", stdout, func() bool {
		for _, a := range getStatus(t, page).Actions {
			if a.Name == "reprocess" && a.State == dashboard.Done && strings.Contains(a.Summary, "2 of 2 objects") {
				return true
			}
		}
		return false
	})

	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited with %d after Ctrl-C: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "stopped:") {
		t.Errorf("no closing summary:\n%s", stdout.String())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "s3tmp", "*")); len(left) > 0 {
		t.Errorf("half-written objects left behind: %v", left)
	}
}
