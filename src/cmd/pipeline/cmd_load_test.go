package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/load/loadtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// TestLoadPrefix runs the command's core against MinIO and MariaDB: every
// object under processed/ goes to the handler in SQS-shaped batches; a bad
// file is quarantined; a second run skips everything.
func TestLoadPrefix(t *testing.T) {
	c, bucket := testenv.S3(t)
	_, dsn := testenv.MySQL(t)
	conn := mysqldb.NewConnector(mysqldb.Config{DSN: dsn, MaxOpenConns: 4}, nil)
	defer conn.Close()
	ctx := context.Background()
	files := loadtest.Crawl{Characters: 45, Locations: 12, Episodes: 7, FetchedAt: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}.Files()
	put := func(key string, body []byte) {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		put(strings.Replace(f.Key, "page-0001", "page 0001+ζ", 1), f.Body)
	}
	put("processed/aliens/page-0001.csv", files[0].Body)
	res, err := loadPrefix(ctx, c, conn, bucket, "processed/", 4, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != len(files)+1 || res.Loaded != len(files) || res.Quarantined != 1 || res.Failed != 0 || res.Batches != (len(files)+1+3)/4 {
		t.Errorf("result %+v", res)
	}
	if res.Tables["characters"] != 45 || res.Tables["locations"] != 12 || res.Tables["episodes"] != 7 || res.Tables["character_episodes"] == 0 {
		t.Errorf("tables %v", res.Tables)
	}
	var human strings.Builder
	res.Human(&human)
	if !strings.Contains(human.String(), "characters 45") || !strings.Contains(human.String(), "quarantined processed/aliens/page-0001.csv") {
		t.Errorf("human output:\n%s", human.String())
	}
	again, err := loadPrefix(ctx, c, conn, bucket, "processed/characters/", 10, slog.New(slog.DiscardHandler))
	if err != nil || again.Skipped != again.Objects || again.Loaded != 0 {
		t.Errorf("second run: %+v, %v; want everything skipped", again, err)
	}
}
