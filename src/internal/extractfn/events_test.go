package extractfn

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

func readEvent(t *testing.T, file string) Event {
	t.Helper()
	b, err := os.ReadFile("../../../events/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// The sample events, as `sam local invoke -e` sends them, drive the handler
// end to end: the fake API as the API, MinIO as S3.
func TestScheduleEventsCrawlIntoS3(t *testing.T) {
	client, bucket := testenv.S3(t)
	ds, err := fakeapi.Generate(fakeapi.DefaultSizes, 1)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fakeapi.New(ds, fakeapi.Options{}))
	defer srv.Close()
	cfg, err := ConfigFromEnv(func(k string) string {
		return map[string]string{"BUCKET": bucket, "API_BASE_URL": srv.URL + "/api", "S3_FORCE_PATH_STYLE": "true"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	h := New(cfg, client, nil, time.Now, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))

	for _, step := range []struct {
		file               string
		force              bool
		written, unchanged int
	}{
		{"extract-schedule.json", false, 52, 0}, // an empty bucket: every page is new
		{"extract-force.json", true, 52, 0},     // force rewrites every page
		{"extract-schedule.json", false, 0, 52}, // nothing changed: nothing written
	} {
		t.Run(step.file, func(t *testing.T) {
			ev := readEvent(t, step.file)
			if got := ev.Force || ev.Detail.Force; got != step.force {
				t.Fatalf("force = %v, want %v", got, step.force)
			}
			res, err := h.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Complete || res.Force != step.force || res.Written != step.written || res.Unchanged != step.unchanged {
				t.Errorf("result %+v", res)
			}
			if _, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(res.ManifestKey)}); err != nil {
				t.Errorf("manifest %s: %v", res.ManifestKey, err)
			}
		})
	}
	out, err := client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("raw/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 52 || aws.ToString(out.Contents[0].Key) != "raw/character/page-0001.json" {
		t.Errorf("%d objects under raw/, first %q", len(out.Contents), aws.ToString(out.Contents[0].Key))
	}
}

func TestEventShapes(t *testing.T) {
	for in, force := range map[string]bool{
		`{"force":true}`: true,
		`{"detail-type":"Scheduled Event","detail":{"force":true}}`: true,
		`{"detail-type":"Scheduled Event","detail":{}}`:             false,
		`{}`: false,
	} {
		var ev Event
		if err := json.Unmarshal([]byte(in), &ev); err != nil {
			t.Fatal(err)
		}
		if got := ev.Force || ev.Detail.Force; got != force {
			t.Errorf("%s: force %v", in, got)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	cfg, err := ConfigFromEnv(func(k string) string { return map[string]string{"BUCKET": "b"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Bucket: "b", APIBaseURL: "https://rickandmortyapi.com/api", Concurrency: 4, RequestTimeout: 10 * time.Second, RetryMax: 5, RetryBudget: 100}
	if cfg != want {
		t.Errorf("defaults %+v, want %+v", cfg, want)
	}
	env := map[string]string{
		"API_BASE_URL": "http://127.0.0.1:8080/api", "CRAWL_CONCURRENCY": "0", "REQUEST_TIMEOUT": "soon",
		"RETRY_MAX": "x", "RETRY_BUDGET": "-1", "S3_FORCE_PATH_STYLE": "maybe",
	}
	_, err = ConfigFromEnv(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"BUCKET", "CRAWL_CONCURRENCY", "REQUEST_TIMEOUT", "RETRY_MAX", "RETRY_BUDGET", "S3_FORCE_PATH_STYLE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}
