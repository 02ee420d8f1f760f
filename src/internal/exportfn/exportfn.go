// Package exportfn is the Export Lambda function (the RDS exporter): on its
// schedule it copies new and changed MySQL rows to S3 as CSV and Parquet
// (see package export for the watermark scheme).
//
// A run's result lists every table's status. When any table failed (bad
// configuration, database or S3 error, failed validation, or a conflict
// with an overlapping run), Handle returns an error as well, after the
// other tables were exported: the schedule's retry and dead-letter queue
// see the failure, and a retry only redoes what is still due.
package exportfn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/envconfig"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
)

// DefaultTables are the warehouse tables (warehouse.Tables(), kept here as
// names so the function does not depend on the warehouse package).
var DefaultTables = []string{"characters", "locations", "episodes", "character_episodes"}

// Config is the function's configuration.
type Config struct {
	Bucket           string
	PathStyle        bool
	Prefix           string
	Tables           []string
	WatermarkColumns map[string][]string // per table, "*" for all; see export.ParseWatermarkColumns
	Lag              time.Duration
	ChunkRows        int
	RowGroupRows     int
	Compression      string
	DeadlineMargin   time.Duration
	// RangeRows > 0 fans out a table with more due rows than this to the
	// range queue at RangeQueueURL (see export.Exporter.RangeRows).
	RangeRows     int
	RangeQueueURL string
	DB            mysqldb.Config
}

// ConfigFromEnv reads the configuration and reports every problem at once:
// BUCKET (or EXPORT_BUCKET), EXPORT_PREFIX (exports/), EXPORT_TABLES,
// EXPORT_LAG (30s), EXPORT_WATERMARK_COLUMNS (table=col1:col2;...),
// EXPORT_CHUNK_ROWS, EXPORT_ROW_GROUP_ROWS, EXPORT_PARQUET_COMPRESSION
// (zstd|snappy|gzip|none), EXPORT_DEADLINE_MARGIN (30s), EXPORT_RANGE_ROWS
// (0: no fan-out) and EXPORT_RANGE_QUEUE_URL, S3_FORCE_PATH_STYLE
// and the database variables of mysqldb.ConfigFromEnv.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	env := envconfig.New(getenv)
	c := Config{
		Bucket:         env.String("EXPORT_BUCKET", ""),
		PathStyle:      env.Bool("S3_FORCE_PATH_STYLE", false),
		Prefix:         env.String("EXPORT_PREFIX", bucket.DefaultExportPrefix),
		Tables:         env.List("EXPORT_TABLES", DefaultTables),
		Lag:            env.Duration("EXPORT_LAG", export.DefaultLag),
		ChunkRows:      env.Int("EXPORT_CHUNK_ROWS", export.DefaultChunkRows, 1, 10_000_000),
		RowGroupRows:   env.Int("EXPORT_ROW_GROUP_ROWS", export.DefaultRowGroupRows, 1_000, 10_000_000),
		Compression:    env.OneOf("EXPORT_PARQUET_COMPRESSION", export.DefaultCompression, export.Compressions...),
		DeadlineMargin: env.Duration("EXPORT_DEADLINE_MARGIN", export.DefaultDeadlineMargin),
		RangeRows:      env.Int("EXPORT_RANGE_ROWS", 0, 0, 1_000_000_000),
		RangeQueueURL:  env.String("EXPORT_RANGE_QUEUE_URL", ""),
		DB:             mysqldb.ConfigFromEnv(env),
	}
	if c.RangeRows > 0 && c.RangeQueueURL == "" {
		env.Fail("EXPORT_RANGE_ROWS=%d needs EXPORT_RANGE_QUEUE_URL, the range queue", c.RangeRows)
	}
	if c.Bucket == "" {
		c.Bucket = env.Required("BUCKET")
	}
	if err := bucket.ValidateExportPrefix(c.Prefix); err != nil {
		env.Fail("EXPORT_PREFIX: %v", err)
	}
	if len(c.Tables) == 0 {
		env.Fail("EXPORT_TABLES lists no table")
	}
	wm, err := export.ParseWatermarkColumns(env.String("EXPORT_WATERMARK_COLUMNS", ""))
	if err != nil {
		env.Fail("%v", err)
	}
	c.WatermarkColumns = wm
	return c, env.Err()
}

// Event is the EventBridge scheduled event, or a plain input naming the
// tables to export instead of the configured ones: {"tables":["orders"]}
// (or {"detail":{"tables":[...]}}).
type Event struct {
	DetailType string   `json:"detail-type"`
	Tables     []string `json:"tables"`
	Detail     struct {
		Tables []string `json:"tables"`
	} `json:"detail"`
}

// Handler handles schedule events.
type Handler struct {
	cfg    Config
	bucket *bucket.Bucket
	db     *mysqldb.Connector
	log    *slog.Logger
	// Now is the clock of file names and deadline checks.
	Now func() time.Time
	// Ranges receives the ranges of a fanned-out run (an SQSSender on AWS,
	// the local queue in `pipeline`); nil: no fan-out.
	Ranges export.RangeSender
}

// New returns a Handler exporting to cfg.Bucket through api (an *s3.Client).
func New(cfg Config, api bucket.API, db *mysqldb.Connector, log *slog.Logger) *Handler {
	return &Handler{cfg: cfg, bucket: bucket.New(api, cfg.Bucket), db: db, log: log, Now: time.Now}
}

// Config is the handler's configuration.
func (h *Handler) Config() Config { return h.cfg }

// Handle runs one export of every configured table (or the event's).
func (h *Handler) Handle(ctx context.Context, ev Event) (export.Result, error) {
	tables := h.cfg.Tables
	switch {
	case len(ev.Tables) > 0:
		tables = ev.Tables
	case len(ev.Detail.Tables) > 0:
		tables = ev.Detail.Tables
	}
	specs := export.Specs(tables, h.cfg.WatermarkColumns)
	runID := export.NewRunID(h.Now())
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		runID = lc.AwsRequestID
	}
	log := h.log.With("run_id", runID)

	db, err := h.db.DB(ctx)
	if err != nil {
		res := export.FailedResult(runID, specs, err)
		log.ErrorContext(ctx, "export run failed: no database", "error", err.Error(), "tables", tables)
		return res, fmt.Errorf("export run %s: %w", runID, err)
	}
	e := &export.Exporter{
		DB: db, Bucket: h.bucket, Prefix: h.cfg.Prefix,
		Lag: h.cfg.Lag, ChunkRows: h.cfg.ChunkRows, RowGroupRows: h.cfg.RowGroupRows,
		Compression: h.cfg.Compression, DeadlineMargin: h.cfg.DeadlineMargin,
		RangeRows: h.cfg.RangeRows, Ranges: h.Ranges,
		RunID: runID, Now: h.Now,
	}
	res := e.Run(ctx, specs)
	authFailed := false
	for _, t := range res.Tables {
		attrs := []any{
			"table", t.Table, "status", string(t.Status), "rows", t.Rows,
			"bytes", t.CSVBytes + t.ParquetBytes, "csv_bytes", t.CSVBytes, "parquet_bytes", t.ParquetBytes,
			"files", t.Files, "watermark_from", t.From, "watermark_to", t.To, "upper_bound", t.UpperBound,
			"duration_ms", t.Duration.Milliseconds(),
		}
		for _, w := range t.Warnings {
			log.WarnContext(ctx, "export warning", "table", t.Table, "warning", w)
		}
		if err := t.Err(); err != nil {
			authFailed = authFailed || mysqldb.IsAuthError(err)
			log.ErrorContext(ctx, "table export failed", append(attrs, "error", err.Error())...)
			continue
		}
		log.InfoContext(ctx, "table exported", attrs...)
	}
	if authFailed {
		h.db.Reset() // the secret may have been rotated: read it again next time
	}
	if err := res.Err(); err != nil {
		failed := res.Failed()
		log.ErrorContext(ctx, "export run finished with failures", "failed", failed, "tables", len(res.Tables))
		return res, fmt.Errorf("export run %s: %d of %d tables failed (%s): %w",
			runID, len(failed), len(res.Tables), strings.Join(failed, ", "), err)
	}
	log.InfoContext(ctx, "export run finished", "tables", len(res.Tables))
	return res, nil
}
