package export

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/parquet-go/parquet-go"
)

// write appends a batch to both files, opening them on the first batch.
func (r *tableRun) write(ctx context.Context, b *batch) error {
	if r.csv == nil {
		if err := r.open(ctx); err != nil {
			return err
		}
	}
	r.csvBuf = r.csvBuf[:0]
	for _, row := range b.rows {
		r.csvBuf = r.csvEnc.appendCSV(r.csvBuf, row)
	}
	if _, err := r.csv.Write(r.csvBuf); err != nil {
		return fmt.Errorf("writing the CSV file: %w", err)
	}
	if _, err := r.pqw.WriteRows(b.rows); err != nil {
		return fmt.Errorf("writing the Parquet file: %w", err)
	}
	// Rows with large values: end the row group by size too, or it could
	// hold EXPORT_ROW_GROUP_ROWS rows of megabytes each in memory.
	if r.groupBytes += int64(len(b.arena)); r.groupBytes >= maxRowGroupBytes {
		if err := r.pqw.Flush(); err != nil {
			return fmt.Errorf("writing the Parquet file: %w", err)
		}
		r.groupBytes = 0
	}
	return nil
}

// open picks the run's file names and starts both files.
func (r *tableRun) open(ctx context.Context) error {
	e, name := r.e, r.t.Name
	stem, err := r.freeStem(ctx, 0)
	if err != nil {
		return err
	}
	r.csvEnc = newEncoder(r.t.Columns, 0)
	meta := map[string]string{bucket.MetaRunID: e.RunID, bucket.MetaTable: name}
	r.csv = e.Bucket.NewWriter(ctx, r.csvKey(stem), bucket.WriteOptions{
		ContentType: "text/csv; charset=utf-8; header=present", Metadata: meta, IfNoneMatch: true, PartSize: e.PartSize})
	r.pq = e.Bucket.NewWriter(ctx, r.pqKey(stem), bucket.WriteOptions{
		ContentType: "application/vnd.apache.parquet", Metadata: meta, IfNoneMatch: true, PartSize: e.PartSize})

	cw := tablecsv.NewWriter(r.csv)
	if err := cw.WriteHeader(names(r.t.Columns)); err != nil {
		return fmt.Errorf("writing the CSV header: %w", err)
	}
	if err := cw.Flush(); err != nil {
		return fmt.Errorf("writing the CSV header: %w", err)
	}
	codec, err := codec(e.Compression)
	if err != nil {
		return err
	}
	groupRows := e.RowGroupRows
	if groupRows <= 0 {
		groupRows = DefaultRowGroupRows
	}
	r.pqw = parquet.NewGenericWriter[any](r.pq, r.t.parquetSchema(),
		parquet.Compression(codec),
		parquet.MaxRowsPerRowGroup(int64(groupRows)),
		parquet.DataPageVersion(1), // the most widely readable (pyarrow's and Spark's default)
		parquet.CreatedBy("rickmorty-pipeline exporter", "1", ""),
		parquet.KeyValueMetadata("mysql.table", name),
		parquet.KeyValueMetadata("export.run_id", e.RunID),
	)
	return nil
}

func (r *tableRun) csvKey(stem string) string {
	return bucket.ExportKey(r.e.Prefix, r.t.Name, bucket.CSV, stem)
}

func (r *tableRun) pqKey(stem string) string {
	return bucket.ExportKey(r.e.Prefix, r.t.Name, bucket.Parquet, stem)
}

// freeStem returns the first file stem from attempt on, <table>_data_<stamp>
// then <table>_data_<stamp>_1, _2, ..., whose CSV and Parquet names are both free.
func (r *tableRun) freeStem(ctx context.Context, attempt int) (string, error) {
	for i := attempt; i < attempt+100; i++ {
		stem := bucket.ExportStem(r.t.Name, r.stamp, i)
		taken := false
		for _, key := range []string{r.csvKey(stem), r.pqKey(stem)} {
			ok, err := r.e.Bucket.Exists(ctx, key)
			if err != nil {
				return "", err
			}
			taken = taken || ok
		}
		if !taken {
			return stem, nil
		}
	}
	return "", fmt.Errorf("no free file name for %s after 100 attempts", r.t.Name)
}

func (r *tableRun) closeFiles() error {
	if r.csv == nil || r.closed {
		return nil
	}
	r.closed = true
	if err := r.pqw.Close(); err != nil {
		return fmt.Errorf("finishing the Parquet file: %w", err)
	}
	if err := r.csv.Close(); err != nil {
		return err
	}
	return r.pq.Close()
}

// validate checks, before the files become visible, that every count agrees.
func (r *tableRun) validate(ctx context.Context, tx *sql.Tx, last position, rows int64, countable bool) error {
	if r.pqw == nil {
		return errors.New("rows read but no file opened")
	}
	if n := r.pqw.File().NumRows(); n != rows {
		return fmt.Errorf("the Parquet file holds %d rows, %d were read from MySQL", n, rows)
	}
	r.res.Rows = rows
	r.res.CSVBytes, r.res.ParquetBytes = r.csv.Size(), r.pq.Size()
	if !countable {
		return nil
	}
	q, args, err := r.t.countSQL(r.snapshot, r.upper, r.from, &last)
	if err != nil {
		return err
	}
	var n int64
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		if r.killed {
			// KILL QUERY raced with the end of the read and hit the count.
			r.res.Warnings = append(r.res.Warnings, "the snapshot count check was interrupted after stopping at the deadline: "+err.Error())
			return nil
		}
		return fmt.Errorf("counting the exported range: %w", err)
	}
	if n != rows {
		return fmt.Errorf("the database holds %d rows between %s and %s, %d were exported", n, r.from.String(), last.String(), rows)
	}
	return nil
}

// commitFiles makes both files visible, never replacing an object. Small
// files (one part) that lose a name race move to the next free name;
// multipart ones cannot be renamed, so the race is reported.
func (r *tableRun) commitFiles(ctx context.Context) error {
	attempt := 0
	for {
		_, err := r.csv.Commit(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, bucket.ErrPrecondition) || attempt >= 10 {
			return err
		}
		attempt++
		stem, serr := r.freeStem(ctx, attempt)
		if serr != nil {
			return serr
		}
		if !r.csv.Rename(r.csvKey(stem)) || !r.pq.Rename(r.pqKey(stem)) {
			return fmt.Errorf("%w (a concurrent run took the name; this run's rows will be exported again)", err)
		}
	}
	r.res.Files = append(r.res.Files, r.csv.Key())
	if _, err := r.pq.Commit(ctx); err != nil {
		return fmt.Errorf("%w (its CSV twin %s stays; its rows will be exported again)", err, r.e.Bucket.URL(r.csv.Key()))
	}
	r.res.Files = append(r.res.Files, r.pq.Key())
	return nil
}
