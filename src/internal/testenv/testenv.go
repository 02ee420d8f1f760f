// Package testenv gives integration tests their real servers: a fresh
// MariaDB/MySQL database and a fresh bucket on an S3 server (MinIO).
//
// A missing server skips the test, unless TEST_REQUIRE_SERVERS=1 (set by
// `make test` and CI), where it fails the test instead: CI never passes by
// skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
)

// Required reports whether a missing server must fail the test.
func Required() bool { return os.Getenv("TEST_REQUIRE_SERVERS") == "1" }

// Unavailable skips tb, or fails it when servers are required.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		tb.Fatalf("%s (TEST_REQUIRE_SERVERS=1: start the servers with `bash .ci/services.sh`)", msg)
	}
	tb.Skipf("%s; start the servers with `bash .ci/services.sh`", msg)
}

// RandomName returns prefix followed by random hex, usable as a database or bucket name.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// MySQLServerDSN is the DSN of the test server without a database.
func MySQLServerDSN() string {
	if dsn := os.Getenv("TEST_MYSQL_DSN"); dsn != "" {
		return dsn
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// MySQL creates a fresh database on the test server and returns a pool on it
// and its DSN. The database is dropped when the test ends.
func MySQL(tb testing.TB) (*sql.DB, string) {
	tb.Helper()
	admin, err := open(MySQLServerDSN(), "")
	if err != nil {
		Unavailable(tb, "MySQL test server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		Unavailable(tb, "MySQL test server at %s: %v", redact(MySQLServerDSN()), err)
	}
	name := RandomName("t_")
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		admin.Close()
		tb.Fatalf("creating test database: %v", err)
	}
	dsn, err := withDB(MySQLServerDSN(), name)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := open(dsn, name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
		admin.Close()
	})
	return db, dsn
}

func open(dsn, _ string) (*sql.DB, error) {
	dc, err := mysqldb.NormalizeDSN(dsn)
	if err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(dc)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

func withDB(dsn, name string) (string, error) {
	dc, err := mysqldb.NormalizeDSN(dsn)
	if err != nil {
		return "", err
	}
	dc.DBName = name
	return dc.FormatDSN(), nil
}

func redact(dsn string) string {
	dc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	return dc.User + "@" + dc.Addr
}

// S3Endpoint is the test S3 server's URL.
func S3Endpoint() string {
	if e := os.Getenv("TEST_S3_ENDPOINT"); e != "" {
		return e
	}
	return "http://127.0.0.1:9000"
}

// S3Config is an aws.Config for the test S3 server (MinIO's default credentials
// unless TEST_S3_ACCESS_KEY and TEST_S3_SECRET_KEY are set).
func S3Config() aws.Config {
	key, secret := os.Getenv("TEST_S3_ACCESS_KEY"), os.Getenv("TEST_S3_SECRET_KEY")
	if key == "" {
		key, secret = "minioadmin", "minioadmin"
	}
	return aws.Config{
		Region:                     "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider(key, secret, ""),
		BaseEndpoint:               aws.String(S3Endpoint()),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
}

// S3 creates a fresh, versioned-off bucket on the test S3 server and returns
// a path-style client and the bucket name. The bucket and its objects are
// removed when the test ends.
func S3(tb testing.TB) (*s3.Client, string) {
	tb.Helper()
	client := s3.NewFromConfig(S3Config(), func(o *s3.Options) { o.UsePathStyle = true })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		Unavailable(tb, "S3 test server at %s: %v", S3Endpoint(), err)
	}
	bucket := strings.ReplaceAll(RandomName("t-"), "_", "-")
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		tb.Fatalf("creating test bucket: %v", err)
	}
	tb.Cleanup(func() { EmptyBucket(tb, client, bucket, true) })
	return client, bucket
}

// EmptyBucket deletes every object of bucket and, with remove, the bucket.
func EmptyBucket(tb testing.TB, client *s3.Client, bucket string, remove bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return
		}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		if len(ids) > 0 {
			_, _ = client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		}
	}
	if remove {
		_, _ = client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
	}
}

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Snapshot returns the folder of the offline Rick and Morty API snapshot
// (../shared/rickandmorty beside the repository, or RICKMORTY_SNAPSHOT), and
// skips the test when it is absent: it is data from outside the project.
func Snapshot(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("RICKMORTY_SNAPSHOT")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "..", "shared", "rickandmorty")
	}
	if _, err := os.Stat(filepath.Join(dir, "character.json")); err != nil {
		tb.Skipf("no API snapshot at %s", dir)
	}
	return dir
}

// AWSCLI returns the path of the AWS CLI (`aws`); without it the test is
// skipped, or failed under TEST_REQUIRE_SERVERS=1 (.ci/services.sh installs
// Debian's awscli).
func AWSCLI(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("aws")
	if err != nil {
		Unavailable(tb, "the AWS CLI (aws): %v", err)
	}
	return p
}
