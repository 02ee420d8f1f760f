// Package locals3 is the local stack's S3: an S3-compatible endpoint run in
// process for the local CLI (src/cmd/pipeline). It is never imported by a
// Lambda binary: its S3 emulator stays out of them.
//
// Start serves an S3-compatible HTTP endpoint (path-style addressing; the
// S3 protocol is github.com/johannesboyne/gofakes3's) whose objects are plain
// files, so a person can look at them with ls and cat and they survive
// between commands:
//
//	<data-dir>/s3/<bucket>/<key>      the object's bytes, exactly
//	<data-dir>/s3meta/<bucket>/*.json  its ETag, Content-Type and x-amz-meta-* (one sidecar per object)
//	<data-dir>/s3tmp/                  uploads in progress (removed by Close)
//
// Every write goes to a temporary file that is renamed into place, so an
// object file is never half-written, not even when the process is killed.
// Clients use any credentials (AccessKeyID/SecretAccessKey are handed out),
// region us-east-1, and checksums "when required": Server.AWSConfig,
// Server.Client and Server.Env set all of that up.
//
// Supported: PutObject (with x-amz-meta-*, Content-Type, Content-MD5),
// GetObject (with Range), HeadObject, ListObjects(V2) with prefix, delimiter
// and pagination, CopyObject with MetadataDirective COPY or REPLACE (copying
// an object onto itself requires REPLACE, as on S3), DeleteObject(s),
// multipart uploads (parts are streamed to disk; the ETag is S3's
// "<md5 of part md5s>-<parts>"; every part but the last must be 5 MiB or
// more, as on S3), aws-chunked uploads (SigV4 streaming, with or without
// trailing checksums), and conditional writes: If-None-Match: * and
// If-Match: <etag> on PutObject, CopyObject and CompleteMultipartUpload fail
// with 412 PreconditionFailed, atomically with respect to other writes of the
// key; X-Amz-Copy-Source-If-Match on CopyObject and If-Match on GetObject and
// HeadObject are checked too (412). Not supported: versioning, object tagging and ACLs (ignored), checksum
// headers in responses, and keys that a folder cannot hold ("a//b", "dir/",
// or both "a" and "a/b"): those are refused with InvalidArgument.
//
// Every new object version (PutObject, CopyObject, CompleteMultipartUpload)
// is announced to the Server.OnObjectCreated hooks before the client gets
// its response. Files copied into a bucket folder by other means are found
// and announced by a Watcher (polling, once a file's size and modification
// time have settled); they have no metadata and their ETag is the MD5 of
// their content.
package locals3
