// Package transformfn is the Transform Lambda function: each S3 ObjectCreated
// record under raw/ becomes warehouse-table CSVs under processed/.
//
// Per record: the object (its current version) is streamed from the data
// bucket through transform.Transform into one object per table, each written
// all or nothing (bucket.Writer), with metadata naming the source
// (source-key, fetched-at, source-etag, source-version-id). Rejected records
// go to rejected/<...>.jsonl (a stale one from an earlier run is deleted
// when none are rejected). An unreadable object is quarantined
// (bucket.Quarantine: a copy and its report) and the record succeeds:
// retrying cannot help. An object gone since its notification is skipped.
// Any other failure (a missing bucket, access denied, S3 unavailable, a
// broken stream) fails the record; Handle processes every record and then
// returns the failures,
// so Lambda retries the event and finally sends it to the on-failure
// destination. Every output key derives from the raw key, so a retry
// overwrites the same objects with the same bytes.
package transformfn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
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

// Handler handles S3 events.
type Handler struct {
	cfg      Config
	bucket   *bucket.Bucket
	log      *slog.Logger
	partSize int

	// Now is the clock of error reports.
	Now func() time.Time
	// Observe, when set, is called with the outcome of every record (the
	// local CLI reports them).
	Observe func(Outcome)
}

// New returns a Handler; s3c is usually an *s3.Client.
func New(cfg Config, s3c bucket.API, log *slog.Logger) *Handler {
	return &Handler{cfg: cfg, bucket: bucket.New(s3c, cfg.Bucket), log: log, partSize: bucket.DefaultPartSize, Now: time.Now}
}

// Status says what happened to one record.
type Status string

// Statuses of an Outcome.
const (
	Transformed Status = "transformed" // processed/ (and rejected/) written
	Quarantined Status = "quarantined" // unreadable: quarantined with a report
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
	// aws-lambda-go decodes the key as it reads the event: an event whose
	// key does not decode never reaches the handler.
	key := rec.S3.Object.URLDecodedKey
	out := Outcome{Key: key}
	switch {
	case !strings.HasPrefix(rec.EventName, "ObjectCreated:"):
		out.Status, out.Reason = Skipped, fmt.Sprintf("event %q is not ObjectCreated", rec.EventName)
	case rec.S3.Bucket.Name != h.cfg.Bucket:
		out.Status, out.Reason = Skipped, fmt.Sprintf("event for bucket %q, the function's bucket is %q", rec.S3.Bucket.Name, h.cfg.Bucket)
	case !strings.HasPrefix(key, bucket.RawPrefix):
		out.Status, out.Reason = Skipped, "key is not under "+bucket.RawPrefix
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
	body, info, err := h.bucket.Get(ctx, key, bucket.Version{})
	switch {
	case errors.Is(err, bucket.ErrGone):
		out.Status, out.Reason = Skipped, "the object no longer exists"
		return
	case err != nil:
		fail(err)
		return
	}
	defer body.Close()
	src := source{Info: info, fetchedAt: fetchedAt(info)}
	sink := &s3Sink{ctx: ctx, h: h, rawKey: key, meta: src.metadata()}
	rep, err := transform.Transform(ctx, key, src.fetchedAt, body, sink)
	if err == nil && info.Size >= 0 && rep.Bytes != info.Size {
		err = fmt.Errorf("reading %s: got %d bytes of %d", h.bucket.URL(key), rep.Bytes, info.Size)
	}
	if err != nil {
		sink.abort()
		var inv *transform.InvalidObjectError
		if errors.As(err, &inv) {
			if qerr := h.quarantine(ctx, src, inv); qerr != nil {
				fail(qerr)
				return
			}
			out.Status, out.Reason = Quarantined, inv.Reason
			out.Outputs = []string{bucket.QuarantineKey(key), bucket.ReportKey(key)}
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
		if err := h.bucket.Delete(ctx, bucket.RejectedKey(key)); err != nil {
			h.log.WarnContext(ctx, "deleting a stale rejected file", "key", bucket.RejectedKey(key), "error", err)
		}
	}
	out.Status, out.Report, out.Outputs = Transformed, &rep, sink.keys
}

// source is the raw object being transformed (the version that was read).
type source struct {
	bucket.Info
	fetchedAt time.Time
}

// fetchedAt is the raw object's fetch time: its fetched-at metadata
// (written by Extract), else its LastModified.
func fetchedAt(info bucket.Info) time.Time {
	if s := info.Meta(bucket.MetaFetchedAt); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC()
		}
	}
	return info.LastModified.UTC()
}

// metadata is the user metadata of every processed and rejected object.
// S3 metadata is US-ASCII: the key is percent-encoded (url.PathUnescape
// reverses it; plain keys are unchanged).
func (s source) metadata() map[string]string {
	m := map[string]string{
		bucket.MetaSourceKey: escapeMeta(s.Key),
		bucket.MetaFetchedAt: warehouse.FormatTime(s.fetchedAt), // as in the rows' fetched_at
	}
	if s.ETag != "" {
		m[bucket.MetaSourceTag] = escapeMeta(s.ETag)
	}
	if s.VersionID != "" && s.VersionID != "null" {
		m[bucket.MetaSourceVer] = escapeMeta(s.VersionID)
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

// quarantine copies the unreadable object (the version that was read) to
// quarantine/ and writes its report beside it.
func (h *Handler) quarantine(ctx context.Context, src source, inv *transform.InvalidObjectError) error {
	return h.bucket.Quarantine(ctx, bucket.Report{
		Stage: "transform", Key: src.Key, Size: src.Size, ETag: src.ETag, VersionID: src.VersionID,
		Reason: inv.Reason, Offset: inv.Offset, FetchedAt: src.fetchedAt, Time: h.Now(),
	}, src.metadata())
}

// s3Sink writes Transform's outputs as S3 objects, made visible by commit.
type s3Sink struct {
	ctx    context.Context
	h      *Handler
	rawKey string
	meta   map[string]string
	outs   []*bucket.Writer
	keys   []string
}

func (s *s3Sink) Create(name string) (io.Writer, error) {
	key, ctype := bucket.ProcessedKey(name, s.rawKey), "text/csv; charset=utf-8"
	if name == transform.Rejected {
		key, ctype = bucket.RejectedKey(s.rawKey), "application/x-ndjson; charset=utf-8"
	}
	w := s.h.bucket.NewWriter(s.ctx, key, bucket.WriteOptions{ContentType: ctype, Metadata: s.meta, PartSize: s.h.partSize})
	s.outs = append(s.outs, w)
	s.keys = append(s.keys, key)
	return w, nil
}

// commit makes every output visible, in the order created. A failure stops
// there and discards the rest; outputs already committed hold complete
// files, which the retry rewrites identically.
func (s *s3Sink) commit() error {
	for i, w := range s.outs {
		if _, err := w.Commit(s.ctx); err != nil {
			for _, rest := range s.outs[i+1:] {
				_ = rest.Abort(s.ctx)
			}
			return err
		}
	}
	return nil
}

// abort discards every output not committed.
func (s *s3Sink) abort() {
	for _, w := range s.outs {
		if err := w.Abort(s.ctx); err != nil {
			s.h.log.WarnContext(s.ctx, "aborting an output", "key", w.Key(), "error", err)
		}
	}
}
