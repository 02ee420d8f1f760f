package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
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

// `pipeline serve`: a page put under raw/ with the AWS CLI, and one copied
// into the folder, flow into MySQL; a malformed file ends in quarantine/
// with its report and the stack goes on; Ctrl-C stops it cleanly.
func TestServeFlowsDroppedPagesIntoMySQL(t *testing.T) {
	aws := testenv.AWSCLI(t)
	db, dsn := testenv.MySQL(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data-dir", dir, "--s3-addr", "127.0.0.1:0", "--mysql-dsn", dsn, "--offline",
			"--no-initial-extract", "--extract-every", "0", "--export-every", "0"}, &stdout, &stderr)
	}()
	endpoint := ""
	re := regexp.MustCompile(`S3 endpoint  (http://127\.0\.0\.1:\d+)`)
	eventually(t, "serve printing its endpoint", &stdout, func() bool {
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d: %s%s", code, stdout.String(), stderr.String())
		default:
		}
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			endpoint = m[1]
		}
		return endpoint != ""
	})
	for _, want := range []string{"AWS_ACCESS_KEY_ID=" + locals3.AccessKeyID, "bucket " + localBucket, "MySQL        root@tcp("} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("serve does not print %q:\n%s", want, stdout.String())
		}
	}

	ds, err := fakeapi.Generate(fakeapi.Sizes{Characters: 45, Locations: 21, Episodes: 3}, 7)
	if err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "page.json")
	if err := os.WriteFile(page, servedPage(t, ds, "character", 1), 0o644); err != nil {
		t.Fatal(err)
	}
	awsCLI := func(args ...string) {
		t.Helper()
		cmd := exec.Command(aws, append([]string{"--endpoint-url", endpoint}, args...)...)
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
	count := func(q string) int {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil && err != sql.ErrNoRows {
			return -1 // the table may not exist before the first load
		}
		return n
	}

	awsCLI("s3", "cp", page, "s3://"+localBucket+"/raw/character/page-0001.json")
	eventually(t, "the 20 characters of the page loaded", &stdout, func() bool { return count("SELECT COUNT(*) FROM characters") == 20 })

	// A malformed file copied straight into the folder: quarantined with its report.
	folder := filepath.Join(dir, "s3", localBucket)
	if err := os.WriteFile(filepath.Join(folder, "raw", "character", "bad page.json"), []byte(`{"info":{"count":1,`), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(folder, filepath.FromSlash(bucket.ReportKey("raw/character/bad page.json")))
	eventually(t, "the malformed file quarantined", &stdout, func() bool { _, err := os.Stat(report); return err == nil })
	var rep map[string]any
	if b, err := os.ReadFile(report); err != nil || json.Unmarshal(b, &rep) != nil || !strings.Contains(string(b), "bad page.json") {
		t.Errorf("error report %s: %v %s", report, err, b)
	}
	if _, err := os.Stat(filepath.Join(folder, filepath.FromSlash(bucket.QuarantineKey("raw/character/bad page.json")))); err != nil {
		t.Errorf("the malformed file is not kept in quarantine/: %v", err)
	}

	// The stack goes on: a second page, this time copied into the folder.
	if err := os.WriteFile(filepath.Join(folder, "raw", "character", "page-0002.json"), servedPage(t, ds, "character", 2), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second page loaded", &stdout, func() bool { return count("SELECT COUNT(*) FROM characters") == 40 })

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited with %d after Ctrl-C: %s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop within a minute of Ctrl-C")
	}
	if !strings.Contains(stdout.String(), "stopped:") {
		t.Errorf("no closing summary:\n%s", stdout.String())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "s3tmp", "*")); len(left) > 0 {
		t.Errorf("half-written objects left behind: %v", left)
	}
}
