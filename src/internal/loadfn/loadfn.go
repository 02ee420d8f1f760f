// Package loadfn is the Load Lambda function: SQS batches of S3 notifications
// for processed/ CSVs, upserted into MySQL, failures reported per message.
package loadfn

import (
	"context"
	"errors"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/config"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
)

// ErrNotImplemented is returned until the load lands (issue 4).
var ErrNotImplemented = errors.New("load: not implemented")

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
		Bucket:    env.Required("BUCKET"),
		PathStyle: env.Bool("S3_FORCE_PATH_STYLE", false),
		DB:        mysqldb.ConfigFromEnv(env),
	}
	return c, env.Err()
}

// Handler handles SQS batches.
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

// Handle loads every message of the batch.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	return events.SQSEventResponse{}, ErrNotImplemented
}
