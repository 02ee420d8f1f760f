package localmysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
	"unicode"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	gms "github.com/dolthub/go-mysql-server/sql"
	vtmysql "github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	"github.com/go-sql-driver/mysql"
	"github.com/sirupsen/logrus"
)

// Options configures Start.
type Options struct {
	// DataDir is the local stack's data folder: the databases are saved to
	// DataDir/mysql/<database>.sql and restored from there. Empty: nothing
	// is saved.
	DataDir string
	// Database is created at start when missing; default "rm".
	Database string
	// Addr is the listen address; default "127.0.0.1:0" (a free port).
	Addr string
	// Logger receives the engine's log lines at debug level; nil discards
	// them. The engine logs through logrus's process-wide logger, which
	// Start redirects (the last Start of a process wins).
	Logger *slog.Logger
}

// Server is an embedded MySQL-compatible server: go-mysql-server with its
// in-memory storage, reached through the MySQL protocol with the usual driver
// and a DSN (user root, no password; authentication is not checked).
//
// The data lives in memory. So that it survives between commands, Close (and
// Save) write each database to <DataDir>/mysql/<database>.sql, a plain SQL
// dump that Start replays; a process that is killed loses what it wrote
// since the last Save. Tables, rows and views are saved; triggers, stored
// procedures and events are not.
//
// Writers are serialized engine-wide (the in-memory storage would otherwise
// lose concurrent updates): a connection that writes, or begins a
// transaction, holds the write lock until its transaction ends, while reads
// outside transactions run concurrently. So a process must not wait, inside
// an open transaction, for a write made on another connection.
type Server struct {
	engine   *sqle.Engine
	server   *server.Server
	handler  *serialHandler
	client   *sql.DB // the server's own connection, for Save and restore
	dataDir  string
	addr     string
	database string
	done     chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start starts the engine, listens on opts.Addr and restores the saved
// databases. ctx bounds the start only.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Database == "" {
		opts.Database = "rm"
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	routeEngineLogs(opts.Logger)

	mem := memory.NewDBProviderWithOpts(memory.NativeIndexProvider(true)).(*memory.DbProvider)
	pro := newProvider(mem)
	engine := sqle.NewDefault(pro)
	sctx := gms.NewContext(ctx, gms.WithSession(memory.NewSession(gms.NewBaseSession(), mem)))
	if err := mem.CreateDatabase(sctx, opts.Database); err != nil {
		return nil, fmt.Errorf("starting embedded MySQL: creating database %s: %w", opts.Database, err)
	}
	// Like the pipeline's connections (and MariaDB test databases): utf8mb4_unicode_ci,
	// not the engine's default utf8mb4_0900_bin, which compares case-sensitively.
	if db, err := mem.Database(sctx, opts.Database); err == nil {
		if cdb, ok := db.(gms.CollatedDatabase); ok {
			cdb.SetCollation(sctx, gms.Collation_utf8mb4_unicode_ci)
		}
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("starting embedded MySQL: %w", err)
	}
	var handler *serialHandler
	srv, err := server.NewServerWithHandler(server.Config{Protocol: "tcp", Listener: ln, Version: "8.0.31-go-mysql-server"},
		engine, gms.NewContext, memory.NewSessionBuilder(mem), nil,
		func(h vtmysql.Handler) (vtmysql.Handler, error) {
			handler = newSerialHandler(h, pro)
			return handler, nil
		})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("starting embedded MySQL: %w", err)
	}
	m := &Server{engine: engine, server: srv, handler: handler, dataDir: opts.DataDir,
		addr: ln.Addr().String(), database: opts.Database, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		srv.Start()
	}()
	m.client, err = sql.Open("mysql", m.dsn(false))
	if err == nil && opts.DataDir != "" {
		m.client.SetMaxOpenConns(1)
		err = m.restore(ctx)
	}
	if err != nil {
		m.shutdown()
		return nil, fmt.Errorf("starting embedded MySQL: %w", err)
	}
	return m, nil
}

// Addr returns the host:port the engine listens on.
func (m *Server) Addr() string { return m.addr }

// Database returns the name of the database created at start.
func (m *Server) Database() string { return m.database }

// DSN returns a go-sql-driver DSN for the database, with the settings the
// pipeline uses everywhere: parseTime, UTC, utf8mb4_unicode_ci,
// interpolateParams and time_zone '+00:00'.
func (m *Server) DSN() string { return m.dsn(true) }

// dsn returns the DSN; without parseTime, DATETIME values arrive as text
// (what Save writes).
func (m *Server) dsn(parseTime bool) string {
	c := mysql.NewConfig()
	c.User = "root"
	c.Net = "tcp"
	c.Addr = m.addr
	c.DBName = m.database
	c.ParseTime = parseTime
	c.Collation = "utf8mb4_unicode_ci"
	c.InterpolateParams = true
	c.Params = map[string]string{"time_zone": "'+00:00'"}
	return c.FormatDSN()
}

// Close saves the databases (see Save; it waits up to 30 seconds for open
// write transactions), then closes every connection and stops the engine.
func (m *Server) Close() error {
	m.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := m.Save(ctx)
		if serr := m.shutdown(); err == nil {
			err = serr
		}
		if err != nil {
			m.closeErr = fmt.Errorf("closing embedded MySQL: %w", err)
		}
	})
	return m.closeErr
}

func (m *Server) shutdown() error {
	if m.client != nil {
		m.client.Close()
	}
	err := m.server.Close()
	<-m.done
	if cerr := m.engine.Close(); err == nil && !errors.Is(cerr, context.Canceled) {
		err = cerr
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// routeEngineLogs sends go-mysql-server's log lines, written to logrus's
// process-wide logger, to log at debug level (or nowhere).
func routeEngineLogs(log *slog.Logger) {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	std.ReplaceHooks(make(logrus.LevelHooks))
	if log != nil {
		std.AddHook(logrusHook{log})
	}
}

type logrusHook struct{ log *slog.Logger }

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logrusHook) Fire(e *logrus.Entry) error {
	attrs := make([]any, 0, 2*len(e.Data)+2)
	attrs = append(attrs, "level", e.Level.String())
	for k, v := range e.Data {
		attrs = append(attrs, k, v)
	}
	h.log.Debug("embedded MySQL: "+e.Message, attrs...)
	return nil
}

// serialHandler serializes the writers of go-mysql-server's in-memory
// storage, which otherwise loses updates: each statement or transaction
// edits its own copy of a table and the last commit replaces the table. A
// connection takes the engine-wide write lock for any statement that may
// write, or when it starts a transaction, and keeps it until its transaction
// ends. Reads outside transactions (and GET_LOCK, which may wait) run
// concurrently.
type serialHandler struct {
	vtmysql.Handler
	lock chan struct{} // the write lock: full when held
	pro  *provider     // told when a connection closes

	mu      sync.Mutex
	holders map[uint32]bool // connection IDs that hold the lock
}

func newSerialHandler(h vtmysql.Handler, pro *provider) *serialHandler {
	return &serialHandler{Handler: h, pro: pro, lock: make(chan struct{}, 1), holders: make(map[uint32]bool)}
}

func (h *serialHandler) holds(c *vtmysql.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.holders[c.ConnectionID]
}

// acquire takes the write lock for c unless query only reads outside a
// transaction. With autocommit off, any statement may open a transaction.
func (h *serialHandler) acquire(ctx context.Context, c *vtmysql.Conn, query string) error {
	autocommit := c.StatusFlags&uint16(vtmysql.ServerStatusAutocommit) != 0
	if h.holds(c) || (autocommit && readsOnly(query)) {
		return nil
	}
	select {
	case h.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.mu.Lock()
	h.holders[c.ConnectionID] = true
	h.mu.Unlock()
	return nil
}

// release gives the lock back once c is no longer in a transaction (or is gone).
func (h *serialHandler) release(c *vtmysql.Conn, force bool) {
	if !force && c.StatusFlags&uint16(vtmysql.ServerInTransaction) != 0 {
		return
	}
	h.mu.Lock()
	held := h.holders[c.ConnectionID]
	delete(h.holders, c.ConnectionID)
	h.mu.Unlock()
	if held {
		<-h.lock
	}
}

// NewConnection marks the session as in autocommit mode, as it starts; the
// engine updates the flag after every statement.
func (h *serialHandler) NewConnection(c *vtmysql.Conn) {
	h.Handler.NewConnection(c)
	c.StatusFlags |= uint16(vtmysql.ServerStatusAutocommit)
}

func (h *serialHandler) ComQuery(ctx context.Context, c *vtmysql.Conn, query string, callback vtmysql.ResultSpoolFn) error {
	if err := h.acquire(ctx, c, query); err != nil {
		return err
	}
	defer h.release(c, false)
	return h.Handler.ComQuery(ctx, c, query, callback)
}

func (h *serialHandler) ComMultiQuery(ctx context.Context, c *vtmysql.Conn, query string, callback vtmysql.ResultSpoolFn) (string, error) {
	if err := h.acquire(ctx, c, query); err != nil {
		return "", err
	}
	defer h.release(c, false)
	return h.Handler.ComMultiQuery(ctx, c, query, callback)
}

func (h *serialHandler) ComStmtExecute(ctx context.Context, c *vtmysql.Conn, prepare *vtmysql.PrepareData, callback func(*sqltypes.Result) error) error {
	if err := h.acquire(ctx, c, prepare.PrepareStmt); err != nil {
		return err
	}
	defer h.release(c, false)
	return h.Handler.ComStmtExecute(ctx, c, prepare, callback)
}

func (h *serialHandler) ComResetConnection(c *vtmysql.Conn) error {
	defer h.release(c, true)
	return h.Handler.ComResetConnection(c)
}

func (h *serialHandler) ConnectionClosed(c *vtmysql.Conn) {
	defer h.release(c, true)
	defer h.pro.forgetSession(c.ConnectionID)
	h.Handler.ConnectionClosed(c)
}

// readsOnly reports whether a statement cannot write and does not start a
// transaction, judging by its first keyword.
func readsOnly(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	for {
		switch {
		case strings.HasPrefix(q, "/*"):
			end := strings.Index(q, "*/")
			if end < 0 {
				return false
			}
			q = strings.TrimLeft(q[end+2:], " \t\r\n(")
			continue
		case strings.HasPrefix(q, "--") || strings.HasPrefix(q, "#"):
			end := strings.IndexByte(q, '\n')
			if end < 0 {
				return false
			}
			q = strings.TrimLeft(q[end+1:], " \t\r\n(")
			continue
		}
		break
	}
	word := q
	if i := strings.IndexFunc(q, func(r rune) bool { return !unicode.IsLetter(r) }); i >= 0 {
		word = q[:i]
	}
	switch strings.ToUpper(word) {
	case "SELECT", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "SET", "USE", "DO", "COMMIT", "ROLLBACK":
		return true
	}
	return false
}
