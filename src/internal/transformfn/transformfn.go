// Package transformfn is the Transform Lambda function: each S3 ObjectCreated
// record under raw/ becomes warehouse-table CSVs under processed/.
package transformfn

import (
	"context"
	"errors"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/config"
)

// ErrNotImplemented is returned until the transform lands (issue 4).
var ErrNotImplemented = errors.New("transform: not implemented")

// Config is the function's configuration.
type Config struct {
	Bucket    string
	PathStyle bool
}

// ConfigFromEnv reads the configuration and reports every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	env := config.New(getenv)
	c := Config{Bucket: env.Required("BUCKET"), PathStyle: env.Bool("S3_FORCE_PATH_STYLE", false)}
	return c, env.Err()
}

// Handler handles S3 events.
type Handler struct {
	cfg Config
	s3  *s3.Client
	log *slog.Logger
}

// New returns a Handler.
func New(cfg Config, s3c *s3.Client, log *slog.Logger) *Handler {
	return &Handler{cfg: cfg, s3: s3c, log: log}
}

// Handle transforms every record of the event.
func (h *Handler) Handle(ctx context.Context, ev events.S3Event) error {
	return ErrNotImplemented
}
