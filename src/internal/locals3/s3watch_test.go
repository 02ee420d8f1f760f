package locals3_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
)

func writeFile(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func scan(tb testing.TB, w *locals3.Watcher) []string {
	tb.Helper()
	evs, err := w.Scan(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	var keys []string
	for _, ev := range evs {
		if ev.Source != locals3.SourceFolder || ev.EventName != locals3.EventPut || ev.Bucket != bucket || ev.Sequencer == "" {
			tb.Errorf("event %+v", ev)
		}
		keys = append(keys, ev.Key)
	}
	slices.Sort(keys)
	return keys
}

// newWatcher returns a watcher whose files count as settled as soon as two
// scans saw them unchanged.
func newWatcher(srv *locals3.Server, existing bool) *locals3.Watcher {
	return srv.NewWatcher(locals3.WatchOptions{Settle: -1, ReportExisting: existing})
}

func TestWatcherReportsCopiedFiles(t *testing.T) {
	srv, c, evs := startS3(t, t.TempDir())
	dir := srv.Dir(bucket)
	writeFile(t, filepath.Join(dir, "raw", "old.json"), "{}")
	w := newWatcher(srv, false)
	if got := scan(t, w); len(got) != 0 {
		t.Errorf("first scan reported %v; files present at start are taken as they are", got)
	}

	body := `{"results":[]}`
	writeFile(t, filepath.Join(dir, "raw", "character", "page-0001.json"), body)
	writeFile(t, filepath.Join(dir, "raw", ".page-0002.json.Xy12ab"), "rsync temp") // ignored
	writeFile(t, filepath.Join(dir, "raw", "page-0003.json.part"), "partial")       // ignored
	writeFile(t, filepath.Join(dir, "raw", ".hidden", "x.json"), "x")               // ignored
	if got := scan(t, w); len(got) != 0 {
		t.Errorf("reported %v at first sight; a file must be seen unchanged twice", got)
	}
	if got := scan(t, w); !slices.Equal(got, []string{"raw/character/page-0001.json"}) {
		t.Errorf("reported %v", got)
	}
	if got := scan(t, w); len(got) != 0 {
		t.Errorf("reported %v again", got)
	}
	ev := evs.list()
	if len(ev) != 1 || ev[0].Size != int64(len(body)) || ev[0].ETag != md5hex([]byte(body)) {
		t.Errorf("hook got %+v", ev)
	}

	// Written through the endpoint: announced by the PUT, not by the watcher.
	put(t, c, "raw/character/page-0002.json", "{}")
	scan(t, w)
	if got := scan(t, w); len(got) != 0 {
		t.Errorf("reported %v written through the endpoint", got)
	}

	// Changed in place: announced again.
	writeFile(t, filepath.Join(dir, "raw", "character", "page-0001.json"), body+"\n")
	scan(t, w)
	if got := scan(t, w); !slices.Equal(got, []string{"raw/character/page-0001.json"}) {
		t.Errorf("changed file: reported %v", got)
	}

	// The copied file is an object without metadata; its ETag is its MD5.
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("raw/character/page-0001.json")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ETag) != `"`+md5hex([]byte(body+"\n"))+`"` || len(head.Metadata) != 0 || aws.ToString(head.ContentType) != "application/json" {
		t.Errorf("head: ETag %s metadata %v type %s", aws.ToString(head.ETag), head.Metadata, aws.ToString(head.ContentType))
	}
}

func TestWatcherWaitsUntilFilesSettle(t *testing.T) {
	srv, _, _ := startS3(t, t.TempDir())
	now := time.Now().Add(time.Hour)
	w := srv.NewWatcher(locals3.WatchOptions{Settle: time.Minute, Now: func() time.Time { return now }})
	scan(t, w)
	p := filepath.Join(srv.Dir(bucket), "raw", "p.json")
	writeFile(t, p, "{")
	mtime := now.Add(-30 * time.Second)
	os.Chtimes(p, mtime, mtime)
	scan(t, w)
	if got := scan(t, w); len(got) != 0 {
		t.Errorf("reported %v modified 30s ago with Settle 1m", got)
	}
	writeFile(t, p, "{}") // still being written
	os.Chtimes(p, mtime, mtime.Add(time.Second))
	now = now.Add(time.Minute)
	if got := scan(t, w); len(got) != 0 {
		t.Errorf("reported %v right after it changed", got)
	}
	if got := scan(t, w); !slices.Equal(got, []string{"raw/p.json"}) {
		t.Errorf("reported %v", got)
	}
}

func TestWatcherReportExisting(t *testing.T) {
	dataDir := t.TempDir()
	srv, c, _ := startS3(t, dataDir)
	put(t, c, "raw/api.json", "{}")
	writeFile(t, filepath.Join(srv.Dir(bucket), "raw", "copied.json"), "{}")

	w := newWatcher(srv, true)
	scan(t, w)
	if got := scan(t, w); !slices.Equal(got, []string{"raw/copied.json"}) {
		t.Errorf("reported %v; want only the file never announced", got)
	}
	// A new watcher (a restart) does not announce it again.
	w = newWatcher(srv, true)
	scan(t, w)
	if got := scan(t, w); len(got) != 0 {
		t.Errorf("second watcher reported %v", got)
	}
}

func TestWatcherRun(t *testing.T) {
	srv, _, _ := startS3(t, t.TempDir())
	got := make(chan locals3.ObjectCreated, 1)
	srv.OnObjectCreated(func(ev locals3.ObjectCreated) { got <- ev })
	ctx, cancel := context.WithCancel(context.Background())
	w := srv.NewWatcher(locals3.WatchOptions{Interval: 10 * time.Millisecond, Settle: -1})
	scan(t, w) // the first scan takes the folder as it is
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	writeFile(t, filepath.Join(srv.Dir(bucket), "raw", "dropped.json"), "{}")
	ev := <-got
	if ev.Key != "raw/dropped.json" {
		t.Errorf("event %+v", ev)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}
