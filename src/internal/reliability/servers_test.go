package reliability

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// The fault cases stop and restart servers for real. They never touch the
// shared servers on :3306 and :9000, which other tests use at the same time:
// each such case starts its own mariadbd or MinIO, on its own data directory
// and a free port, as a child process that dies with the test binary.

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serverProcess is a server binary run as a child process, stopped with a
// real signal and started again with the same arguments (so on the same
// data directory and port).
type serverProcess struct {
	name string
	bin  string
	args []string
	env  []string
	log  string // the process's stdout and stderr are appended here

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// start launches the process without waiting for it to be ready.
func (p *serverProcess) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	out, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening the log of %s: %w", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = out, out
	// A test binary killed by `go test -timeout` must not leave servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	p.starts++
	return nil
}

// stop sends sig and waits until the process has exited (SIGKILL after a
// minute).
func (p *serverProcess) stop(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling %s: %w", p.name, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s did not exit within a minute of %v: killed", p.name, sig)
	}
}

// running reports whether the process is started and has not exited.
func (p *serverProcess) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Starts is how many times the process was started.
func (p *serverProcess) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// logTail returns the end of the process's log, for failure messages.
func (p *serverProcess) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitReady polls ready until it succeeds, the process exits, or a minute
// passes.
func (p *serverProcess) waitReady(ready func(context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if !p.running() {
			return fmt.Errorf("%s exited before it was ready: %v\n%s", p.name, err, p.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after a minute: %v\n%s", p.name, err, p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lookPath finds the first of names that is an executable file (absolute
// paths are taken as they are, other names searched on PATH).
func lookPath(names ...string) string {
	for _, n := range names {
		if n == "" {
			continue
		}
		if filepath.IsAbs(n) {
			if st, err := os.Stat(n); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return n
			}
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// ownMariaDB is a mariadbd of the test's own: its datadir, its port.
type ownMariaDB struct {
	*serverProcess
	t    *testing.T
	port int
}

// startOwnMariaDB installs a fresh datadir (mariadb-install-db) and starts
// mariadbd on it, with grant tables skipped (root, no password, TCP only on
// 127.0.0.1). The server is killed when the test ends.
func startOwnMariaDB(t *testing.T) *ownMariaDB {
	t.Helper()
	server := lookPath("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
	install := lookPath("mariadb-install-db", "/usr/bin/mariadb-install-db", "mysql_install_db")
	if server == "" || install == "" {
		testenv.Unavailable(t, "mariadbd or mariadb-install-db not found (Debian's mariadb-server provides them)")
	}
	dir := t.TempDir()
	// The socket path must stay under the kernel's 108-byte limit: keep it
	// in a short temporary directory rather than under the test's.
	sockDir, err := os.MkdirTemp("", "rdb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	datadir := filepath.Join(dir, "data")
	// --no-defaults: the system my.cnf would set user=mysql and its own paths.
	common := []string{"--no-defaults", "--user=root", "--datadir=" + datadir, "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=64M"}
	cmd := exec.Command(install, append(common, "--auth-root-authentication-method=normal", "--skip-test-db")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, lastBytes(out, 3000))
	}
	port := freePort(t)
	m := &ownMariaDB{t: t, port: port, serverProcess: &serverProcess{
		name: "mariadbd", bin: server, log: filepath.Join(dir, "mariadbd.log"),
		args: append(common, "--port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
			"--socket="+filepath.Join(sockDir, "s"), "--pid-file="+filepath.Join(dir, "mariadbd.pid"),
			"--skip-grant-tables", "--max-connections=300"),
	}}
	t.Cleanup(func() { _ = m.stop(syscall.SIGKILL) })
	m.restart()
	return m
}

// DSN is the DSN of database db on the server.
func (m *ownMariaDB) DSN(db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", m.port, db)
}

// restart starts the server (on the same datadir and port) and waits until
// it answers.
func (m *ownMariaDB) restart() {
	m.t.Helper()
	if err := m.start(); err != nil {
		m.t.Fatal(err)
	}
	if err := m.waitReady(m.ping); err != nil {
		m.t.Fatal(err)
	}
}

func (m *ownMariaDB) ping(ctx context.Context) error {
	db, err := openPool(m.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(ctx)
}

// database creates database name and returns a pool on it (for the test's
// own queries) and its DSN.
func (m *ownMariaDB) database(name string) (*sql.DB, string) {
	m.t.Helper()
	admin, err := openPool(m.DSN(""))
	if err != nil {
		m.t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		m.t.Fatalf("creating database %s on the own mariadbd: %v", name, err)
	}
	db, err := openPool(m.DSN(name))
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { db.Close() })
	return db, m.DSN(name)
}

// openPool opens a pool with the pipeline's connection settings (UTC,
// utf8mb4, parseTime).
func openPool(dsn string) (*sql.DB, error) {
	dc, err := mysqldb.NormalizeDSN(dsn)
	if err != nil {
		return nil, err
	}
	dc.Timeout = 2 * time.Second
	return sql.Open("mysql", dc.FormatDSN())
}

// ownMinIO is a MinIO server of the test's own: its data directory, its port.
type ownMinIO struct {
	*serverProcess
	t        *testing.T
	endpoint string
}

// Credentials of the own MinIO (the root user it starts with).
const ownMinIOUser, ownMinIOPassword = "reliability", "reliability-secret"

// startOwnMinIO starts a MinIO server on a fresh data directory; it is
// killed when the test ends. The binary is $MINIO_BIN, .tools/minio (where
// .ci/services.sh builds it), minio on PATH, or ~/go/bin/minio.
func startOwnMinIO(t *testing.T) *ownMinIO {
	t.Helper()
	home, _ := os.UserHomeDir()
	bin := lookPath(os.Getenv("MINIO_BIN"), filepath.Join(testenv.RepoRoot(), ".tools", "minio"), "minio", filepath.Join(home, "go", "bin", "minio"))
	if bin == "" {
		testenv.Unavailable(t, "no MinIO binary (MINIO_BIN, .tools/minio, minio on PATH or ~/go/bin/minio): `bash .ci/services.sh` builds one")
	}
	dir := t.TempDir()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	m := &ownMinIO{t: t, endpoint: "http://" + addr, serverProcess: &serverProcess{
		name: "minio", bin: bin, log: filepath.Join(dir, "minio.log"),
		args: []string{"server", "--quiet", "--address", addr, filepath.Join(dir, "data")},
		env:  []string{"MINIO_ROOT_USER=" + ownMinIOUser, "MINIO_ROOT_PASSWORD=" + ownMinIOPassword, "MINIO_BROWSER=off"},
	}}
	t.Cleanup(func() { _ = m.stop(syscall.SIGKILL) })
	m.restart()
	return m
}

// restart starts the server (on the same data directory and port) and waits
// until it is live.
func (m *ownMinIO) restart() {
	m.t.Helper()
	if err := m.start(); err != nil {
		m.t.Fatal(err)
	}
	if err := m.waitReady(m.live); err != nil {
		m.t.Fatal(err)
	}
}

func (m *ownMinIO) live(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.endpoint+"/minio/health/live", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: %s", resp.Status)
	}
	return nil
}

// client returns a path-style S3 client of the server, with opts applied.
func (m *ownMinIO) client(opts ...func(*s3.Options)) *s3.Client {
	cfg := testenv.S3Config()
	cfg.BaseEndpoint = aws.String(m.endpoint)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(ownMinIOUser, ownMinIOPassword, "")
	return s3.NewFromConfig(cfg, append([]func(*s3.Options){func(o *s3.Options) { o.UsePathStyle = true }}, opts...)...)
}

// bucket creates a bucket on the server.
func (m *ownMinIO) bucket(name string) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		m.t.Fatalf("creating bucket %s on the own MinIO: %v", name, err)
	}
}

func lastBytes(b []byte, n int) []byte {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
