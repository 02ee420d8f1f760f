package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
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
				h := exportfn.New(cfg, st.S3, st.DB, log)
				res, err := h.Handle(ctx, exportfn.Event{DetailType: "Scheduled Event"})
				return &exportResult{Bucket: st.Bucket, Result: res}, err
			}
		},
	}
}

// exportResult is what `pipeline export` did.
type exportResult struct {
	Bucket string `json:"bucket"`
	export.Result
}

func (r *exportResult) Human(w io.Writer) {
	fmt.Fprintf(w, "export run %s into s3://%s\n", r.RunID, r.Bucket)
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
