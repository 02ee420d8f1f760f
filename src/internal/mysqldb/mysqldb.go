// Package mysqldb opens MySQL connections the same way in AWS and on a
// developer's machine: a DSN from the environment locally, or host and user
// with a password read from SSM Parameter Store or Secrets Manager in AWS,
// over TLS verified with the RDS certificate bundle.
//
// Every connection uses UTC (parseTime, loc=UTC, time_zone '+00:00') and
// utf8mb4. Errors never contain the password or a full DSN.
package mysqldb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/envconfig"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets"
)

// TLS modes.
const (
	TLSVerify     = "true"        // verify the server certificate (RDS bundle + system roots)
	TLSSkipVerify = "skip-verify" // encrypt without verifying (not for production)
	TLSOff        = "false"       // plain TCP (local servers)
)

// Config says how to reach the database.
type Config struct {
	DSN      string // a complete go-sql-driver DSN; wins over the fields below
	Host     string
	Port     int
	Name     string
	Secrets  secrets.Source
	TLS      string
	CABundle string // PEM file with extra roots (the RDS global bundle)

	MaxOpenConns    int
	ConnMaxLifetime time.Duration
}

// ConfigFromEnv reads MYSQL_DSN, or DB_HOST, DB_PORT, DB_NAME, DB_USER,
// DB_USER_PARAM, DB_PASSWORD_PARAM, DB_SECRET_ARN, DB_TLS and DB_CA_BUNDLE.
func ConfigFromEnv(env *envconfig.Env) Config {
	c := Config{
		DSN:             env.String("MYSQL_DSN", ""),
		MaxOpenConns:    env.Int("DB_MAX_OPEN_CONNS", 4, 1, 64),
		ConnMaxLifetime: env.Duration("DB_CONN_MAX_LIFETIME", 5*time.Minute),
	}
	if c.DSN != "" {
		return c
	}
	c.Host = env.Required("DB_HOST")
	c.Port = env.Int("DB_PORT", 3306, 1, 65535)
	c.Name = env.Required("DB_NAME")
	c.Secrets = secrets.Source{
		User:          env.String("DB_USER", ""),
		UserParam:     env.String("DB_USER_PARAM", ""),
		PasswordParam: env.String("DB_PASSWORD_PARAM", ""),
		SecretARN:     env.String("DB_SECRET_ARN", ""),
	}
	if c.Secrets.Empty() {
		env.Fail("one of DB_SECRET_ARN or DB_PASSWORD_PARAM is required when MYSQL_DSN is not set")
	}
	c.TLS = env.OneOf("DB_TLS", TLSVerify, TLSVerify, TLSSkipVerify, TLSOff)
	c.CABundle = env.String("DB_CA_BUNDLE", "")
	return c
}

// Redacted describes where the configuration points, without secrets, for logs.
func (c Config) Redacted() string {
	if c.DSN != "" {
		dc, err := mysql.ParseDSN(c.DSN)
		if err != nil {
			return "MYSQL_DSN (unparseable)"
		}
		return fmt.Sprintf("%s@%s(%s)/%s", dc.User, dc.Net, dc.Addr, dc.DBName)
	}
	return fmt.Sprintf("%s:%d/%s tls=%s", c.Host, c.Port, c.Name, c.TLS)
}

// NormalizeDSN parses dsn and returns its driver configuration with the
// settings every connection of the pipeline needs.
func NormalizeDSN(dsn string) (*mysql.Config, error) {
	dc, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's message may quote the DSN; keep only the fact.
		return nil, errors.New("MYSQL_DSN is not a valid go-sql-driver DSN (user:pass@tcp(host:port)/db)")
	}
	applyDefaults(dc)
	return dc, nil
}

func applyDefaults(dc *mysql.Config) {
	dc.ParseTime = true
	dc.Loc = time.UTC
	dc.Collation = "utf8mb4_unicode_ci"
	dc.InterpolateParams = true
	if dc.Params == nil {
		dc.Params = map[string]string{}
	}
	dc.Params["time_zone"] = "'+00:00'"
	if dc.Timeout == 0 {
		dc.Timeout = 10 * time.Second
	}
	if dc.ReadTimeout == 0 {
		dc.ReadTimeout = 5 * time.Minute
	}
	if dc.WriteTimeout == 0 {
		dc.WriteTimeout = 5 * time.Minute
	}
}

// Connector opens the database on first use and keeps it for warm invocations.
type Connector struct {
	cfg      Config
	resolver *secrets.Resolver

	mu sync.Mutex
	db *sql.DB
}

// NewConnector returns a Connector; resolver may be nil when cfg.DSN is set.
func NewConnector(cfg Config, resolver *secrets.Resolver) *Connector {
	return &Connector{cfg: cfg, resolver: resolver}
}

// DB returns the open pool, opening and pinging it the first time.
func (c *Connector) DB(ctx context.Context) (*sql.DB, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db != nil {
		return c.db, nil
	}
	dc, err := c.driverConfig(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(dc)
	if err != nil {
		return nil, fmt.Errorf("configuring MySQL connection to %s: %w", c.cfg.Redacted(), err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(c.cfg.MaxOpenConns)
	db.SetMaxIdleConns(c.cfg.MaxOpenConns)
	db.SetConnMaxLifetime(c.cfg.ConnMaxLifetime)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		if IsAuthError(err) && c.resolver != nil {
			c.resolver.Invalidate() // the secret may have been rotated: read it again next time
		}
		return nil, fmt.Errorf("connecting to MySQL at %s: %w", c.cfg.Redacted(), err)
	}
	c.db = db
	return db, nil
}

// Reset closes the pool and forgets cached credentials, so the next DB call
// reconnects with fresh ones (after a rotation, or a fatal connection error).
func (c *Connector) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db != nil {
		c.db.Close()
		c.db = nil
	}
	if c.resolver != nil {
		c.resolver.Invalidate()
	}
}

// Close releases the pool.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		return nil
	}
	err := c.db.Close()
	c.db = nil
	return err
}

func (c *Connector) driverConfig(ctx context.Context) (*mysql.Config, error) {
	if c.cfg.DSN != "" {
		dc, err := NormalizeDSN(c.cfg.DSN)
		if err != nil {
			return nil, err
		}
		dc.Params["time_zone"] = "'+00:00'"
		return dc, nil
	}
	if c.resolver == nil {
		return nil, errors.New("no MYSQL_DSN and no credential resolver")
	}
	creds, err := c.resolver.Credentials(ctx, c.cfg.Secrets)
	if err != nil {
		return nil, fmt.Errorf("reading database credentials: %w", err)
	}
	dc := mysql.NewConfig()
	dc.Net = "tcp"
	dc.Addr = c.cfg.Host + ":" + strconv.Itoa(c.cfg.Port)
	dc.DBName = c.cfg.Name
	dc.User = creds.User
	dc.Passwd = creds.Password
	applyDefaults(dc)
	switch c.cfg.TLS {
	case TLSOff:
	case TLSSkipVerify:
		dc.TLS = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // explicit opt-in
	default:
		tc, err := verifiedTLS(c.cfg.Host, c.cfg.CABundle)
		if err != nil {
			return nil, err
		}
		dc.TLS = tc
	}
	return dc, nil
}

// verifiedTLS trusts the system roots plus the PEM bundle at caFile (the RDS
// global bundle, shipped beside the bootstrap by the Makefile).
func verifiedTLS(host, caFile string) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading DB_CA_BUNDLE: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("DB_CA_BUNDLE %s holds no PEM certificate", caFile)
		}
	}
	return &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}, nil
}

// IsAuthError reports whether err is MySQL's access-denied error.
func IsAuthError(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1045 || me.Number == 1044)
}

// RouteDriverLogs sends the MySQL driver's own log lines (such as
// "unexpected EOF" when a server goes away mid-query) to log as warnings, so
// a function's logs stay JSON only. The driver's logger is process-wide:
// call it once, from main.
func RouteDriverLogs(log *slog.Logger) {
	_ = mysql.SetLogger(driverLogger{log})
}

type driverLogger struct{ log *slog.Logger }

func (d driverLogger) Print(v ...any) {
	d.log.Warn("mysql driver", "message", strings.TrimSpace(fmt.Sprint(v...)))
}
