// Package localmysql is the local stack's MySQL: an embedded MySQL-compatible
// engine run in process for the local CLI (src/cmd/pipeline). It is never
// imported by a Lambda binary: its SQL engine stays out of them.
//
// Start serves a MySQL-compatible engine (github.com/dolthub/go-mysql-server
// with its in-memory storage) reached with github.com/go-sql-driver/mysql
// through Server.DSN. go-mysql-server has no persistent storage of its own
// (that is Dolt); Server keeps each database in memory for the life of the
// process and saves it to <data-dir>/mysql/<database>.sql, a plain SQL dump
// replayed at the next start, on Close and Save. Writers are serialized
// engine-wide (see Server). Where the in-memory storage falls short of
// MySQL, the adapter in storage.go makes up for it, so that the pipeline
// sends the local engine the SQL it sends RDS: plain secondary indexes are
// declared but not stored (the storage re-sorted them after every
// statement), and rows of a composite key are kept apart (the storage
// confused (5, 34) with (53, 4) within a statement). LOAD DATA LOCAL stays
// off (local_infile 0: the engine's reader drops backslashes), so Load
// upserts here. The SQL the pipeline relies on (upserts with
// ON DUPLICATE KEY UPDATE, DATETIME(3), utf8mb4, GET_LOCK, transactions,
// information_schema keys, row-value comparisons) is covered by this
// package's tests, which run the same probes against MariaDB.
package localmysql
