package export

import (
	"errors"
	"fmt"
	"time"
)

// Status is what happened to one table in a run.
type Status string

// Table statuses.
const (
	// StatusExported: every due row was exported and the watermark moved.
	StatusExported Status = "exported"
	// StatusPartial: the deadline came first; the rows exported so far are
	// stored and the watermark moved to the last of them; the next run goes on.
	StatusPartial Status = "partial"
	// StatusUpToDate: no row was due; nothing was written.
	StatusUpToDate Status = "up_to_date"
	// StatusFannedOut: more rows were due than EXPORT_RANGE_ROWS: they were
	// split into ranges for the range workers (or an unfinished fanned-out
	// run was resumed); the watermark moves when the last range is stored.
	StatusFannedOut Status = "fanned_out"
	// StatusDeferred: the deadline came before the table was started.
	StatusDeferred Status = "deferred"
	// StatusFailed: an error; the watermark did not move (an error after the
	// data files were stored leaves them behind: their rows come again next run).
	StatusFailed Status = "failed"
	// StatusConflict: another run moved the watermark while this one ran;
	// this run's files are stored, its watermark was not written, so its rows
	// come again next run (exported twice, never lost).
	StatusConflict Status = "conflict"
)

// Result is what one export run did.
type Result struct {
	RunID  string        `json:"run_id"`
	Tables []TableResult `json:"tables"`
}

// TableResult is what a run did to one table.
type TableResult struct {
	Table        string        `json:"table"`
	Status       Status        `json:"status"`
	Rows         int64         `json:"rows"`
	CSVBytes     int64         `json:"csv_bytes"`
	ParquetBytes int64         `json:"parquet_bytes"`
	Files        []string      `json:"files,omitempty"`
	From         string        `json:"watermark_from,omitempty"` // position before the run; empty: none (full export)
	To           string        `json:"watermark_to,omitempty"`   // position after the run
	UpperBound   string        `json:"upper_bound,omitempty"`    // database clock minus the lag
	Duration     time.Duration `json:"duration_ns"`
	Stages       Stages        `json:"stages"`
	Warnings     []string      `json:"warnings,omitempty"`
	Error        string        `json:"error,omitempty"`

	err error
}

// Stages is where a table's export spent its time. The stages overlap (the
// reader runs ahead of both encoders, which run at once, while parts
// upload), so they add up to more than the table's duration.
type Stages struct {
	Read          time.Duration `json:"read_ns"`           // MySQL: the queries, and scanning rows into Parquet values
	EncodeCSV     time.Duration `json:"encode_csv_ns"`     // rendering CSV records
	EncodeParquet time.Duration `json:"encode_parquet_ns"` // Parquet pages: columns, encodings, compression
	Upload        time.Duration `json:"upload_ns"`         // waiting for part uploads, and publishing the objects
	Validate      time.Duration `json:"validate_ns"`       // the count in MySQL, and the stored sizes
}

// Err is the table's error, nil unless it failed or conflicted.
func (t TableResult) Err() error { return t.err }

// Err joins the errors of every failed or conflicting table, or returns nil.
// A run with any such table must be reported as failed (so the schedule's
// retry and dead-letter queue see it); the other tables' exports stand.
func (r Result) Err() error {
	var errs []error
	for _, t := range r.Tables {
		if t.err != nil {
			errs = append(errs, t.err)
		}
	}
	return errors.Join(errs...)
}

// Failed lists the tables that failed or conflicted.
func (r Result) Failed() []string {
	var names []string
	for _, t := range r.Tables {
		if t.err != nil {
			names = append(names, t.Table)
		}
	}
	return names
}

// TableError is a table's failure: the table and why.
type TableError struct {
	Table string
	Err   error
}

func (e *TableError) Error() string { return fmt.Sprintf("exporting table %s: %v", e.Table, e.Err) }
func (e *TableError) Unwrap() error { return e.Err }

// FailedResult is the result of a run that could not start (no database
// connection, for example): every table failed with err.
func FailedResult(runID string, specs []TableSpec, err error) Result {
	res := Result{RunID: runID}
	for _, s := range specs {
		res.Tables = append(res.Tables, TableResult{Table: s.Name, Status: StatusFailed, Error: err.Error(), err: &TableError{s.Name, err}})
	}
	return res
}
