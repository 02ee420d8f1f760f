package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

func loadCommand() *command {
	return &command{
		name:    "load",
		summary: "load processed/ CSVs into MySQL through SQS-shaped batches",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			prefix := fs.String("prefix", bucket.ProcessedPrefix, "load every object under this prefix (it must be under processed/)")
			batch := fs.Int("batch", 10, "messages per batch handed to the handler (the SQS event source's BatchSize)")
			return func(ctx context.Context) (result, error) {
				if !strings.HasPrefix(*prefix, bucket.ProcessedPrefix) {
					return nil, fmt.Errorf("--prefix %q is not under %s", *prefix, bucket.ProcessedPrefix)
				}
				if *batch < 1 || *batch > 10000 {
					return nil, fmt.Errorf("--batch %d is outside [1, 10000]", *batch)
				}
				st, err := g.openStack(ctx, true)
				if err != nil {
					return nil, err
				}
				defer st.Close()
				level := os.Getenv("LOG_LEVEL")
				if level == "" {
					level = "warn"
				}
				log := logging.New(g.stderr, level).With("function", "load")
				return loadPrefix(ctx, st.S3, st.DB, st.Bucket, *prefix, *batch, log)
			}
		},
	}
}

// loadResult is what `pipeline load` did.
type loadResult struct {
	Bucket      string           `json:"bucket"`
	Prefix      string           `json:"prefix"`
	Objects     int              `json:"objects"`
	Batches     int              `json:"batches"`
	Loaded      int              `json:"loaded"`
	Skipped     int              `json:"skipped"`
	Quarantined int              `json:"quarantined"`
	Failed      int              `json:"failed"`
	RowsRead    int64            `json:"rowsRead"` // data rows in the files loaded
	Tables      map[string]int64 `json:"tables"`   // rows per warehouse table afterwards
	Problems    []loadfn.Outcome `json:"problems"` // every object quarantined, failed or rejected
}

func (r *loadResult) Human(w io.Writer) {
	fmt.Fprintf(w, "loaded %d of %d objects under s3://%s/%s in %d batches: %d skipped (already loaded), %d quarantined, %d failed\n",
		r.Loaded, r.Objects, r.Bucket, r.Prefix, r.Batches, r.Skipped, r.Quarantined, r.Failed)
	var parts []string
	for _, t := range warehouse.Tables() {
		parts = append(parts, fmt.Sprintf("%s %d", t.Name, r.Tables[t.Name]))
	}
	fmt.Fprintf(w, "warehouse rows: %s\n", strings.Join(parts, ", "))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s %s: %s\n", p.Status, p.Key, p.Reason)
	}
}

// loadPrefix lists the objects under prefix and hands their S3 notifications
// to the Load function's handler in SQS batches of batch messages, as the
// SQS event source does in AWS.
func loadPrefix(ctx context.Context, s3c *s3.Client, db *mysqldb.Connector, bucket, prefix string, batch int, log *slog.Logger) (*loadResult, error) {
	res := &loadResult{Bucket: bucket, Prefix: prefix, Tables: map[string]int64{}, Problems: []loadfn.Outcome{}}
	h := loadfn.New(loadfn.Config{Bucket: bucket, PathStyle: true}, s3c, db, log)
	h.Observe = func(o loadfn.Outcome) {
		switch o.Status {
		case loadfn.Loaded:
			res.Loaded++
			res.RowsRead += o.Rows
			return
		case loadfn.Skipped:
			res.Skipped++
			return
		case loadfn.Quarantined:
			res.Quarantined++
		default:
			res.Failed++
		}
		res.Problems = append(res.Problems, o)
	}
	var msgs []events.SQSMessage
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		res.Batches++
		if _, err := h.Handle(ctx, events.SQSEvent{Records: msgs}); err != nil {
			return err
		}
		msgs = msgs[:0]
		return nil
	}
	err := eachObject(ctx, s3c, bucket, prefix, func(obj types.Object) error {
		res.Objects++
		ref := load.ObjectRef{Bucket: bucket, Key: aws.ToString(obj.Key), ETag: aws.ToString(obj.ETag)}
		msgs = append(msgs, loadfn.Message(fmt.Sprintf("local-%06d", res.Objects), ref, aws.ToInt64(obj.Size), time.Now()))
		if len(msgs) == batch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if err := flush(); err != nil {
		return res, err
	}
	if err := countRows(ctx, db, res.Tables); err != nil {
		return res, err
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("%d of %d objects failed (transient errors: run again; loaded objects are skipped)", res.Failed, res.Objects)
	}
	return res, nil
}

func countRows(ctx context.Context, c *mysqldb.Connector, into map[string]int64) error {
	db, err := c.DB(ctx)
	if err != nil {
		return err
	}
	if err := warehousedb.Migrate(ctx, db); err != nil { // an empty processed/ still leaves the tables
		return err
	}
	for _, t := range warehouse.Tables() {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+warehousedb.Quote(t.Name)).Scan(&n); err != nil {
			return fmt.Errorf("counting %s: %w", t.Name, err)
		}
		into[t.Name] = n
	}
	return nil
}
