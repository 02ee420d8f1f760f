package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/localstack"
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
	Server   *localstack.Server
	MySQL    *localstack.MySQL // nil when --mysql-dsn names a server
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
	srv, err := localstack.Start(ctx, localstack.Options{DataDir: dir, Bucket: localBucket, Logger: quiet})
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
		my, err := localstack.StartMySQL(ctx, localstack.MySQLOptions{DataDir: dir, Logger: quiet})
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("starting the embedded MySQL engine: %w", err)
		}
		st.MySQL = my
		st.DSN = my.DSN()
		st.close = append(st.close, my.Close)
	}
	st.DB = mysqldb.NewConnector(mysqldb.Config{DSN: st.DSN, MaxOpenConns: 4}, nil)
	st.close = append(st.close, st.DB.Close)
	return st, nil
}

// Close stops what openStack started, the database last (it saves itself).
func (s *stack) Close() error {
	var errs []error
	for i := len(s.close) - 1; i >= 0; i-- {
		errs = append(errs, s.close[i]())
	}
	return errors.Join(errs...)
}
