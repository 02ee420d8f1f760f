package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// With BUCKET naming a bucket that does not exist (a typo, a deleted bucket,
// a wrong account), the real bootstraps, run as Lambda runs them on events in
// AWS's shapes, never read it as "nothing to do": Extract fails and says so,
// Load keeps the message failed (SQS redelivers it, then dead-letters it),
// Export fails naming the bucket.
func TestMissingBucketThroughTheRealBootstraps(t *testing.T) {
	db, dsn := testenv.MySQL(t)
	testenv.S3(t) // MinIO must be there
	callerUsesMinIO(t)
	missing := "no-such-bucket-" + strings.ReplaceAll(testenv.RandomName(""), "_", "-")

	var env map[string]map[string]string
	data, err := os.ReadFile(minioEnvVars(t, dsn))
	if err != nil || json.Unmarshal(data, &env) != nil {
		t.Fatal(err)
	}
	for _, vars := range env {
		vars["BUCKET"] = missing
	}
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env.json")
	data, _ = json.Marshal(env)
	if err := os.WriteFile(envFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--no-local", "--env-vars", envFile, "--data-dir", dir, "--template", repoFile("template.yaml")}

	t.Run("extract", func(t *testing.T) {
		api, _ := startFakeAPI(t)
		code, _, stderr := cli(t, "", append([]string{"invoke", "ExtractFunction", "--event", repoFile("events/extract-schedule.json"),
			"--parameter-overrides", "ApiBaseUrl=" + api}, common...)...)
		if code == 0 || !strings.Contains(stderr, "the data bucket cannot be written") || !strings.Contains(stderr, missing) {
			t.Errorf("exit %d; stderr:\n%s", code, stderr)
		}
	})

	// Export: the warehouse's tables exist and hold no row, so no row is
	// due; a missing bucket read as "no watermark yet" made every table
	// up_to_date with no error. The run fails and names the bucket.
	t.Run("export", func(t *testing.T) {
		if err := warehousedb.Migrate(context.Background(), db); err != nil {
			t.Fatal(err)
		}
		code, out, stderr := cli(t, "", append([]string{"invoke", "ExportFunction", "--event", repoFile("events/export-schedule.json")}, common...)...)
		if code == 0 || strings.Contains(out, "up_to_date") || !strings.Contains(stderr, `bucket \"`+missing+`\" does not exist`) {
			t.Errorf("exit %d, response %s\nstderr:\n%s", code, out, stderr)
		}
	})

	t.Run("load", func(t *testing.T) {
		rec := bucket.EventRecord(bucket.Created{Bucket: missing, Key: "processed/characters/character/page-0001.csv", Size: 10,
			ETag: "0123456789abcdef0123456789abcdef", ConfigID: "LoadOnProcessedCsv", Time: time.Now()})
		body, _ := json.Marshal(events.S3Event{Records: []events.S3EventRecord{rec}})
		batch, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-0001", Body: string(body), EventSource: "aws:sqs",
			Attributes: map[string]string{"ApproximateReceiveCount": "1"}}}})
		code, out, stderr := cli(t, string(batch), append([]string{"invoke", "LoadFunction", "--event", "-"}, common...)...)
		if code != 0 || strings.TrimSpace(out) != `{"batchItemFailures":[{"itemIdentifier":"m-0001"}]}` {
			t.Errorf("exit %d, response %s; want the message failed\nstderr:\n%s", code, out, stderr)
		}
		if !strings.Contains(stderr, `does not exist`) || strings.Contains(stderr, "is gone") {
			t.Errorf("the log does not say the bucket is missing:\n%s", stderr)
		}
	})
}
