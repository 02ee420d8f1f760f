// Package warehousedb is the warehouse in MySQL: it creates the tables of
// package warehouse (Migrate: embedded, versioned migrations), writes them
// (UpsertSQL, the load log) and reads them back for comparisons (Dump,
// Checksum). Its SQL runs on MySQL 8, MariaDB and the local engine.
package warehousedb
