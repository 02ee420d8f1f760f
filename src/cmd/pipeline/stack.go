package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/localmysql"
	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
)

// localBucket is the local stack's data bucket (the name events/env.json uses).
const localBucket = "rick-morty-local"

// stack is the local stack a command runs against: the folder-backed S3
// endpoint and a MySQL database (the embedded engine unless --mysql-dsn).
type stack struct {
	Bucket   string
	Endpoint string             // http://127.0.0.1:PORT of the S3 endpoint
	S3       *s3.Client         // SDK client for the endpoint: the same code path as in AWS
	DSN      string             // MySQL DSN (server or embedded engine); empty unless needDB
	DB       *mysqldb.Connector // nil unless needDB
	Server   *locals3.Server
	MySQL    *localmysql.Server // nil when --mysql-dsn names a server
	close    []func() error
}

// openStack starts the local stack under g.dataDir; with needDB it also opens
// MySQL (g.mysqlDSN, or the embedded engine persisted under <data-dir>/mysql).
func (g *globals) openStack(ctx context.Context, needDB bool) (*stack, error) {
	dir, err := filepath.Abs(g.dataDir)
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	srv, err := locals3.Start(ctx, locals3.Options{DataDir: dir, Bucket: localBucket, Addr: g.s3Addr, Logger: quiet})
	if err != nil {
		return nil, fmt.Errorf("starting the local S3 endpoint: %w", err)
	}
	st := &stack{Bucket: srv.Bucket(), Endpoint: srv.Endpoint(), S3: srv.Client(), Server: srv}
	st.close = append(st.close, srv.Close)
	if !needDB {
		return st, nil
	}
	st.DSN = g.mysqlDSN
	if st.DSN == "" {
		my, err := localmysql.Start(ctx, localmysql.Options{DataDir: dir, Addr: g.dbAddr, Logger: quiet})
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("starting the embedded MySQL engine: %w", err)
		}
		st.MySQL = my
		st.DSN = my.DSN()
		st.close = append(st.close, my.Close)
	} else if err := ensureDatabase(ctx, st.DSN); err != nil {
		st.Close()
		return nil, err
	}
	st.DB = mysqldb.NewConnector(mysqldb.Config{DSN: st.DSN, MaxOpenConns: 4}, nil)
	st.close = append(st.close, st.DB.Close)
	return st, nil
}

// ensureDatabase creates the DSN's database on the server when it is
// missing, so `--mysql-dsn 'root@tcp(127.0.0.1:3306)/rm'` works on a fresh
// server.
func ensureDatabase(ctx context.Context, dsn string) error {
	dc, err := mysqldb.NormalizeDSN(dsn)
	if err != nil {
		return err
	}
	name := dc.DBName
	if name == "" {
		return errors.New("--mysql-dsn names no database (…/dbname)")
	}
	if strings.ContainsAny(name, "`\x00") {
		return fmt.Errorf("--mysql-dsn: database name %q is not allowed", name)
	}
	dc.DBName = ""
	conn, err := mysql.NewConnector(dc)
	if err != nil {
		return fmt.Errorf("connecting to MySQL: %w", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return fmt.Errorf("creating database %s: %w", name, err)
	}
	return nil
}

// Close stops what openStack started, the database last (it saves itself).
func (s *stack) Close() error {
	var errs []error
	for i := len(s.close) - 1; i >= 0; i-- {
		errs = append(errs, s.close[i]())
	}
	return errors.Join(errs...)
}
