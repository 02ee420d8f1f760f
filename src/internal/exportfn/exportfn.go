// Package exportfn is the Export Lambda function (the RDS exporter): on its
// schedule it copies new and changed MySQL rows to S3 as CSV and Parquet.
package exportfn

import (
	"context"
	"errors"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/config"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
)

// ErrNotImplemented is returned until the exporter lands (issue 5).
var ErrNotImplemented = errors.New("export: not implemented")

// Config is the function's configuration.
type Config struct {
	Bucket    string
	PathStyle bool
	DB        mysqldb.Config
}

// ConfigFromEnv reads the configuration and reports every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	env := config.New(getenv)
	c := Config{
		Bucket:    env.String("EXPORT_BUCKET", env.Required("BUCKET")),
		PathStyle: env.Bool("S3_FORCE_PATH_STYLE", false),
		DB:        mysqldb.ConfigFromEnv(env),
	}
	return c, env.Err()
}

// Event is the EventBridge scheduled event, or a plain input such as {"tables":["orders"]}.
type Event struct {
	DetailType string   `json:"detail-type"`
	Tables     []string `json:"tables"`
}

// Result is what an invocation did.
type Result struct{}

// Handler handles schedule events.
type Handler struct {
	cfg Config
	s3  *s3.Client
	db  *mysqldb.Connector
	log *slog.Logger
}

// New returns a Handler.
func New(cfg Config, s3c *s3.Client, db *mysqldb.Connector, log *slog.Logger) *Handler {
	return &Handler{cfg: cfg, s3: s3c, db: db, log: log}
}

// Handle runs one export of every configured table.
func (h *Handler) Handle(ctx context.Context, ev Event) (Result, error) {
	return Result{}, ErrNotImplemented
}
