package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets/secretstest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// secretValue is a password made for one test run: a random core no text
// holds by chance, wrapped in characters that escaping changes (quotes,
// backslash, '@', ':', '/', '%', '+', a space, non-ASCII).
type secretValue struct {
	core, full string
}

func newSecretValue(tag string) secretValue {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	core := tag + hex.EncodeToString(b)
	return secretValue{core: core, full: `P@ss:/` + core + ` "q'\%2B+ζ`}
}

// forms are the ways a leak could spell the value: as is, its core alone
// (any escaping keeps it), URL-, JSON-, Go-quoted and base64-encoded.
func (s secretValue) forms() []string {
	j, _ := json.Marshal(s.full)
	return []string{s.full, s.core, url.QueryEscape(s.full), url.PathEscape(s.full), string(j), strconv.Quote(s.full),
		base64.StdEncoding.EncodeToString([]byte(s.full)), base64.URLEncoding.EncodeToString([]byte(s.full)), hex.EncodeToString([]byte(s.full))}
}

// leaks returns the first form of any of vals that text holds.
func secretLeaks(text string, vals ...secretValue) (string, bool) {
	for _, v := range vals {
		for _, f := range v.forms() {
			if strings.Contains(text, f) {
				return f, true
			}
		}
	}
	return "", false
}

// secretSink collects every text the pipeline produced during the test:
// log lines (the handlers' and the MySQL driver's), returned errors and
// results, outcomes.
type secretSink struct {
	mu    sync.Mutex
	texts map[string]*bytes.Buffer // what -> text
}

func (s *secretSink) writer(what string) io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.texts == nil {
		s.texts = map[string]*bytes.Buffer{}
	}
	if s.texts[what] == nil {
		s.texts[what] = &bytes.Buffer{}
	}
	return secretLocked{s, s.texts[what]}
}

type secretLocked struct {
	s *secretSink
	b *bytes.Buffer
}

func (l secretLocked) Write(p []byte) (int, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.b.Write(p)
}

func (s *secretSink) add(what string, v any) {
	text, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		text = fmt.Sprintf("%s %+v", b, v)
	}
	fmt.Fprintln(s.writer(what), text)
}

// secretScenario is one way of configuring the database and one failure.
type secretScenario struct {
	name    string
	env     map[string]string // BUCKET added
	timeout time.Duration     // of each invocation (0: none)
	works   bool              // the database is reachable with the right password
	reason  string            // in every Load failure and the Export error when !works
	// deferred: Export starts no table (too little time left) and reports
	// no error: the next run does the work.
	deferred bool
}

// TestReliabilitySecretsNeverLeak configures a database password known to
// the test (in an SSM SecureString and a Secrets Manager secret, both served
// by moto_server, and in a DSN), triggers every failure it can through the Load and Export handlers
// (wrong password, malformed secret and DSN, server down, server hanging
// until the deadline, too little time left, hostile objects, SQS bodies and
// table names), then searches every log line, error, result and object for
// the password.
func TestReliabilitySecretsNeverLeak(t *testing.T) {
	row := Case(t, "a MariaDB user whose password is only in an SSM SecureString and a Secrets Manager secret (moto_server) or a DSN; Load and Export run with it, with a wrong one, a malformed secret or DSN, the server down or hanging past the deadline, and hostile inputs",
		"the password (and the wrong one), raw or URL/JSON/base64/hex-encoded, in no handler or driver log line, returned error, result or outcome, nor in any object of the bucket")
	sink := &secretSink{}
	// The MySQL driver logs some failures itself: capture them too.
	if err := mysql.SetLogger(log.New(sink.writer("mysql driver log"), "[mysql] ", 0)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mysql.SetLogger(log.New(os.Stderr, "[mysql] ", log.Ldate|log.Ltime)) })

	w := newHostileWorld(t)
	pw, wrong := newSecretValue("right"), newSecretValue("wrong")
	dc, err := mysql.ParseDSN(w.dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(dc.Addr)
	user := testenv.RandomName("u")
	ctx := context.Background()
	if _, err := w.db.ExecContext(ctx, "CREATE USER ?@'%' IDENTIFIED BY ?", user, pw.full); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = w.db.ExecContext(context.Background(), "DROP USER ?@'%'", user) })
	if _, err := w.db.ExecContext(ctx, "GRANT ALL PRIVILEGES ON `"+dc.DBName+"`.* TO ?@'%'", user); err != nil {
		t.Fatal(err)
	}

	fake := secretstest.New(t)
	fake.SetParameter(t, "/rm/db/password", pw.full)
	fake.SetParameter(t, "/rm/db/wrong", wrong.full)
	rmARN := fake.SetSecret(t, "rm", `{"username":"`+user+`","password":`+secretJSON(pw.full)+`}`)
	wrongARN := fake.SetSecret(t, "wrong", `{"username":"`+user+`","password":`+secretJSON(wrong.full)+`}`)
	brokenARN := fake.SetSecret(t, "broken", `{"username":"`+user+`","password":"`+pw.full) // truncated JSON

	dsn := func(p secretValue, addr string) string {
		c := mysql.NewConfig()
		c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, p.full, "tcp", addr, dc.DBName
		s := c.FormatDSN()
		if back, err := mysql.ParseDSN(s); err != nil || back.Passwd != p.full {
			t.Fatalf("the password does not survive a DSN: %v", err)
		}
		return s
	}
	down := secretClosedPort(t)
	hang := secretHangingServer(t)
	ssm := func(param, p string) map[string]string {
		return map[string]string{"DB_HOST": host, "DB_PORT": p, "DB_NAME": dc.DBName, "DB_USER": user, "DB_PASSWORD_PARAM": param, "DB_TLS": "false"}
	}
	sm := func(arn, p string) map[string]string {
		return map[string]string{"DB_HOST": host, "DB_PORT": p, "DB_NAME": dc.DBName, "DB_SECRET_ARN": arn, "DB_TLS": "false"}
	}
	withReserve := func(m map[string]string, r string) map[string]string { m["LOAD_DEADLINE_RESERVE"] = r; return m }
	scenarios := []secretScenario{
		{name: "SSM SecureString", env: ssm("/rm/db/password", port), works: true},
		{name: "Secrets Manager", env: sm(rmARN, port), works: true},
		{name: "DSN", env: map[string]string{"MYSQL_DSN": dsn(pw, dc.Addr)}, works: true},
		{name: "SSM wrong password", env: ssm("/rm/db/wrong", port), reason: "Access denied for user"},
		{name: "Secrets Manager wrong password", env: sm(wrongARN, port), reason: "Access denied for user"},
		{name: "DSN wrong password", env: map[string]string{"MYSQL_DSN": dsn(wrong, dc.Addr)}, reason: "Access denied for user"},
		{name: "Secrets Manager malformed secret", env: sm(brokenARN, port), reason: "not a JSON object with username and password"},
		{name: "SSM parameter missing", env: ssm("/rm/db/missing", port), reason: "reading SSM parameter /rm/db/missing"},
		{name: "DSN malformed", env: map[string]string{"MYSQL_DSN": strings.TrimSuffix(dsn(pw, dc.Addr), "/"+dc.DBName) + "(("}, reason: "MYSQL_DSN is not a valid go-sql-driver DSN"},
		{name: "server down (SSM)", env: ssm("/rm/db/password", down), reason: "connection refused"},
		{name: "server down (DSN)", env: map[string]string{"MYSQL_DSN": dsn(pw, net.JoinHostPort(host, down))}, reason: "connection refused"},
		{name: "server hangs past the deadline (Secrets Manager)", env: withReserve(sm(rmARN, hang), "100ms"), timeout: time.Second, reason: "deadline"},
		{name: "server hangs past the deadline (DSN)", env: withReserve(map[string]string{"MYSQL_DSN": dsn(pw, net.JoinHostPort(host, hang))}, "100ms"), timeout: time.Second, reason: "deadline"},
		{name: "too little time left (SSM)", env: withReserve(ssm("/rm/db/password", port), "10s"), timeout: 2 * time.Second, reason: "too little time left before the deadline", deferred: true},
	}

	// The same hostile and good inputs in every scenario.
	msgs := w.hostileGood()
	for i, c := range hostileCSVCorpus[:6] {
		obj := w.put(c.key, hostileFile(t, "processed/"+c.file))
		msgs = append(msgs, loadfn.Message(fmt.Sprintf("h-%02d", i), obj, 1, time.Now()))
	}
	msgs = append(msgs, events.SQSMessage{MessageId: "not-json", Body: "not JSON " + pw.core[:4]})
	exportEvent := exportfn.Event{Tables: []string{"locations", "no_such_table", "characters`; DROP TABLE episodes; --", "episodes"}}

	resolver := &secrets.Resolver{SSM: fake.SSM(), SecretsManager: fake.SecretsManager()}
	logger := logging.New(sink.writer("handler logs"), "debug")
	for _, sc := range scenarios {
		env := map[string]string{"BUCKET": w.bucket, "S3_FORCE_PATH_STYLE": "true", "EXPORT_LAG": "0s"}
		for k, v := range sc.env {
			env[k] = v
		}
		getenv := func(k string) string { return env[k] }
		resolver.Invalidate() // each scenario reads its own secret
		invoke := func() (context.Context, context.CancelFunc) {
			if sc.timeout > 0 {
				return context.WithTimeout(ctx, sc.timeout)
			}
			return context.WithCancel(ctx)
		}

		lcfg, err := loadfn.ConfigFromEnv(getenv)
		if err != nil {
			sink.add("config errors", err.Error())
			t.Fatalf("%s: load configuration: %v", sc.name, err)
		}
		lconn := mysqldb.NewConnector(lcfg.DB, resolver)
		lh := loadfn.New(lcfg, w.s3, lconn, logger)
		var outs []loadfn.Outcome
		lh.Observe = func(o loadfn.Outcome) { outs = append(outs, o) }
		ictx, cancel := invoke()
		resp, err := lh.Handle(ictx, events.SQSEvent{Records: msgs})
		cancel()
		lconn.Close()
		sink.add("load results", resp)
		if err != nil {
			sink.add("load errors", err.Error())
		}
		sink.add("load outcomes", outs)
		loaded, failed := 0, 0
		for _, o := range outs {
			switch o.Status {
			case loadfn.Loaded, loadfn.Skipped:
				loaded++
			case loadfn.Failed:
				failed++
				if !sc.works && !strings.Contains(o.Reason, sc.reason) {
					t.Errorf("%s: Load failure %q does not say %q", sc.name, o.Reason, sc.reason)
				}
			}
		}
		if sc.works && (failed > 0 || loaded == 0) || !sc.works && (failed == 0 || loaded > 0) {
			t.Errorf("%s: Load %d done, %d failed: %+v", sc.name, loaded, failed, outs)
		}

		ecfg, err := exportfn.ConfigFromEnv(getenv)
		if err != nil {
			t.Fatalf("%s: export configuration: %v", sc.name, err)
		}
		econn := mysqldb.NewConnector(ecfg.DB, resolver)
		ictx, cancel = invoke()
		res, err := exportfn.New(ecfg, w.s3, econn, logger).Handle(ictx, exportEvent)
		cancel()
		econn.Close()
		sink.add("export results", res)
		if sc.deferred {
			for _, tr := range res.Tables {
				if tr.Status != export.StatusDeferred || err != nil {
					t.Errorf("%s: Export table %s %s (%v), want deferred", sc.name, tr.Table, tr.Status, err)
				}
			}
		} else if err == nil {
			t.Errorf("%s: Export reported no error (an unknown table was named)", sc.name)
		} else {
			sink.add("export errors", err.Error())
			if !sc.works && !strings.Contains(err.Error(), sc.reason) {
				t.Errorf("%s: Export error %q does not say %q", sc.name, err, sc.reason)
			}
		}
	}

	// Every object of the bucket: bodies and metadata.
	objects := 0
	for _, k := range w.keys("") {
		out, err := w.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		objects++
		if f, ok := secretLeaks(k+"\n"+fmt.Sprint(out.Metadata)+"\n"+string(body), pw, wrong); ok {
			t.Errorf("object %s holds the password (as %q)", k, f)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	lines := 0
	for what, b := range sink.texts {
		lines += strings.Count(b.String(), "\n")
		if f, ok := secretLeaks(b.String(), pw, wrong); ok {
			i := strings.Index(b.String(), f)
			t.Errorf("%s hold the password (as %q): ...%s...", what, f, b.String()[max(0, i-200):min(b.Len(), i+len(f)+50)])
		}
	}
	// The search must be able to fail: a leak in any form is found.
	for _, f := range pw.forms() {
		if _, ok := secretLeaks("x"+f+"y", pw); !ok {
			t.Fatalf("the leak search misses %q", f)
		}
	}
	if lines < 100 || objects < 10 {
		t.Errorf("searched only %d lines and %d objects: the scenarios did not run", lines, objects)
	}
	row.Notef("%d scenarios; %d lines of logs, errors and results and %d objects searched", len(scenarios), lines, objects)
}

func secretJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// secretClosedPort returns a port on which nothing listens.
func secretClosedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// secretHangingServer returns the port of a server that accepts connections
// and never answers: a database that stopped responding.
func secretHangingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
