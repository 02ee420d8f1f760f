package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extract"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extractfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

func extractCommand() *command {
	return &command{
		name:    "extract",
		summary: "crawl the API (or `pipeline fakeapi`) into raw/ on the local stack",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			def := extract.DefaultConfig()
			apiURL := fs.String("api-url", envOr("API_BASE_URL", rickmorty.DefaultBaseURL), "API root to crawl ($API_BASE_URL when set)")
			force := fs.Bool("force", false, "write every page, even those whose bytes are already stored")
			conc := fs.Int("concurrency", def.Concurrency, "requests in flight, across resources")
			timeout := fs.Duration("timeout", def.RequestTimeout, "timeout of one request")
			retryMax := fs.Int("retry-max", def.RetryMax, "retries of one request")
			budget := fs.Int("retry-budget", def.RetryBudget, "retries of the whole run")
			return func(ctx context.Context) (result, error) {
				if *conc < 1 || *timeout <= 0 || *retryMax < 0 || *budget < 0 {
					return nil, errors.New("--concurrency and --timeout must be positive, --retry-max and --retry-budget not negative")
				}
				st, err := g.openStack(ctx, false)
				if err != nil {
					return nil, err
				}
				defer st.Close()
				level := os.Getenv("LOG_LEVEL")
				if level == "" {
					level = "warn"
				}
				log := logging.New(g.stderr, level).With("function", "extract")
				cfg := extractfn.Config{
					Bucket: st.Bucket, APIBaseURL: *apiURL, PathStyle: true, Concurrency: *conc,
					RequestTimeout: *timeout, RetryMax: *retryMax, RetryBudget: *budget,
				}
				ev, err := scheduledEvent(*force, time.Now())
				if err != nil {
					return nil, err
				}
				res, err := extractfn.New(cfg, st.S3, nil, time.Now, log).Handle(ctx, ev)
				out := &extractResult{
					Result: res, APIBaseURL: *apiURL, Bucket: st.Bucket,
					Folder: filepath.Join(g.dataDir, "s3", st.Bucket, bucket.RawPrefix),
				}
				return out, err
			}
		},
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// scheduledEvent is the event EventBridge sends on the extract schedule
// (events/extract-schedule.json), with detail.force when forced, decoded
// into the handler's type exactly as in Lambda.
func scheduledEvent(force bool, now time.Time) (extractfn.Event, error) {
	detail := json.RawMessage(`{}`)
	if force {
		detail = json.RawMessage(`{"force":true}`)
	}
	b, err := json.Marshal(events.EventBridgeEvent{
		Version: "0", ID: fmt.Sprintf("local-%d", now.UnixNano()), DetailType: "Scheduled Event",
		Source: "aws.events", AccountID: "000000000000", Time: now.UTC().Truncate(time.Second), Region: "us-east-1",
		Resources: []string{"arn:aws:events:us-east-1:000000000000:rule/local-ExtractFunctionSchedule"},
		Detail:    detail,
	})
	if err != nil {
		return extractfn.Event{}, err
	}
	var ev extractfn.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return extractfn.Event{}, fmt.Errorf("decoding the schedule event: %w", err)
	}
	return ev, nil
}

// extractResult is what `pipeline extract` did: the handler's result.
type extractResult struct {
	extract.Result
	APIBaseURL string `json:"apiBaseUrl"`
	Bucket     string `json:"bucket"`
	Folder     string `json:"folder"` // where the pages are on disk
}

func (r *extractResult) Human(w io.Writer) {
	var per []string
	for _, rr := range r.Resources {
		per = append(per, fmt.Sprintf("%s %d/%d", rr.Resource, rr.Stored(), rr.Pages))
	}
	fmt.Fprintf(w, "crawled %s: %d of %d pages in raw/ (%s)\n", r.APIBaseURL, r.Written+r.Unchanged, r.Pages, strings.Join(per, ", "))
	fmt.Fprintf(w, "  %d written, %d unchanged, %d failed, %d not done; %d requests, %d retries; %d bytes written in %s\n",
		r.Written, r.Unchanged, r.Failed, r.Skipped, r.Requests, r.Retries, r.BytesWritten,
		r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
	fmt.Fprintf(w, "  pages: s3://%s/%s (%s)\n  manifest: s3://%s/%s\n", r.Bucket, bucket.RawPrefix, r.Folder, r.Bucket, r.ManifestKey)
	for _, c := range r.Changes {
		fmt.Fprintf(w, "  dataset changed: %s page %d says count %d, pages %d (page 1: %d, %d)\n", c.Resource, c.Page, c.Count, c.Pages, c.FirstCount, c.FirstPages)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  failed: %s page %d: %s\n", f.Resource, f.Page, f.Error)
	}
	if r.FailuresOmitted > 0 {
		fmt.Fprintf(w, "  ... and %d more failures (see the manifest)\n", r.FailuresOmitted)
	}
}
