package exportfn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets/secretstest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// warehouseDDL creates tables shaped like the warehouse's (the load
// engineer's migrations own the real ones).
var warehouseDDL = []string{
	`CREATE TABLE locations (id INT PRIMARY KEY, name VARCHAR(255) NOT NULL, type VARCHAR(255) NOT NULL, dimension VARCHAR(255) NOT NULL,
	  url VARCHAR(255) NOT NULL, created DATETIME(3) NOT NULL, fetched_at DATETIME(3) NOT NULL,
	  createdDate DATETIME(3) NOT NULL, modifiedDate DATETIME(3) NULL)`,
	`CREATE TABLE characters (id INT PRIMARY KEY, name VARCHAR(255) NOT NULL, status VARCHAR(32) NOT NULL, species VARCHAR(255) NOT NULL,
	  type VARCHAR(255) NOT NULL, gender VARCHAR(32) NOT NULL, origin_id INT NULL, origin_name VARCHAR(255) NOT NULL,
	  location_id INT NULL, location_name VARCHAR(255) NOT NULL, image VARCHAR(255) NOT NULL, url VARCHAR(255) NOT NULL,
	  created DATETIME(3) NOT NULL, fetched_at DATETIME(3) NOT NULL, createdDate DATETIME(3) NOT NULL, modifiedDate DATETIME(3) NULL)`,
	`CREATE TABLE episodes (id INT PRIMARY KEY, name VARCHAR(255) NOT NULL, air_date DATE NOT NULL, episode VARCHAR(16) NOT NULL,
	  season INT NOT NULL, episode_number INT NOT NULL, url VARCHAR(255) NOT NULL, created DATETIME(3) NOT NULL,
	  fetched_at DATETIME(3) NOT NULL, createdDate DATETIME(3) NOT NULL, modifiedDate DATETIME(3) NULL)`,
	`CREATE TABLE character_episodes (character_id INT NOT NULL, episode_id INT NOT NULL,
	  createdDate DATETIME(3) NOT NULL, modifiedDate DATETIME(3) NULL, PRIMARY KEY (character_id, episode_id))`,
	`INSERT INTO locations VALUES (1, 'Earth (C-137)', 'Planet', 'Dimension C-137', 'https://x/location/1', '2017-11-10 12:42:04.162', NOW(3) - INTERVAL 1 HOUR, NOW(3) - INTERVAL 1 HOUR, NULL)`,
	`INSERT INTO characters VALUES (1, 'Rick Sanchez', 'Alive', 'Human', '', 'Male', 1, 'Earth (C-137)', NULL, 'Citadel of Ricks',
	  'https://x/1.jpeg', 'https://x/character/1', '2017-11-04 18:48:46.250', NOW(3) - INTERVAL 1 HOUR, NOW(3) - INTERVAL 1 HOUR, NOW(3) - INTERVAL 50 MINUTE)`,
	`INSERT INTO episodes VALUES (1, 'Pilot', '2013-12-02', 'S01E01', 1, 1, 'https://x/episode/1', '2017-11-10 12:56:33.798', NOW(3) - INTERVAL 1 HOUR, NOW(3) - INTERVAL 1 HOUR, NULL)`,
	`INSERT INTO character_episodes VALUES (1, 1, NOW(3) - INTERVAL 1 HOUR, NULL)`,
}

func readEvent(t *testing.T) Event {
	t.Helper()
	b, err := os.ReadFile("../../../events/export-schedule.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.DetailType != "Scheduled Event" {
		t.Errorf("detail-type = %q", ev.DetailType)
	}
	return ev
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func setup(t *testing.T) (dsn string, api *s3.Client, bucketName string) {
	t.Helper()
	db, dsn := testenv.MySQL(t)
	for _, q := range warehouseDDL {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	api, bucketName = testenv.S3(t)
	return dsn, api, bucketName
}

func listKeys(t *testing.T, api *s3.Client, bucketName string) []string {
	t.Helper()
	out, err := api.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucketName)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func TestScheduleEventExportsWarehouseTables(t *testing.T) {
	ev := readEvent(t)
	dsn, api, bucketName := setup(t)
	cfg, err := ConfigFromEnv(env(map[string]string{"BUCKET": bucketName, "MYSQL_DSN": dsn, "EXPORT_LAG": "1s"}))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	h := New(cfg, api, mysqldb.NewConnector(cfg.DB, nil), slog.New(slog.NewJSONHandler(&logs, nil)))
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	res, err := h.Handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if res.RunID != "req-1" || len(res.Tables) != 4 {
		t.Fatalf("%+v", res)
	}
	for _, tr := range res.Tables {
		if tr.Status != export.StatusExported || tr.Rows != 1 {
			t.Errorf("%s: %+v", tr.Table, tr)
		}
	}
	keys := listKeys(t, api, bucketName)
	for _, tb := range DefaultTables {
		for _, k := range []string{bucket.WatermarkKey(bucket.DefaultExportPrefix, tb)} {
			if !slices.Contains(keys, k) {
				t.Errorf("missing %s in %v", k, keys)
			}
		}
	}
	if n := strings.Count(logs.String(), `"msg":"table exported"`); n != 4 {
		t.Errorf("%d per-table log lines, want 4:\n%s", n, logs.String())
	}
	for _, k := range []string{`"rows":1`, `"watermark_to":`, `"duration_ms":`, `"files":[`, `"run_id":"req-1"`} {
		if !strings.Contains(logs.String(), k) {
			t.Errorf("logs lack %s", k)
		}
	}

	// A plain input restricts the run to the tables it names.
	res, err = h.Handle(ctx, Event{Tables: []string{"episodes"}})
	if err != nil || len(res.Tables) != 1 || res.Tables[0].Status != export.StatusUpToDate {
		t.Errorf("plain input: %+v %v", res, err)
	}
}

func TestDefaultTablesAreTheWarehouseTables(t *testing.T) {
	var names []string
	for _, tb := range warehouse.Tables() {
		names = append(names, tb.Name)
	}
	slices.Sort(names)
	got := slices.Sorted(slices.Values(DefaultTables))
	if !slices.Equal(got, names) {
		t.Errorf("DefaultTables %v, warehouse %v", got, names)
	}
}

func TestConfigFromEnv(t *testing.T) {
	c, err := ConfigFromEnv(env(map[string]string{"BUCKET": "b", "MYSQL_DSN": "u@tcp(h:3306)/d"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "b" || c.Prefix != "exports/" || c.Lag != 30*time.Second || !slices.Equal(c.Tables, DefaultTables) ||
		c.Compression != "zstd" || c.ChunkRows != export.DefaultChunkRows || c.DeadlineMargin != 30*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	c, err = ConfigFromEnv(env(map[string]string{
		"EXPORT_BUCKET": "e", "MYSQL_DSN": "u@tcp(h:3306)/d", "EXPORT_TABLES": "orders, customer", "EXPORT_LAG": "2m",
		"EXPORT_WATERMARK_COLUMNS": "orders=updated_at:created_at; *=modifiedDate:createdDate", "EXPORT_PREFIX": "analytics/food/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "e" || c.Lag != 2*time.Minute || !slices.Equal(c.Tables, []string{"orders", "customer"}) || c.Prefix != "analytics/food/" ||
		!slices.Equal(c.WatermarkColumns["orders"], []string{"updated_at", "created_at"}) {
		t.Errorf("overrides: %+v", c)
	}
	_, err = ConfigFromEnv(env(map[string]string{
		"EXPORT_PREFIX": "raw/exports/", "EXPORT_LAG": "soon", "EXPORT_PARQUET_COMPRESSION": "lzma",
		"EXPORT_WATERMARK_COLUMNS": "orders", "EXPORT_CHUNK_ROWS": "0",
	}))
	for _, want := range []string{"BUCKET is required", "EXPORT_PREFIX", "raw/", "EXPORT_LAG", "EXPORT_PARQUET_COMPRESSION", "EXPORT_WATERMARK_COLUMNS", "EXPORT_CHUNK_ROWS", "DB_HOST"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v should mention %s", err, want)
		}
	}
	for _, p := range []string{"processed/", "", "exports", "/exports/", "a//b/", "../x/", "quarantine/x/"} {
		if _, err := ConfigFromEnv(env(map[string]string{"BUCKET": "b", "MYSQL_DSN": "u@tcp(h:3306)/d", "EXPORT_PREFIX": p})); err == nil && p != "" {
			t.Errorf("prefix %q accepted", p)
		}
	}
}

// An unreadable secret fails the run with a clear error naming it, writes
// nothing and leaves the existing watermarks alone; a wrong password never
// shows up in errors or logs.
func TestUnreadableSecretChangesNothing(t *testing.T) {
	ev := readEvent(t)
	dsn, api, bucketName := setup(t)
	good, err := ConfigFromEnv(env(map[string]string{"BUCKET": bucketName, "MYSQL_DSN": dsn, "EXPORT_LAG": "1s"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(good, api, mysqldb.NewConnector(good.DB, nil), slog.New(slog.DiscardHandler)).Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, k := range listKeys(t, api, bucketName) {
		out, err := api.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucketName), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		before[k] = aws.ToString(out.ETag)
	}

	fake := secretstest.New(t)
	const password = "Kn0wn-P@ssw0rd-xyz"
	wrongARN := fake.SetSecret(t, "wrong", `{"username":"root","password":"`+password+`"}`)
	resolver := &secrets.Resolver{SSM: fake.SSM(), SecretsManager: fake.SecretsManager()}
	for _, arn := range []string{"arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf", wrongARN} {
		cfg, err := ConfigFromEnv(env(map[string]string{"BUCKET": bucketName, "DB_HOST": "127.0.0.1", "DB_NAME": "x", "DB_SECRET_ARN": arn, "DB_TLS": "false"}))
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		h := New(cfg, api, mysqldb.NewConnector(cfg.DB, resolver), slog.New(slog.NewJSONHandler(&logs, nil)))
		res, err := h.Handle(context.Background(), ev)
		if err == nil {
			t.Fatalf("%s: no error", arn)
		}
		if strings.HasSuffix(arn, "missing") && !strings.Contains(err.Error(), "reading secret "+arn) {
			t.Errorf("error %q does not name the secret", err)
		}
		if strings.HasSuffix(arn, "wrong") && !mysqldb.IsAuthError(err) {
			t.Errorf("error %q is not an authentication error", err)
		}
		if len(res.Tables) != 4 || res.Tables[0].Status != export.StatusFailed || !errors.Is(res.Err(), res.Tables[0].Err()) {
			t.Errorf("result %+v", res)
		}
		for _, s := range []string{err.Error(), logs.String(), res.Tables[0].Error} {
			if strings.Contains(s, password) {
				t.Fatalf("the password leaked: %s", s)
			}
		}
	}
	after := listKeys(t, api, bucketName)
	if len(after) != len(before) {
		t.Errorf("objects changed: %v -> %v", before, after)
	}
	for _, k := range after {
		out, err := api.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucketName), Key: aws.String(k)})
		if err != nil || aws.ToString(out.ETag) != before[k] {
			t.Errorf("%s changed", k)
		}
	}
}

// A scheduled run whose BUCKET does not exist fails, naming the bucket, on
// MinIO and on the local stack's S3, with the S3 client built as main
// builds it: no table is "up to date" (that was a missing bucket read as
// "no watermark yet", with no row due).
func TestMissingBucketFailsTheRun(t *testing.T) {
	ev := readEvent(t)
	local, err := locals3.Start(context.Background(), locals3.Options{DataDir: t.TempDir(), Bucket: "export-local"})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	servers := map[string]aws.Config{"minio": testenv.S3Config(), "locals3": local.AWSConfig()}
	for name, s3cfg := range servers {
		t.Run(name, func(t *testing.T) {
			dsn, _, _ := setup(t)
			creds, err := s3cfg.Credentials.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range map[string]string{"AWS_ENDPOINT_URL_S3": aws.ToString(s3cfg.BaseEndpoint), "AWS_REGION": "us-east-1",
				"AWS_ACCESS_KEY_ID": creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY": creds.SecretAccessKey, "AWS_SESSION_TOKEN": "", "AWS_PROFILE": ""} {
				t.Setenv(k, v)
			}
			missing := testenv.RandomName("no-such-bucket-")
			// The rows are an hour old: with a 2h lag none is due.
			for k, v := range map[string]string{"BUCKET": missing, "MYSQL_DSN": dsn, "EXPORT_LAG": "2h", "S3_FORCE_PATH_STYLE": "true"} {
				t.Setenv(k, v)
			}
			// Wired as the bootstrap's main wires it, from the environment.
			var logs bytes.Buffer
			h, err := FromEnv(context.Background(), os.Getenv, slog.New(slog.NewJSONHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			res, err := h.Handle(context.Background(), ev)
			if err == nil || !strings.Contains(err.Error(), `bucket "`+missing+`" does not exist`) {
				t.Fatalf("Handle error = %v, want the missing bucket named", err)
			}
			if len(res.Tables) != len(DefaultTables) {
				t.Fatalf("result %+v", res)
			}
			for _, tr := range res.Tables {
				if tr.Status != export.StatusFailed || !errors.Is(tr.Err(), bucket.ErrNoBucket) {
					t.Errorf("%s: status %s, error %q", tr.Table, tr.Status, tr.Error)
				}
			}
			if !strings.Contains(logs.String(), `"msg":"table export failed"`) {
				t.Errorf("no failure logged:\n%s", logs.String())
			}
		})
	}
}
