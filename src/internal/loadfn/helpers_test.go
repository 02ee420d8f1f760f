package loadfn

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load/loadtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// env is one test's world: a bucket on MinIO and a database on MariaDB.
type env struct {
	t      *testing.T
	s3     *s3.Client
	bucket string
	db     *sql.DB // direct pool, for assertions
	dsn    string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	client, bucket := testenv.S3(t)
	db, dsn := testenv.MySQL(t)
	return &env{t: t, s3: client, bucket: bucket, db: db, dsn: dsn}
}

// handler builds a Handler on the env (or on dsn when given), logging to the
// test log only when -v.
func (e *env) handler(s3c bucket.API, dsn string) *Handler {
	e.t.Helper()
	if s3c == nil {
		s3c = e.s3
	}
	if dsn == "" {
		dsn = e.dsn
	}
	conn := mysqldb.NewConnector(mysqldb.Config{DSN: dsn, MaxOpenConns: 4, ConnMaxLifetime: time.Minute}, nil)
	e.t.Cleanup(func() { conn.Close() })
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	return New(Config{Bucket: e.bucket, Reserve: time.Second}, s3c, conn, logging.New(w, "info"))
}

// put uploads body to key and returns the object's reference.
func (e *env) put(key string, body []byte) load.ObjectRef {
	e.t.Helper()
	out, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		e.t.Fatalf("putting %s: %v", key, err)
	}
	return load.ObjectRef{Bucket: e.bucket, Key: key, ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId)}
}

// upload puts every file and returns one SQS message per file.
func (e *env) upload(files []loadtest.File, idPrefix string) []events.SQSMessage {
	e.t.Helper()
	var msgs []events.SQSMessage
	for i, f := range files {
		obj := e.put(f.Key, f.Body)
		msgs = append(msgs, Message(fmt.Sprintf("%s-%03d", idPrefix, i), obj, int64(len(f.Body)), time.Now()))
	}
	return msgs
}

// deliver hands msgs to h in batches of 10 and returns the failed ids.
func deliver(t *testing.T, h *Handler, msgs []events.SQSMessage) []string {
	t.Helper()
	var failed []string
	for i := 0; i < len(msgs); i += 10 {
		resp, err := h.Handle(context.Background(), events.SQSEvent{Records: msgs[i:min(i+10, len(msgs))]})
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		for _, f := range resp.BatchItemFailures {
			failed = append(failed, f.ItemIdentifier)
		}
	}
	return failed
}

// times delivers every message n times, shuffled.
func times(msgs []events.SQSMessage, n int, rng *rand.Rand) []events.SQSMessage {
	var out []events.SQSMessage
	for range n {
		out = append(out, msgs...)
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func dumps(t *testing.T, db *sql.DB, mode warehousedb.DumpMode) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tb := range warehouse.Tables() {
		var b bytes.Buffer
		if _, err := warehousedb.Dump(context.Background(), db, tb, mode, &b); err != nil {
			t.Fatal(err)
		}
		out[tb.Name] = b.String()
	}
	return out
}

func compareDumps(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for _, tb := range warehouse.Tables() {
		if got[tb.Name] != want[tb.Name] {
			t.Errorf("%s: table %s differs:\n%s\nwant:\n%s", what, tb.Name, clip(got[tb.Name]), clip(want[tb.Name]))
		}
	}
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "\n..."
	}
	return s
}

// proxy forwards TCP connections to a server until cut: cutting closes every
// connection and refuses new ones, as a database that went down; restore
// brings it back on the same address.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy back on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// dsnVia returns dsn pointing at addr.
func dsnVia(t *testing.T, dsn, addr string) string {
	t.Helper()
	dc, err := mysqldb.NormalizeDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dc.Addr = addr
	return dc.FormatDSN()
}

// faultyS3 calls fault once, when GetObject is called for the n-th time,
// after half of that object's body has been read: mid-transaction.
type faultyS3 struct {
	bucket.API
	mu    sync.Mutex
	calls int
	n     int
	fault func()
}

func (f *faultyS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := f.API.GetObject(ctx, in, opts...)
	f.mu.Lock()
	f.calls++
	hit := f.calls == f.n
	f.mu.Unlock()
	if err != nil || !hit {
		return out, err
	}
	body, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		return nil, err
	}
	half := len(body) / 2
	out.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:half]), &callReader{fn: f.fault}, bytes.NewReader(body[half:])))
	return out, nil
}

// callReader calls fn when first read, and reads as empty.
type callReader struct {
	fn   func()
	done bool
}

func (c *callReader) Read([]byte) (int, error) {
	if !c.done {
		c.done = true
		c.fn()
	}
	return 0, io.EOF
}

func joinSorted(s []string) string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return strings.Join(c, ",")
}

var discard = slog.New(slog.DiscardHandler)
