// Package reliability holds the suite that proves the pipeline loses nothing
// under faults, duplicate and concurrent delivery, deadlines and hostile
// input, run against the real servers (MariaDB, MinIO, the AWS CLI).
//
// Every case is a test named TestReliability…; each registers itself with
// [Case] and the suite prints one table at the end: the case, what was done,
// what was checked, and the result. `make reliability` runs every case with
// RELIABILITY_FULL=1 (the long ones included) and prints the table; `make
// test` runs the brief cases as part of the normal test run.
package reliability
