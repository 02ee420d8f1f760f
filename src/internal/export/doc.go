// Package export copies the rows of MySQL tables that were created or
// changed since the last run to S3, as one CSV and one Parquet file per
// table and run, missing no row.
//
// # Watermark scheme
//
// Every row has a position: (ts, pk), where ts = COALESCE(modifiedDate,
// createdDate) (the watermark columns, configurable per table) and pk is the
// primary key. Positions are totally ordered (ts first, then the key
// columns), and unique because the key is. A table's watermark is the
// position of the last row exported; a run exports, in position order, the
// rows with
//
//	(ts, pk) > (wm_ts, wm_pk)  AND  ts <= upper_bound,   upper_bound = NOW(6) on the database − EXPORT_LAG
//
// reading them in keyset chunks (ORDER BY ts, pk LIMIT EXPORT_CHUNK_ROWS,
// each chunk starting after the last row of the previous one; one ordered
// query when no index serves the order, see Cost), inside one read-only
// REPEATABLE READ transaction so that every chunk sees the same snapshot. The new watermark is the position of the last row written.
//
// The first export of a table (no watermark yet: a new table, or its
// watermark deleted to export it again) is a snapshot: the rows with
// ts <= upper_bound in primary-key order, in keyset chunks of the primary
// key (a clustered range scan, as cheap as a dump, for any table). If the
// deadline interrupts it, the watermark records phase=snapshot, the bound
// and the last key, and the next run goes on under the same bound. When it
// is complete the watermark becomes the greatest position among the rows up
// to the bound, and the table is exported incrementally from then on. Rows
// changed meanwhile have a ts above the bound and come with the next runs.
//
// Why ties are safe: the comparison is on the whole position, not on ts
// alone, so many rows sharing one timestamp are split across chunks and
// runs without being skipped (a plain "ts > wm_ts" would drop the rest of a
// tie after a chunk boundary) or repeated (a plain "ts >= wm_ts" would).
//
// Why late commits are safe, and the one assumption: a row becomes visible
// when its transaction commits, but its ts is usually set when the statement
// runs, earlier. A transaction that started before a run and commits after
// it would otherwise slip in behind the watermark and be lost forever. The
// upper bound prevents that: a run only takes rows whose ts is at least
// EXPORT_LAG older than the database's own clock (NOW(6), so the Lambda's
// clock does not matter), and never moves the watermark past that bound. The
// assumption is therefore: every write transaction commits less than
// EXPORT_LAG after the ts it writes (the lag must exceed the longest write
// transaction, plus any skew between the clocks that fill the watermark
// columns and the database clock; the columns must hold UTC, as NOW() does
// in the pipeline's sessions). A row committed later than that with a ts
// older than the upper bound is the risk the scheme accepts; raise
// EXPORT_LAG (default 30s) when long write transactions exist. Rows with
// ts in the future are exported once the clock passes them. Rows whose
// watermark columns are all NULL have no position and are never exported,
// so the last watermark column should be NOT NULL (createdDate is).
// Hard deletes are not exported (there is no row left to carry them): use
// soft deletes when the consumers must see them.
//
// Delivery contract: at least once, replayable by primary key. The
// watermark moves only after both files are stored and validated (rows read
// from MySQL = CSV records = Parquet rows = COUNT(*) of the exported range in
// the same snapshot; non-nullable columns hold no NULL; stored object sizes
// equal bytes written). A run that dies in between leaves files whose rows
// the next run exports again. The watermark object is written with a
// conditional PUT (If-Match: the ETag read at the start, or If-None-Match: *
// when there was none), so two overlapping runs cannot move it backwards or
// past rows the other has not written: the loser reports a conflict and
// its rows come again. Consumers therefore upsert by primary key, applying
// files in name order (or keeping, per key, the row with the greatest
// COALESCE(modifiedDate, createdDate)); applying a file twice is harmless.
//
// Cost: with several watermark columns the ORDER BY is on an expression,
// which no index serves: a keyset query would scan and sort the whole table
// for every chunk. So when no index serves the order, the exporter reads all
// due rows in one ordered query (streamed: memory stays flat; at the
// deadline it stops reading and cancels the rest with KILL QUERY, keeping
// the snapshot for the count check), and reports a warning. It uses
// keyset chunks of EXPORT_CHUNK_ROWS rows when an index serves the order:
// an index on (column) or (column, primary key) for a single watermark
// column, or, for several, a generated column defined as exactly their
// COALESCE, which the exporter recognises and orders by, e.g.
//
//	ALTER TABLE orders ADD COLUMN export_position DATETIME(6)
//	  AS (COALESCE(modifiedDate, createdDate)) STORED INVISIBLE,
//	  ADD INDEX (export_position);
//
// (InnoDB appends the primary key to the index; INVISIBLE keeps it out of
// SELECT * and out of the exports; STORED, because MariaDB 10.11 returns
// corrupt rows for some ranges of an indexed virtual column.) The
// warehouse's own migration 0004 adds exactly this to its four tables.
// With it, an incremental run reads only the due rows instead of scanning
// the table. Correctness does not depend on it: both paths use the same
// predicate and order. go-mysql-server (the local stack's engine) cannot
// index it (its virtual columns break queries; a stored one is neither
// invisible nor described in information_schema): there the exporter reads
// in one ordered query and does not warn.
//
// # Files
//
// Each table's objects live under <prefix><table>/:
//
//	csv/<table>_data_<YYYYMMDD_HHMMSS>.csv          header + rows, tablecsv encoding (\N = NULL), UTC datetimes
//	parquet/<table>_data_<YYYYMMDD_HHMMSS>.parquet  the same rows, typed (see newColumn), zstd, bounded row groups
//	csv/last_extract.txt                            the watermark (see Watermark)
//
// The CSV records are rendered from the Parquet values of the same rows,
// so the two files cannot disagree. A run with no due row writes nothing. Files are created with
// If-None-Match: * and never replace an object: when the name is taken the
// run uses <stem>_1, <stem>_2, ... Both files are streamed as multipart
// uploads (memory stays at a few parts and one Parquet row group whatever
// the table size) and completed only after validation; on any failure the
// uploads are aborted.
//
// Both files are written at once: the reader runs the keyset queries into
// a small pool of batches (reading the next chunk while the current one is
// encoded), one goroutine renders the CSV records and another the Parquet
// pages from the same batches, and parts upload in the background as they
// fill. TableResult.Stages says how long each stage was busy.
//
// # Fan-out
//
// With Exporter.RangeRows and a RangeSender, a table with more due rows
// than RangeRows is not exported by the run itself: the run splits the due
// rows, in key order, into ranges of at most RangeRows rows, records them
// in a Manifest (bucket.ExportManifestKey(table, stamp); conditional writes
// only) with the run's upper bound and the target watermark (the greatest
// position up to the bound), and sends one RangeMessage per range. Range
// workers (ExportRange) export one range each, in their own snapshot, into
// <table>_data_<stamp>_part-NNNN.csv and .parquet, replacing an earlier
// attempt's parts, and check the count against MySQL's for the range under
// the same bound; the worker that records the last range moves the
// watermark, once. Why separate snapshots are enough: a row whose timestamp
// is at or below the bound at the split can only change to a timestamp
// above it (modifiedDate is the writer's clock, past the bound by the lag),
// so every range sees the same rows up to the bound, and a row changed
// since comes with the next run. A run that finds an unfinished manifest
// resumes it (finishes it, or sends its pending ranges again) instead of
// starting another; the watermark's ETag recorded at the split keeps an
// overlapping run from moving it twice.
//
// # Deadline
//
// When the context's deadline is nearer than the margin, the run stops
// reading at the next batch, closes both files, validates them and saves the
// position of the last row written (status partial); the next run goes on
// from there. Tables not started yet are deferred.
package export
