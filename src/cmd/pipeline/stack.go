package main

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
)

// stack is the local stack a command runs against: the folder-backed S3
// endpoint and a MySQL database (the embedded engine unless --mysql-dsn).
type stack struct {
	Bucket   string
	Endpoint string             // http://127.0.0.1:PORT of the S3 endpoint
	S3       *s3.Client         // SDK client for the endpoint: the same code path as in AWS
	DSN      string             // MySQL DSN (server or embedded engine); empty unless needDB
	DB       *mysqldb.Connector // nil unless needDB
	close    []func() error
}

// openStack starts the local stack under g.dataDir; with needDB it also opens
// MySQL (g.mysqlDSN, or the embedded engine).
func (g *globals) openStack(ctx context.Context, needDB bool) (*stack, error) {
	return nil, errors.New("local stack: being built (issue 2)")
}

// Close stops what openStack started.
func (s *stack) Close() error {
	var errs []error
	for i := len(s.close) - 1; i >= 0; i-- {
		errs = append(errs, s.close[i]())
	}
	return errors.Join(errs...)
}
