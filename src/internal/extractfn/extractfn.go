// Package extractfn is the Extract Lambda function: it turns the schedule
// event into one crawl of the API into raw/.
package extractfn

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/envconfig"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extract"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

// Config is the function's configuration.
type Config struct {
	Bucket         string        // BUCKET (required)
	APIBaseURL     string        // API_BASE_URL
	PathStyle      bool          // S3_FORCE_PATH_STYLE
	Concurrency    int           // CRAWL_CONCURRENCY: requests in flight
	RequestTimeout time.Duration // REQUEST_TIMEOUT: per request
	RetryMax       int           // RETRY_MAX: retries of one request
	RetryBudget    int           // RETRY_BUDGET: retries of one run
}

// ConfigFromEnv reads the configuration and reports every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	env := envconfig.New(getenv)
	d := extract.DefaultConfig()
	c := Config{
		Bucket:         env.Required("BUCKET"),
		APIBaseURL:     env.String("API_BASE_URL", d.BaseURL),
		PathStyle:      env.Bool("S3_FORCE_PATH_STYLE", false),
		Concurrency:    env.Int("CRAWL_CONCURRENCY", d.Concurrency, 1, 64),
		RequestTimeout: env.Duration("REQUEST_TIMEOUT", d.RequestTimeout),
		RetryMax:       env.Int("RETRY_MAX", d.RetryMax, 0, 20),
		RetryBudget:    env.Int("RETRY_BUDGET", d.RetryBudget, 0, 100000),
	}
	if c.RequestTimeout == 0 {
		env.Fail("REQUEST_TIMEOUT must be positive")
	}
	return c, env.Err()
}

// crawlConfig maps the function's configuration onto the crawl's.
func (c Config) crawlConfig() extract.Config {
	cc := extract.DefaultConfig()
	cc.Bucket = c.Bucket
	if c.APIBaseURL != "" {
		cc.BaseURL = c.APIBaseURL
	}
	if c.Concurrency > 0 {
		cc.Concurrency = c.Concurrency
	}
	if c.RequestTimeout > 0 {
		cc.RequestTimeout = c.RequestTimeout
	}
	cc.RetryMax = c.RetryMax
	cc.RetryBudget = c.RetryBudget
	return cc
}

// Event is the EventBridge scheduled event, or a plain {"force": true} input.
// Force is the top-level force or detail.force.
type Event struct {
	DetailType string `json:"detail-type"`
	Force      bool   `json:"force"`
	Detail     struct {
		Force bool `json:"force"`
	} `json:"detail"`
}

// Handler handles schedule events.
type Handler struct {
	crawler *extract.Crawler
}

// New returns a Handler crawling with hc (nil: a client keeping
// cfg.Concurrency connections alive) into the bucket through s3c. now
// stamps fetch times (nil: time.Now).
func New(cfg Config, s3c bucket.API, hc *http.Client, now func() time.Time, log *slog.Logger) *Handler {
	if hc == nil {
		hc = rickmorty.NewHTTPClient(cfg.Concurrency)
	}
	return &Handler{crawler: extract.New(cfg.crawlConfig(), bucket.New(s3c, cfg.Bucket), hc, now, log)}
}

// Handle runs one crawl. It returns an error when any page was not stored,
// including a stop before the invocation's deadline (extract.ErrDeadline):
// every run is idempotent, so a retry or the next schedule completes it.
func (h *Handler) Handle(ctx context.Context, ev Event) (extract.Result, error) {
	return h.crawler.Run(ctx, ev.Force || ev.Detail.Force)
}
