package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/localrun"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
)

func exportCommand() *command {
	return &command{
		name:    "export",
		summary: "export new and changed MySQL rows to CSV and Parquet",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			tables := fs.String("tables", strings.Join(exportfn.DefaultTables, ","), "comma-separated tables to export")
			lag := fs.Duration("lag", export.DefaultLag, "upper bound = database clock minus this (longer than any write transaction)")
			prefix := fs.String("prefix", bucket.DefaultExportPrefix, "key prefix of the exports in the bucket (never under raw/ or processed/)")
			wm := fs.String("watermark-columns", "", "per-table watermark columns, as EXPORT_WATERMARK_COLUMNS: orders=updated_at:created_at;...")
			chunk := fs.Int("chunk-rows", export.DefaultChunkRows, "rows per keyset query (the first export's key-order chunks; incremental ones when an index serves the order)")
			group := fs.Int("row-group-rows", export.DefaultRowGroupRows, "rows per Parquet row group")
			codec := fs.String("compression", export.DefaultCompression, "Parquet compression: "+strings.Join(export.Compressions, ", "))
			timeout := fs.Duration("timeout", 0, "stop like a Lambda at this deadline (0: none); the run saves its position and the next goes on")
			rangeRows := fs.Int("range-rows", 0, "fan out a table with more due rows than this into primary-key ranges, exported by range workers through a local queue (0: off)")
			workers := fs.Int("range-workers", 4, "range workers at once (the range queue's MaximumConcurrency)")
			return func(ctx context.Context) (result, error) {
				cfg := exportfn.Config{
					PathStyle: true, Prefix: *prefix, Lag: *lag, ChunkRows: *chunk, RowGroupRows: *group,
					Compression: *codec, DeadlineMargin: export.DefaultDeadlineMargin,
				}
				for _, t := range strings.Split(*tables, ",") {
					if t = strings.TrimSpace(t); t != "" {
						cfg.Tables = append(cfg.Tables, t)
					}
				}
				if len(cfg.Tables) == 0 {
					return nil, fmt.Errorf("--tables names no table")
				}
				if err := bucket.ValidateExportPrefix(cfg.Prefix); err != nil {
					return nil, fmt.Errorf("--prefix: %w", err)
				}
				overrides, err := export.ParseWatermarkColumns(*wm)
				if err != nil {
					return nil, fmt.Errorf("--watermark-columns: %w", err)
				}
				cfg.WatermarkColumns = overrides
				if *rangeRows < 0 || *workers < 1 {
					return nil, fmt.Errorf("--range-rows must be >= 0 and --range-workers >= 1")
				}
				cfg.RangeRows = *rangeRows
				if *timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, *timeout)
					defer cancel()
					cfg.DeadlineMargin = min(export.DefaultDeadlineMargin, *timeout/4)
				}
				st, err := g.openStack(ctx, true)
				if err != nil {
					return nil, err
				}
				defer st.Close()
				cfg.Bucket = st.Bucket
				level := os.Getenv("LOG_LEVEL")
				if level == "" {
					level = "warn"
				}
				log := logging.New(g.stderr, level).With("function", "export")
				out := &exportResult{Bucket: st.Bucket}
				out.Result, out.rangeStats, err = runExport(ctx, exportfn.New(cfg, st.S3, st.DB, log), *workers)
				return out, err
			}
		},
	}
}

// exportResult is what `pipeline export` did.
type exportResult struct {
	Bucket string `json:"bucket"`
	export.Result
	rangeStats
}

// rangeStats is what the range workers of a fanned-out run did: messages
// handled, failed attempts (delivered again), and messages dead-lettered
// after 5 receives.
type rangeStats struct {
	Ranges        int `json:"ranges,omitempty"`
	RangeFailures int `json:"range_failures,omitempty"`
	DeadLetters   int `json:"dead_letters,omitempty"`
}

// runExport runs the scheduled export with h and, when its configuration
// fans out, drains the local range queue with workers range workers: what
// `pipeline export`, `run` and `serve` do.
func runExport(ctx context.Context, h *exportfn.Handler, workers int) (export.Result, rangeStats, error) {
	var ranges *localRanges
	if h.Config().RangeRows > 0 {
		ranges = newLocalRanges()
		h.Ranges = ranges
	}
	res, err := h.Handle(ctx, exportfn.Event{DetailType: "Scheduled Event"})
	var st rangeStats
	if ranges != nil {
		st.Ranges, st.RangeFailures, st.DeadLetters = ranges.drain(ctx, h, workers)
		if st.DeadLetters > 0 && err == nil {
			err = fmt.Errorf("%d range messages ended in the dead-letter queue", st.DeadLetters)
		}
	}
	return res, st, err
}

// templateRanges reads the fan-out of template.yaml's stack (parameter
// defaults): ExportFunction's EXPORT_RANGE_ROWS, and the range workers at
// once (ExportRangeFunction's MaximumConcurrency); 0 and 1 when absent.
func templateRanges(tpl *samtemplate.Template) (rows, workers int) {
	workers = 1
	fn, ok := tpl.Resource(exportID)
	if !ok {
		return 0, workers
	}
	if v, ok := samtemplate.Lookup(fn.Properties, "Environment", "Variables", "EXPORT_RANGE_ROWS"); ok {
		if s, err := tpl.ResolveString(v, samtemplate.Stack{}); err == nil {
			rows, _ = strconv.Atoi(s)
		}
	}
	if w, ok := tpl.Resource("ExportRangeFunction"); ok {
		if v, ok := samtemplate.Lookup(w.Properties, "Events", "Ranges", "Properties", "ScalingConfig", "MaximumConcurrency"); ok {
			if r, err := tpl.Resolve(v, samtemplate.Stack{}); err == nil {
				if n, ok := samtemplate.Int(r); ok && n > 0 {
					workers = n
				}
			}
		}
	}
	return rows, workers
}

// localRanges is the range queue on this machine: a local queue with SQS
// behaviour (a message in flight for a minute is delivered again, a failed
// one comes back after that minute, dead letters after 5 receives), drained
// by workers that call the range handler as the event source mapping calls
// ExportRangeFunction, several at once.
type localRanges struct {
	q *localrun.Queue
}

func newLocalRanges() *localRanges {
	return &localRanges{q: localrun.NewQueue(localrun.QueueConfig{Name: "export-ranges", VisibilityTimeout: time.Minute, MaxReceiveCount: 5})}
}

// SendRanges queues one message per range.
func (l *localRanges) SendRanges(_ context.Context, msgs []export.RangeMessage) error {
	for _, m := range msgs {
		l.q.Send(exportfn.RangeBody(m))
	}
	return nil
}

// drain runs workers until every message is settled (handled, or dead).
func (l *localRanges) drain(ctx context.Context, h *exportfn.Handler, workers int) (handled, failed, dead int) {
	wctx, stop := context.WithCancel(ctx)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for wctx.Err() == nil {
				batch := l.q.Receive(wctx, 1, 100*time.Millisecond)
				if len(batch.Records) == 0 {
					continue
				}
				resp, err := h.HandleRanges(ctx, batch)
				l.q.Settle(batch, resp, err)
				mu.Lock()
				handled += len(batch.Records)
				if err != nil {
					failed += len(batch.Records)
				} else {
					failed += len(resp.BatchItemFailures)
				}
				mu.Unlock()
			}
		})
	}
	for l.q.Depth() > 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	return handled, failed, len(l.q.DeadLetters())
}

func (r *exportResult) Human(w io.Writer) {
	fmt.Fprintf(w, "export run %s into s3://%s\n", r.RunID, r.Bucket)
	if r.Ranges > 0 {
		fmt.Fprintf(w, "  range workers: %d messages handled, %d failed attempts, %d dead letters\n", r.Ranges, r.RangeFailures, r.DeadLetters)
	}
	for _, t := range r.Tables {
		fmt.Fprintf(w, "  %-20s %-10s %8d rows %10d bytes  %s", t.Table, t.Status, t.Rows, t.CSVBytes+t.ParquetBytes, t.Duration.Round(time.Millisecond))
		if t.To != "" {
			fmt.Fprintf(w, "  watermark %s", t.To)
		}
		fmt.Fprintln(w)
		for _, f := range t.Files {
			fmt.Fprintf(w, "      %s\n", f)
		}
		for _, warn := range t.Warnings {
			fmt.Fprintf(w, "      warning: %s\n", warn)
		}
		if t.Error != "" {
			fmt.Fprintf(w, "      error: %s\n", t.Error)
		}
	}
}
