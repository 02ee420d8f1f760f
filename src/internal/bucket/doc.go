// Package bucket owns the pipeline's data bucket: its layout, its writes,
// and what its errors mean. Every stage (Extract, Transform, Load, Export,
// `pipeline reprocess`) reaches S3 through it and speaks in domain keys.
//
// Layout (every key is derived here, nowhere else):
//
//	raw/<resource>/page-NNNN.json           API pages as served (Extract; anyone may drop a file)      → Transform
//	processed/<table>/<raw stem>.csv        warehouse-table CSVs (Transform)                            → SQS → Load
//	rejected/<raw stem>.jsonl               records Transform rejected, with the reason
//	quarantine/<key>                        a copy of an object that cannot be read or loaded
//	quarantine/<key>.error.json             its Report (one type for both stages)
//	manifests/extract/<run>.json            extract run manifests
//	manifests/export/<table>/<run>.json     export run manifests (fanned-out ranges)
//	<export prefix><table>/csv/<stem>.csv   exports, and the watermark <export prefix><table>/csv/last_extract.txt
//	<export prefix><table>/parquet/<stem>.parquet
//
// Writes: Put (with Content-MD5, optionally conditional: If-Match or
// If-None-Match), Writer (streaming, all or nothing, multipart past a part
// size, at most 10,000 parts, aborted on any failure), Copy, Quarantine.
//
// Errors: every failure is an *Error naming the object, wrapping one
// meaning: ErrGone (the object or version no longer exists), ErrNoBucket,
// ErrDenied, ErrUnavailable (throttled or unreachable: retry),
// ErrPrecondition (a condition lost). A missing bucket or a denied access is
// never read as "gone".
package bucket
