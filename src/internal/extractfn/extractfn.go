// Package extractfn is the Extract Lambda function: it turns the schedule
// event into one crawl of the API into raw/.
package extractfn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/config"
)

// ErrNotImplemented is returned until the crawl lands (issue 3).
var ErrNotImplemented = errors.New("extract: not implemented")

// Config is the function's configuration.
type Config struct {
	Bucket     string
	APIBaseURL string
	PathStyle  bool
}

// ConfigFromEnv reads the configuration and reports every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	env := config.New(getenv)
	c := Config{
		Bucket:     env.Required("BUCKET"),
		APIBaseURL: env.String("API_BASE_URL", "https://rickandmortyapi.com/api"),
		PathStyle:  env.Bool("S3_FORCE_PATH_STYLE", false),
	}
	return c, env.Err()
}

// Event is the EventBridge scheduled event, or a plain {"force": true} input.
type Event struct {
	DetailType string `json:"detail-type"`
	Force      bool   `json:"force"`
	Detail     struct {
		Force bool `json:"force"`
	} `json:"detail"`
}

// Result is what an invocation did.
type Result struct{}

// Handler handles schedule events.
type Handler struct {
	cfg Config
	s3  *s3.Client
	hc  *http.Client
	log *slog.Logger
}

// New returns a Handler.
func New(cfg Config, s3c *s3.Client, hc *http.Client, log *slog.Logger) *Handler {
	return &Handler{cfg: cfg, s3: s3c, hc: hc, log: log}
}

// Handle runs one crawl.
func (h *Handler) Handle(ctx context.Context, ev Event) (Result, error) {
	return Result{}, ErrNotImplemented
}
