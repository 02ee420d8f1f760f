package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// cli runs `pipeline args...` with stdin and returns its exit status and
// output.
func cli(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runWithInput(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustCLI runs `pipeline args...` and fails the test unless it exits 0.
func mustCLI(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	code, stdout, stderr := cli(t, "", args...)
	if code != 0 {
		t.Fatalf("pipeline %s: exit %d\nstderr:\n%s\nstdout:\n%.3000s", strings.Join(args, " "), code, stderr, stdout)
	}
	return stdout, stderr
}

// repoFile is a path under the repository's top folder.
func repoFile(name string) string { return filepath.Join(testenv.RepoRoot(), name) }

// sharedMinIOBucket gives the test the MinIO bucket called name, which
// events/ name and so cannot be made unique: other runs of the test (other
// worktrees on this machine) wait for it, by a lock file, until the test
// ends. The bucket is emptied, versioned as the template's is, and removed
// at the end.
func sharedMinIOBucket(t *testing.T, name string) *s3.Client {
	t.Helper()
	c, probe := testenv.S3(t) // fails, or skips, without MinIO
	_ = probe
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "rickmorty-minio-"+name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	removeVersionedBucket(t, c, name)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		removeVersionedBucket(t, c, name)
		lock.Close() // releases the lock
	})
	return c
}

// removeVersionedBucket deletes every version of every object of the bucket
// and the bucket, when it exists.
func removeVersionedBucket(t *testing.T, c *s3.Client, name string) {
	t.Helper()
	ctx := context.Background()
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return // no such bucket
		}
		var ids []types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) > 0 {
			if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(name), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
				t.Fatalf("emptying %s: %v", name, err)
			}
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("removing %s: %v", name, err)
	}
}

// keys lists the keys under prefix.
func keys(t *testing.T, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}

// csvRows reads the CSV object at key: its header and data rows.
func csvRows(t *testing.T, c *s3.Client, bucket, key string) (header []string, rows [][]string) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("getting %s: %v", key, err)
	}
	defer out.Body.Close()
	recs, err := csv.NewReader(out.Body).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("%s: %d records, %v", key, len(recs), err)
	}
	return recs[0], recs[1:]
}

// minioEnvVars writes events/env.json with its endpoints moved to MinIO and
// MariaDB (what `sam local` reaches as host.docker.internal is here), and
// without EXPORT_LAG, so that --parameter-overrides ExportLag decides it.
func minioEnvVars(t *testing.T, dsn string) string {
	t.Helper()
	data, err := os.ReadFile(repoFile("events/env.json"))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]map[string]string
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	for fn, vars := range env {
		if _, ok := vars["AWS_ENDPOINT_URL_S3"]; !ok {
			t.Fatalf("events/env.json gives %s no AWS_ENDPOINT_URL_S3", fn)
		}
		vars["AWS_ENDPOINT_URL_S3"] = testenv.S3Endpoint()
		if _, ok := vars["MYSQL_DSN"]; ok {
			vars["MYSQL_DSN"] = dsn
		}
		delete(vars, "EXPORT_LAG")
	}
	path := filepath.Join(t.TempDir(), "env.json")
	b, _ := json.Marshal(env)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// callerUsesMinIO makes MinIO's credentials the caller's AWS configuration,
// which --no-local hands to the function.
func callerUsesMinIO(t *testing.T) {
	t.Helper()
	creds, err := testenv.S3Config().Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", creds.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", creds.SecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", testenv.S3Endpoint())
	t.Setenv("S3_FORCE_PATH_STYLE", "true")
	t.Setenv("BUCKET", localBucket)
}

// invocations decodes `pipeline invoke --json`.
func invocations(t *testing.T, stdout string) []invocationResult {
	t.Helper()
	var res invokeResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("pipeline invoke --json: %v\n%s", err, stdout)
	}
	return res.Invocations
}

// TestEventsThroughTheRealBootstraps runs every file of events/ through
// `pipeline invoke` against MinIO and MariaDB, with each function's
// bootstrap built for this machine and run as Lambda runs it, in the
// pipeline's order, and checks what each leaves behind.
func TestEventsThroughTheRealBootstraps(t *testing.T) {
	db, dsn := testenv.MySQL(t)
	c := sharedMinIOBucket(t, localBucket)
	callerUsesMinIO(t)
	ds, err := fakeapi.Generate(fakeapi.DefaultSizes, 1)
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(fakeapi.New(ds, fakeapi.Options{BaseURL: rickmorty.DefaultBaseURL}))
	defer api.Close()
	dataDir := t.TempDir()
	common := []string{"--no-local", "--env-vars", minioEnvVars(t, dsn), "--data-dir", dataDir, "--template", repoFile("template.yaml")}
	ctx := context.Background()

	// Every file of events/ is used below.
	files, err := filepath.Glob(repoFile("events/*.json"))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{"env.json": true}
	ev := func(name string) string { used[name] = true; return repoFile("events/" + name) }
	defer func() {
		for _, f := range files {
			if !used[filepath.Base(f)] && !t.Failed() {
				t.Errorf("events/%s was not invoked", filepath.Base(f))
			}
		}
	}()

	// Extract: the schedule, then the forced crawl, in one warm process.
	out, stderr := mustCLI(t, append([]string{"invoke", "ExtractFunction", "--event", ev("extract-schedule.json"), "--event", ev("extract-force.json"),
		"--parameter-overrides", "ApiBaseUrl=" + api.URL + "/api", "--json"}, common...)...)
	invs := invocations(t, out)
	if len(invs) != 2 || !invs[0].Cold || invs[0].InitDurationMs <= 0 || invs[1].Cold || invs[1].InitDurationMs != 0 {
		t.Fatalf("extract invocations: %+v", invs)
	}
	for i, want := range []struct{ force bool }{{false}, {true}} {
		var r struct {
			Force    bool `json:"force"`
			Complete bool `json:"complete"`
			Written  int  `json:"written"`
		}
		if err := json.Unmarshal(invs[i].Response, &r); err != nil || r.Force != want.force || !r.Complete || r.Written != 52 {
			t.Errorf("extract %d: %s (%v)", i, invs[i].Response, err)
		}
	}
	if strings.Count(stderr, "REPORT RequestId: ") != 2 || strings.Count(stderr, "Init Duration: ") != 1 {
		t.Errorf("extract's REPORT lines:\n%s", stderr)
	}
	if raw := keys(t, c, localBucket, "raw/"); len(raw) != 52 || raw[0] != "raw/character/page-0001.json" {
		t.Fatalf("raw/: %d objects, first %v", len(raw), raw[:min(1, len(raw))])
	}
	if m := keys(t, c, localBucket, "manifests/extract/"); len(m) != 2 {
		t.Errorf("extract manifests: %v", m)
	}

	// Transform: the first page of characters becomes CSVs.
	out, stderr = mustCLI(t, append([]string{"invoke", "TransformFunction", "--event", ev("transform-s3-put.json")}, common...)...)
	if out != "null\n" || !strings.Contains(stderr, `"msg":"transformed"`) || !strings.Contains(stderr, "REPORT RequestId: ") {
		t.Errorf("transform: stdout %q\nstderr:\n%s", out, stderr)
	}
	header, rows := csvRows(t, c, localBucket, "processed/characters/character/page-0001.csv")
	if len(rows) != 20 || header[0] != "id" {
		t.Errorf("characters CSV: header %v, %d rows", header, len(rows))
	}
	if _, links := csvRows(t, c, localBucket, "processed/character_episodes/character/page-0001.csv"); len(links) == 0 {
		t.Error("no character_episodes rows")
	}

	// Load: the batch of the two CSVs and S3's test event.
	out, _ = mustCLI(t, append([]string{"invoke", "LoadFunction", "--event", ev("load-sqs-batch.json")}, common...)...)
	if strings.TrimSpace(out) != `{"batchItemFailures":[]}` {
		t.Errorf("load: %s", out)
	}
	var chars, links int
	if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM characters), (SELECT COUNT(*) FROM character_episodes)").Scan(&chars, &links); err != nil {
		t.Fatal(err)
	}
	if chars != 20 || links == 0 {
		t.Errorf("after load: %d characters, %d links", chars, links)
	}
	if log, err := warehousedb.LoadLog(ctx, db); err != nil || len(log) != 2 {
		t.Errorf("load log: %+v, %v", log, err)
	}

	// Export: with ExportLag 0s, every row loaded is exported.
	out, _ = mustCLI(t, append([]string{"invoke", "ExportFunction", "--event", ev("export-schedule.json"), "--parameter-overrides", "ExportLag=0s"}, common...)...)
	var exp struct {
		Tables []struct {
			Table string `json:"table"`
			Rows  int64  `json:"rows"`
		} `json:"tables"`
	}
	if err := json.Unmarshal([]byte(out), &exp); err != nil {
		t.Fatalf("export response %s: %v", out, err)
	}
	exported := map[string]int64{}
	for _, tb := range exp.Tables {
		exported[tb.Table] = tb.Rows
	}
	if exported["characters"] != 20 || exported["character_episodes"] != int64(links) {
		t.Errorf("exported %v", exported)
	}
	var csvKey string
	for _, k := range keys(t, c, localBucket, "exports/characters/") {
		if strings.HasSuffix(k, ".csv") {
			csvKey = k
		}
	}
	if csvKey == "" || !slices.ContainsFunc(keys(t, c, localBucket, "exports/characters/"), func(k string) bool { return strings.HasSuffix(k, ".parquet") }) {
		t.Fatalf("exports/characters/: %v", keys(t, c, localBucket, "exports/characters/"))
	}
	if _, rows := csvRows(t, c, localBucket, csvKey); len(rows) != 20 {
		t.Errorf("%s: %d rows", csvKey, len(rows))
	}
	if wm := keys(t, c, localBucket, "exports/characters/csv/last_extract.txt"); len(wm) != 1 {
		t.Errorf("no watermark: %v", wm)
	}

	t.Run("poison message", func(t *testing.T) {
		// A real notification (pipeline event, from MinIO: version and ETag
		// filled) and a message that is no notification at all, through
		// standard input: exactly the poison message fails.
		out, _ := mustCLI(t, "event", "sqs", "--no-local", "--key", "processed/characters/character/page-0001.csv", "--template", repoFile("template.yaml"))
		var batch events.SQSEvent
		if err := json.Unmarshal([]byte(out), &batch); err != nil || len(batch.Records) != 1 {
			t.Fatalf("pipeline event sqs: %v\n%s", err, out)
		}
		poison := batch.Records[0]
		poison.MessageId, poison.Body = "poison-0001", "this is not an S3 notification"
		batch.Records = append(batch.Records, poison)
		in, _ := json.Marshal(batch)
		code, out, stderr := cli(t, string(in), append([]string{"invoke", "LoadFunction", "--event", "-"}, common...)...)
		if code != 0 || strings.TrimSpace(out) != `{"batchItemFailures":[{"itemIdentifier":"poison-0001"}]}` {
			t.Errorf("exit %d, response %s\nstderr:\n%s", code, out, stderr)
		}
		if !strings.Contains(stderr, `"reason":"already loaded"`) {
			t.Errorf("the real notification was not handled:\n%s", stderr)
		}
	})

	t.Run("event s3-put on MinIO", func(t *testing.T) {
		const key = "raw/manual/rick and morty+1.json"
		put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(localBucket), Key: aws.String(key), Body: strings.NewReader(`{"id": 1}`)})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := mustCLI(t, "event", "s3-put", "--no-local", "--key", key, "--template", repoFile("template.yaml"))
		var ev events.S3Event
		if err := json.Unmarshal([]byte(out), &ev); err != nil || len(ev.Records) != 1 {
			t.Fatalf("%v\n%s", err, out)
		}
		o := ev.Records[0].S3.Object
		if o.Key != "raw/manual/rick+and+morty%2B1.json" || o.URLDecodedKey != key || o.Size != 9 ||
			o.ETag != strings.Trim(aws.ToString(put.ETag), `"`) || o.VersionID == "" || o.VersionID != aws.ToString(put.VersionId) {
			t.Errorf("record object %+v; put ETag %s, version %s", o, aws.ToString(put.ETag), aws.ToString(put.VersionId))
		}
		if r := ev.Records[0]; r.EventName != "ObjectCreated:Put" || r.S3.Bucket.Name != localBucket || r.S3.ConfigurationID != "TransformFunction" {
			t.Errorf("record %+v", r)
		}
		if strings.Contains(out, "urlDecodedKey") {
			t.Errorf("S3 sends no urlDecodedKey:\n%s", out)
		}
	})
}

// TestInvokeOnTheLocalStack: by default the functions run against the local
// stack on --data-dir, whatever endpoints events/env.json names (they are
// for SAM's container), and Extract crawls the fake API when told to or when
// the API cannot be reached.
func TestInvokeOnTheLocalStack(t *testing.T) {
	db, dsn := testenv.MySQL(t)
	dataDir := t.TempDir()
	common := []string{"--data-dir", dataDir, "--template", repoFile("template.yaml")}
	envVars := []string{"--env-vars", repoFile("events/env.json")}

	_, stderr := mustCLI(t, append(append([]string{"invoke", "ExtractFunction", "--event", repoFile("events/extract-schedule.json"), "--offline"}, envVars...), common...)...)
	if !strings.Contains(stderr, "fake API, generated data") {
		t.Errorf("extract's header:\n%s", stderr)
	}
	folder := filepath.Join(dataDir, "s3", localBucket)
	raw, err := filepath.Glob(filepath.Join(folder, "raw", "*", "page-*.json"))
	if err != nil || len(raw) != 52 {
		t.Fatalf("raw pages in %s: %d, %v", folder, len(raw), err)
	}

	out, _ := mustCLI(t, append(append([]string{"invoke", "TransformFunction", "--event", repoFile("events/transform-s3-put.json")}, envVars...), common...)...)
	if out != "null\n" {
		t.Errorf("transform: %q", out)
	}
	if _, err := os.Stat(filepath.Join(folder, "processed", "characters", "character", "page-0001.csv")); err != nil {
		t.Fatal(err)
	}

	// Load and Export on a MySQL server (--mysql-dsn), as the other
	// commands do; without --env-vars the template's parameters decide, so
	// an override of ExportLag applies.
	common = append(common, "--mysql-dsn", dsn)
	out, _ = mustCLI(t, append([]string{"invoke", "LoadFunction", "--event", repoFile("events/load-sqs-batch.json")}, common...)...)
	if strings.TrimSpace(out) != `{"batchItemFailures":[]}` {
		t.Errorf("load: %s", out)
	}
	var chars int
	if err := db.QueryRow("SELECT COUNT(*) FROM characters").Scan(&chars); err != nil || chars != 20 {
		t.Errorf("characters: %d, %v", chars, err)
	}
	out, _ = mustCLI(t, append([]string{"invoke", "ExportFunction", "--event", repoFile("events/export-schedule.json"), "--parameter-overrides", "ExportLag=0s"}, common...)...)
	if !strings.Contains(out, `"table":"characters","status":"exported","rows":20`) {
		t.Errorf("export: %.500s", out)
	}
	exports, _ := filepath.Glob(filepath.Join(folder, "exports", "characters", "parquet", "*.parquet"))
	if len(exports) == 0 {
		t.Error("no Parquet export in the local stack")
	}
}

// A function's error is its response on stdout and a failed exit.
func TestInvokeFailsWhenTheFunctionFails(t *testing.T) {
	callerUsesMinIO(t)
	env := filepath.Join(t.TempDir(), "env.json")
	if err := os.WriteFile(env, []byte(`{"ExportFunction": {"BUCKET": "rick-morty-local", "MYSQL_DSN": "root@tcp(127.0.0.1:1)/rm", "AWS_ENDPOINT_URL_S3": "`+testenv.S3Endpoint()+`"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli(t, "", "invoke", "ExportFunction", "--no-local", "--event", repoFile("events/export-schedule.json"), "--env-vars", env,
		"--data-dir", t.TempDir(), "--template", repoFile("template.yaml"))
	var doc struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &doc) != nil || doc.Message == "" || !strings.Contains(stderr, "ExportFunction returned an error") {
		t.Errorf("exit %d, stdout %q\nstderr:\n%s", code, out, stderr)
	}
}

// What pipeline invoke refuses, before running anything.
func TestInvokeRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "event.txt")
	if err := os.WriteFile(notJSON, []byte("Records: none"), 0o644); err != nil {
		t.Fatal(err)
	}
	schedule := repoFile("events/export-schedule.json")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"NoSuchFunction", "--event", schedule}, "NoSuchFunction is no function of the template"},
		{[]string{"DataBucket", "--event", schedule}, "DataBucket is no function of the template"},
		{[]string{"ExportFunction"}, "no --event"},
		{[]string{"ExportFunction", "--event", notJSON}, "event " + notJSON + " is not JSON"},
		{[]string{"ExportFunction", "--event", filepath.Join(dir, "missing.json")}, "missing.json: no such file"},
		{[]string{"ExportFunction", "--event", "-", "--event", "-"}, "may be given once"},
		{[]string{"ExportFunction", "--event", schedule, "--parameter-overrides", "ExportLag=soon"}, `ExportLag="soon" does not match`},
		{[]string{"ExportFunction", "--event", schedule, "--parameter-overrides", "Nope=1"}, "Nope is no parameter"},
		{[]string{"ExportFunction", "--event", schedule, "--bootstrap", filepath.Join(dir, "none")}, "bootstrap"},
	} {
		args := append(append([]string{"invoke"}, c.args...), "--data-dir", dir, "--template", repoFile("template.yaml"))
		code, out, stderr := cli(t, "{}", args...)
		if code == 0 || out != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("pipeline %s: exit %d, stdout %q, stderr %q; want an error with %q", strings.Join(c.args, " "), code, out, stderr, c.want)
		}
	}
}
