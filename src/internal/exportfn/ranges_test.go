package exportfn

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// motoSQS starts moto_server (SQS over its real wire protocol) and returns
// a client of it.
func motoSQS(t *testing.T) *sqs.Client {
	t.Helper()
	path, err := exec.LookPath("moto_server")
	if err != nil {
		testenv.Unavailable(t, "moto_server (SQS emulator): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(path, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url + "/moto-api/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("moto_server did not start")
		}
	}
	return sqs.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
}

// A scheduled run with more due rows than EXPORT_RANGE_ROWS sends one
// message per range to the range queue (SQS, through the real SDK); the
// range handler, fed those messages as the event source mapping would,
// exports every range and the last one moves the watermark. A message it
// cannot read is reported as a failure (SQS retries it, then dead-letters it).
func TestRangesThroughSQS(t *testing.T) {
	api := motoSQS(t)
	ctx := context.Background()
	q, err := api.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("export-ranges")})
	if err != nil {
		t.Fatal(err)
	}
	dsn, s3api, bucketName := setup(t)
	// 25 characters, due an hour ago.
	for _, stmt := range []string{"INSERT INTO characters SELECT id + n, name, status, species, type, gender, origin_id, origin_name, location_id, location_name, image, url, created, fetched_at, createdDate, modifiedDate FROM characters, (SELECT 1 AS n UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6 UNION SELECT 7 UNION SELECT 8 UNION SELECT 9 UNION SELECT 10 UNION SELECT 11 UNION SELECT 12 UNION SELECT 13 UNION SELECT 14 UNION SELECT 15 UNION SELECT 16 UNION SELECT 17 UNION SELECT 18 UNION SELECT 19 UNION SELECT 20 UNION SELECT 21 UNION SELECT 22 UNION SELECT 23 UNION SELECT 24) AS k"} {
		conn, _ := mysqldb.NewConnector(mustConfig(t, dsn).DB, nil).DB(ctx)
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := ConfigFromEnv(env(map[string]string{"BUCKET": bucketName, "MYSQL_DSN": dsn, "EXPORT_LAG": "1s",
		"EXPORT_RANGE_ROWS": "10", "EXPORT_RANGE_QUEUE_URL": aws.ToString(q.QueueUrl), "EXPORT_TABLES": "characters"}))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	h := New(cfg, s3api, mysqldb.NewConnector(cfg.DB, nil), slog.New(slog.NewJSONHandler(&logs, nil)))
	h.Ranges = SQSSender{API: api, QueueURL: cfg.RangeQueueURL}
	res, err := h.Handle(ctx, readEvent(t))
	if err != nil || res.Tables[0].Status != export.StatusFannedOut || res.Tables[0].Rows != 25 {
		t.Fatalf("scheduled run: %+v %v", res, err)
	}
	if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(`{"table":"characters"}`)}); err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	for len(ev.Records) < 4 {
		out, err := api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			t.Fatalf("%d messages on the queue, want 3 ranges and the bad one", len(ev.Records))
		}
		for _, m := range out.Messages {
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), EventSource: "aws:sqs"})
		}
	}
	resp, err := h.HandleRanges(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != 1 {
		t.Fatalf("HandleRanges: %+v %v\n%s", resp, err, logs.String())
	}
	for _, r := range ev.Records {
		if strings.Contains(r.Body, `"range"`) == (r.MessageId == resp.BatchItemFailures[0].ItemIdentifier) {
			t.Errorf("message %s (%s): failed %v", r.MessageId, r.Body, r.MessageId == resp.BatchItemFailures[0].ItemIdentifier)
		}
	}
	wm, _, err := bucket.New(s3api, bucketName).ReadAll(ctx, bucket.WatermarkKey(bucket.DefaultExportPrefix, "characters"), 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	w, err := export.ParseWatermark(wm)
	if err != nil || w.Rows != 25 || len(w.Files) != 6 {
		t.Fatalf("watermark %+v %v", w, err)
	}
	if n := strings.Count(logs.String(), `"msg":"range exported"`); n != 3 {
		t.Errorf("%d ranges logged as exported, want 3", n)
	}
}

func mustConfig(t *testing.T, dsn string) Config {
	t.Helper()
	cfg, err := ConfigFromEnv(env(map[string]string{"BUCKET": "b", "MYSQL_DSN": dsn}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestParseRangeMessage(t *testing.T) {
	for _, tt := range []struct {
		body string
		ok   bool
	}{
		{`{"table":"orders","run":"20260102_030405","range":3}`, true},
		{`{"table":"orders","run":"20260102_030405","range":0}`, false},
		{`{"table":"orders","range":1}`, false},
		{`{"table":"orders","run":"x","range":1,"extra":1}`, false},
		{`{"table":"orders","run":"x","range":1} {}`, false},
		{`not json`, false},
	} {
		m, err := ParseRangeMessage(tt.body)
		if (err == nil) != tt.ok {
			t.Errorf("%s: %+v %v", tt.body, m, err)
		}
		if tt.ok && RangeBody(m) != tt.body {
			t.Errorf("RangeBody = %s, want %s", RangeBody(m), tt.body)
		}
	}
}
