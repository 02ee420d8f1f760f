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
// engine-wide (see Server). The SQL the pipeline relies on (upserts with
// ON DUPLICATE KEY UPDATE, DATETIME(3), utf8mb4, GET_LOCK, transactions,
// information_schema keys, row-value comparisons) is covered by this
// package's tests, which run the same probes against MariaDB.
package localmysql
