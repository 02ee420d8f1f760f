// Package transformfn is the Transform Lambda function: each S3 ObjectCreated
// record under raw/ becomes warehouse-table CSVs under processed/.
//
// Per record: the object (its current version) is streamed from S3 through
// transform.Transform into one object per table, written all-or-nothing
// (objectWriter), with metadata naming the source (source-key, fetched-at,
// source-etag, source-version-id). Rejected records go to
// rejected/<...>.jsonl (a stale one from an earlier run is deleted when
// none are rejected). An unreadable object is copied to quarantine/ with a
// <...>.error.json report beside it and the record succeeds: retrying
// cannot help. Any other failure (S3 unavailable, a broken stream) fails
// the record; Handle processes every record and then returns the failures,
// so Lambda retries the event and finally sends it to the on-failure
// destination. Every output key derives from the raw key, so a retry
// overwrites the same objects with the same bytes.
package transformfn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/awsclient"
	"github.com/dataeng/rickmorty-pipeline/src/internal/envconfig"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transform"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// Config is the function's configuration.
type Config struct {
	Bucket    string
	PathStyle bool
}

// ConfigFromEnv reads the configuration and reports every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	env := envconfig.New(getenv)
	c := Config{Bucket: env.Required("BUCKET"), PathStyle: env.Bool("S3_FORCE_PATH_STYLE", false)}
	return c, env.Err()
}

// s3API is what the handler uses of the S3 client.
type s3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// Handler handles S3 events.
type Handler struct {
	cfg      Config
	s3       s3API
	log      *slog.Logger
	partSize int

	// Now is the clock of error reports.
	Now func() time.Time
	// Observe, when set, is called with the outcome of every record (the
	// local CLI reports them).
	Observe func(Outcome)
}

// New returns a Handler; s3c is usually an *s3.Client.
func New(cfg Config, s3c s3API, log *slog.Logger) *Handler {
	return &Handler{cfg: cfg, s3: s3c, log: log, partSize: defaultPartSize, Now: time.Now}
}

// Status says what happened to one record.
type Status string

// Statuses of an Outcome.
const (
	Transformed Status = "transformed" // processed/ (and rejected/) written
	Quarantined Status = "quarantined" // unreadable: copied to quarantine/ with a report
	Skipped     Status = "skipped"     // not for this function, or the object is gone
	Failed      Status = "failed"      // transient: the invocation fails and is retried
)

// Outcome is what happened to one record of an event.
type Outcome struct {
	Key     string            `json:"key"`
	Status  Status            `json:"status"`
	Reason  string            `json:"reason,omitempty"` // why skipped, quarantined or failed
	Report  *transform.Report `json:"report,omitempty"`
	Outputs []string          `json:"outputs,omitempty"` // keys written
	err     error
}

// Handle transforms every record of the event. It returns an error when a
// record failed transiently, after trying all of them.
func (h *Handler) Handle(ctx context.Context, ev events.S3Event) error {
	var errs []error
	for _, rec := range ev.Records {
		start := time.Now()
		out := h.record(ctx, rec)
		h.logOutcome(ctx, out, time.Since(start))
		if h.Observe != nil {
			h.Observe(out)
		}
		if out.err != nil {
			errs = append(errs, out.err)
		}
	}
	return errors.Join(errs...)
}

func (h *Handler) logOutcome(ctx context.Context, out Outcome, took time.Duration) {
	attrs := []any{"key", out.Key, "status", out.Status, "ms", took.Milliseconds()}
	switch out.Status {
	case Transformed:
		r := out.Report
		h.log.InfoContext(ctx, "transformed", append(attrs, "resource", r.Resource, "shape", r.Shape,
			"records", r.Records, "rows", r.Rows, "rejected", r.Rejected, "bytes", r.Bytes)...)
	case Quarantined:
		h.log.WarnContext(ctx, "quarantined an unreadable object", append(attrs, "reason", out.Reason)...)
	case Skipped:
		h.log.InfoContext(ctx, "skipped", append(attrs, "reason", out.Reason)...)
	case Failed:
		h.log.ErrorContext(ctx, "transform failed", append(attrs, "error", out.Reason)...)
	}
}

func (h *Handler) record(ctx context.Context, rec events.S3EventRecord) Outcome {
	key := rec.S3.Object.URLDecodedKey
	if key == "" && rec.S3.Object.Key != "" {
		k, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			return Outcome{Key: rec.S3.Object.Key, Status: Skipped, Reason: "key is not URL-encoded: " + err.Error()}
		}
		key = k
	}
	out := Outcome{Key: key}
	switch {
	case !strings.HasPrefix(rec.EventName, "ObjectCreated:"):
		out.Status, out.Reason = Skipped, fmt.Sprintf("event %q is not ObjectCreated", rec.EventName)
	case rec.S3.Bucket.Name != h.cfg.Bucket:
		out.Status, out.Reason = Skipped, fmt.Sprintf("event for bucket %q, the function's bucket is %q", rec.S3.Bucket.Name, h.cfg.Bucket)
	case !strings.HasPrefix(key, transform.RawPrefix):
		out.Status, out.Reason = Skipped, "key is not under "+transform.RawPrefix
	case strings.HasSuffix(key, "/"):
		out.Status, out.Reason = Skipped, "key is a folder marker"
	default:
		h.object(ctx, key, &out)
	}
	return out
}

// object transforms the current version of the object at key.
func (h *Handler) object(ctx context.Context, key string, out *Outcome) {
	fail := func(err error) {
		out.Status, out.Reason, out.err = Failed, err.Error(), err
	}
	get, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			out.Status, out.Reason = Skipped, "the object no longer exists"
			return
		}
		fail(fmt.Errorf("getting s3://%s/%s: %w", h.cfg.Bucket, key, err))
		return
	}
	defer get.Body.Close()
	src := source{
		key:       key,
		etag:      aws.ToString(get.ETag),
		versionID: aws.ToString(get.VersionId),
		size:      aws.ToInt64(get.ContentLength),
		fetchedAt: fetchedAt(get),
	}
	sink := &s3Sink{ctx: ctx, h: h, rawKey: key, meta: src.metadata()}
	rep, err := transform.Transform(ctx, key, src.fetchedAt, get.Body, sink)
	if err == nil && get.ContentLength != nil && rep.Bytes != src.size {
		err = fmt.Errorf("reading s3://%s/%s: got %d bytes of %d", h.cfg.Bucket, key, rep.Bytes, src.size)
	}
	if err != nil {
		if aerr := sink.abort(); aerr != nil {
			h.log.WarnContext(ctx, "aborting outputs", "key", key, "error", aerr)
		}
		var inv *transform.InvalidObjectError
		if errors.As(err, &inv) {
			if qerr := h.quarantine(ctx, src, inv); qerr != nil {
				fail(qerr)
				return
			}
			out.Status, out.Reason = Quarantined, inv.Reason
			out.Outputs = []string{transform.QuarantineKey(key), transform.ErrorReportKey(key)}
			return
		}
		fail(err)
		return
	}
	if err := sink.commit(); err != nil {
		fail(err)
		return
	}
	if rep.Rejected == 0 {
		// A rejected file from an earlier version of this object is stale.
		if _, err := h.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(h.cfg.Bucket), Key: aws.String(transform.RejectedKey(key))}); err != nil {
			h.log.WarnContext(ctx, "deleting a stale rejected file", "key", transform.RejectedKey(key), "error", err)
		}
	}
	out.Status, out.Report, out.Outputs = Transformed, &rep, sink.keys
}

// source describes the raw object being transformed.
type source struct {
	key, etag, versionID string
	size                 int64
	fetchedAt            time.Time
}

// fetchedAt is the raw object's fetch time: its fetched-at metadata
// (RFC 3339, written by Extract), else its LastModified.
func fetchedAt(get *s3.GetObjectOutput) time.Time {
	if s, ok := get.Metadata["fetched-at"]; ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC()
		}
	}
	return aws.ToTime(get.LastModified).UTC()
}

// metadata is the user metadata of every processed and rejected object.
// S3 metadata is US-ASCII: the key is percent-encoded (url.PathUnescape
// reverses it; plain keys are unchanged).
func (s source) metadata() map[string]string {
	m := map[string]string{
		"source-key": escapeMeta(s.key),
		"fetched-at": warehouse.FormatTime(s.fetchedAt), // as in the rows' fetched_at
	}
	if s.etag != "" {
		m["source-etag"] = escapeMeta(s.etag)
	}
	if s.versionID != "" && s.versionID != "null" {
		m["source-version-id"] = escapeMeta(s.versionID)
	}
	return m
}

func escapeMeta(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7F || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// errorReport is quarantine/<...>.error.json.
type errorReport struct {
	Bucket    string    `json:"bucket"`
	Key       string    `json:"key"`
	Reason    string    `json:"reason"`
	Offset    int64     `json:"offset"` // byte where the problem was seen; -1: none
	Size      int64     `json:"size"`
	ETag      string    `json:"etag"`
	VersionID string    `json:"version_id,omitempty"`
	FetchedAt time.Time `json:"fetched_at"`
	Time      time.Time `json:"time"`
}

// quarantine copies the unreadable object (the version that was read) to
// quarantine/ and writes its error report beside it.
func (h *Handler) quarantine(ctx context.Context, src source, inv *transform.InvalidObjectError) error {
	qkey := transform.QuarantineKey(src.key)
	in := &s3.CopyObjectInput{
		Bucket: aws.String(h.cfg.Bucket), Key: aws.String(qkey),
		CopySource: aws.String(awsclient.CopySource(h.cfg.Bucket, src.key, src.versionID)),
	}
	if src.versionID == "" || src.versionID == "null" {
		in.CopySourceIfMatch = aws.String(src.etag)
	}
	if _, err := h.s3.CopyObject(ctx, in); err != nil {
		return fmt.Errorf("copying s3://%s/%s to %s: %w", h.cfg.Bucket, src.key, qkey, err)
	}
	rep := errorReport{
		Bucket: h.cfg.Bucket, Key: src.key, Reason: inv.Reason, Offset: inv.Offset, Size: src.size,
		ETag: src.etag, VersionID: src.versionID, FetchedAt: src.fetchedAt, Time: h.Now().UTC(),
	}
	body, _ := json.MarshalIndent(rep, "", "  ")
	rkey := transform.ErrorReportKey(src.key)
	if _, err := h.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(h.cfg.Bucket), Key: aws.String(rkey), ContentType: aws.String("application/json"),
		Body: strings.NewReader(string(body) + "\n"), Metadata: src.metadata(),
	}); err != nil {
		return fmt.Errorf("putting s3://%s/%s: %w", h.cfg.Bucket, rkey, err)
	}
	return nil
}

// s3Sink writes Transform's outputs as S3 objects, made visible by commit.
type s3Sink struct {
	ctx    context.Context
	h      *Handler
	rawKey string
	meta   map[string]string
	outs   []*objectWriter
	keys   []string
}

func (s *s3Sink) Create(name string) (io.Writer, error) {
	key, ctype := transform.ProcessedKey(name, s.rawKey), "text/csv; charset=utf-8"
	if name == transform.Rejected {
		key, ctype = transform.RejectedKey(s.rawKey), "application/x-ndjson; charset=utf-8"
	}
	w := &objectWriter{
		ctx: s.ctx, s3: s.h.s3, bucket: s.h.cfg.Bucket, key: key, contentType: ctype,
		meta: s.meta, partSize: s.h.partSize,
	}
	s.outs = append(s.outs, w)
	s.keys = append(s.keys, key)
	return w, nil
}

// commit makes every output visible, in the order created. A failure stops
// there and discards the rest; outputs already committed hold complete
// files, which the retry rewrites identically.
func (s *s3Sink) commit() error {
	for i, w := range s.outs {
		if err := w.Close(); err != nil {
			for _, rest := range s.outs[i+1:] {
				_ = rest.Abort()
			}
			return err
		}
	}
	return nil
}

func (s *s3Sink) abort() error {
	var errs []error
	for _, w := range s.outs {
		errs = append(errs, w.Abort())
	}
	return errors.Join(errs...)
}
