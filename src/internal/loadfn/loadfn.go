// Package loadfn is the Load Lambda function: SQS batches of S3 notifications
// for processed/ CSVs, upserted into MySQL, failures reported per message.
//
// What happens to a message:
//   - an s3:TestEvent, or a notification of something other than a created
//     object: acknowledged, nothing done;
//   - a body that is not an S3 notification, or one about another bucket or
//     outside processed/: reported failed (it ends in the dead-letter queue);
//   - an object whose content cannot load (unknown table, wrong header, bad
//     value, broken CSV): quarantined (bucket.Quarantine: a copy and its
//     report), and acknowledged;
//   - an object already loaded (same key and version or ETag), or gone, or
//     overwritten since the notification: acknowledged;
//   - a database or S3 failure (a missing bucket and a denied access
//     included: they are never "gone"), or too little time left: reported
//     failed, so SQS delivers it again and finally dead-letters it.
package loadfn

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/envconfig"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// Config is the function's configuration.
type Config struct {
	Bucket    string
	PathStyle bool
	DB        mysqldb.Config
	// Reserve is the time kept before the invocation's deadline: no object is
	// started later than that, and a load still running then is abandoned
	// (rolled back) and reported failed, rather than killed mid-batch.
	Reserve time.Duration
}

// ConfigFromEnv reads the configuration and reports every problem at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	env := envconfig.New(getenv)
	c := Config{
		Bucket:    env.Required("BUCKET"),
		PathStyle: env.Bool("S3_FORCE_PATH_STYLE", false),
		DB:        mysqldb.ConfigFromEnv(env),
		Reserve:   env.Duration("LOAD_DEADLINE_RESERVE", 5*time.Second),
	}
	return c, env.Err()
}

// dbSource opens the database; *mysqldb.Connector satisfies it.
type dbSource interface {
	DB(ctx context.Context) (*sql.DB, error)
}

// Handler handles SQS batches.
type Handler struct {
	cfg    Config
	bucket *bucket.Bucket
	db     dbSource
	log    *slog.Logger
	loader load.Loader

	// Now is the clock of quarantine reports (time.Now by default).
	Now func() time.Time
	// Observe, when set, is told the outcome of every record (the local
	// runner counts them); it runs on the handler's goroutine.
	Observe func(Outcome)

	mu       sync.Mutex
	migrated bool // the schema is up to date: migrations ran once this cold start
}

// New returns a Handler.
func New(cfg Config, s3c bucket.API, db dbSource, log *slog.Logger) *Handler {
	return &Handler{cfg: cfg, bucket: bucket.New(s3c, cfg.Bucket), db: db, log: log, Now: time.Now}
}

// Status says what became of one object (or message).
type Status string

// Statuses of an Outcome.
const (
	Loaded      Status = "loaded"      // applied, in one transaction
	Skipped     Status = "skipped"     // nothing to do: already loaded, gone, overwritten since, a test or non-create event
	Quarantined Status = "quarantined" // cannot load: quarantined with a report; acknowledged
	Failed      Status = "failed"      // transient (database, S3, deadline): the message is delivered again
	Rejected    Status = "rejected"    // the message is not a notification this function handles: it ends in the dead-letter queue
)

// Outcome is what happened to one record of a message (or to the message,
// when it holds none). The handler logs it once, and passes it to Observe.
type Outcome struct {
	MessageID string        `json:"messageId"`
	Status    Status        `json:"status"`
	Bucket    string        `json:"bucket,omitempty"`
	Key       string        `json:"key,omitempty"`
	Version   string        `json:"version,omitempty"`
	Table     string        `json:"table,omitempty"`
	Rows      int64         `json:"rows,omitempty"`
	Attempts  int           `json:"attempts,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Took      time.Duration `json:"took"`
}

// Handle loads every message of the batch, one after the other, and returns
// the ids of the messages to deliver again.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	inv := &invocation{}
	for _, m := range ev.Records {
		if !h.message(ctx, inv, m) {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return resp, nil
}

// invocation is what one Handle call learns as it goes.
type invocation struct {
	// dbErr is set when the database could not be opened: the remaining
	// messages fail at once instead of each waiting for a connect timeout.
	dbErr error
}

// message handles one SQS message and reports whether it is done with
// (false: deliver it again).
func (h *Handler) message(ctx context.Context, inv *invocation, m events.SQSMessage) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			h.done(ctx, Outcome{MessageID: m.MessageId, Status: Failed, Reason: fmt.Sprintf("panic: %v", p)})
			ok = false
		}
	}()
	n, err := parseBody(m.Body)
	switch {
	case err != nil:
		h.done(ctx, Outcome{MessageID: m.MessageId, Status: Rejected, Reason: err.Error()})
		return false
	case n.testEvent:
		h.done(ctx, Outcome{MessageID: m.MessageId, Status: Skipped, Reason: "s3:TestEvent"})
		return true
	}
	ok = true
	for _, r := range n.records {
		start := time.Now()
		o := h.record(ctx, inv, r)
		o.MessageID, o.Took = m.MessageId, time.Since(start)
		h.done(ctx, o)
		// The other records of the message are done; the load log skips them next time.
		ok = ok && (o.Status != Failed && o.Status != Rejected)
	}
	return ok
}

// done logs an outcome, once, and passes it to Observe.
func (h *Handler) done(ctx context.Context, o Outcome) {
	attrs := []any{"messageId", o.MessageID, "status", string(o.Status)}
	if o.Key != "" {
		attrs = append(attrs, "bucket", o.Bucket, "key", o.Key, "version", o.Version, "table", o.Table)
	}
	switch o.Status {
	case Loaded:
		attrs = append(attrs, "rows", o.Rows, "attempts", o.Attempts, "ms", o.Took.Milliseconds())
	default:
		attrs = append(attrs, "reason", o.Reason)
	}
	switch o.Status {
	case Loaded, Skipped:
		h.log.InfoContext(ctx, "object "+string(o.Status), attrs...)
	case Quarantined:
		h.log.WarnContext(ctx, "object quarantined", attrs...)
	case Failed:
		h.log.ErrorContext(ctx, "message failed (transient): will be delivered again", attrs...)
	case Rejected:
		h.log.ErrorContext(ctx, "message rejected: not a processed-object notification", attrs...)
	}
	if h.Observe != nil {
		h.Observe(o)
	}
}

type notification struct {
	testEvent bool
	records   []events.S3EventRecord
}

// parseBody decodes an S3 notification (or test event) from an SQS body.
func parseBody(body string) (notification, error) {
	var raw struct {
		Event   string                 `json:"Event"`
		Service string                 `json:"Service"`
		Records []events.S3EventRecord `json:"Records"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		return notification{}, fmt.Errorf("body is not an S3 notification: %w", err)
	}
	if raw.Event == "s3:TestEvent" {
		return notification{testEvent: true}, nil
	}
	if len(raw.Records) == 0 {
		return notification{}, errors.New("body is JSON but holds no S3 Records")
	}
	for i, r := range raw.Records {
		if r.EventSource != "aws:s3" || r.S3.Bucket.Name == "" || r.S3.Object.Key == "" {
			return notification{}, fmt.Errorf("record %d is not an S3 event record (eventSource %q, bucket %q, key %q)", i, r.EventSource, r.S3.Bucket.Name, r.S3.Object.Key)
		}
	}
	return notification{records: raw.Records}, nil
}

// record loads the object of one notification record.
func (h *Handler) record(ctx context.Context, inv *invocation, r events.S3EventRecord) Outcome {
	obj := load.ObjectRef{Bucket: r.S3.Bucket.Name, Key: r.S3.Object.URLDecodedKey, ETag: r.S3.Object.ETag, VersionID: r.S3.Object.VersionID}
	o := Outcome{Bucket: obj.Bucket, Key: obj.Key, Version: obj.Version()}
	end := func(s Status, reason error) Outcome {
		o.Status = s
		if reason != nil {
			o.Reason = reason.Error()
		}
		return o
	}
	if !strings.HasPrefix(r.EventName, "ObjectCreated:") {
		return end(Skipped, fmt.Errorf("event %s is not an object creation", r.EventName))
	}
	if obj.Bucket != h.cfg.Bucket {
		return end(Rejected, fmt.Errorf("notification about bucket %q, not %q", obj.Bucket, h.cfg.Bucket))
	}
	if !strings.HasPrefix(obj.Key, bucket.ProcessedPrefix) {
		return end(Rejected, fmt.Errorf("key %q is not under %s", obj.Key, bucket.ProcessedPrefix))
	}
	name, ok := bucket.ProcessedTable(obj.Key)
	table, known := warehouse.Lookup(name)
	o.Table = name
	if !ok || !known {
		reason := fmt.Errorf("%s: unknown table %q (the key must be %s<table>/..., table one of %s)", obj, name, bucket.ProcessedPrefix, tableNames())
		return h.quarantine(ctx, obj, name, reason, o)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < h.cfg.Reserve {
		return end(Failed, errors.New("too little time left before the deadline"))
	}
	if inv.dbErr != nil {
		return end(Failed, fmt.Errorf("the database is unavailable: %w", inv.dbErr))
	}
	db, err := h.database(ctx)
	if err != nil {
		inv.dbErr = err
		return end(Failed, err)
	}
	if done, err := load.Loaded(ctx, db, obj); err != nil {
		return end(Failed, err)
	} else if done {
		return end(Skipped, errors.New("already loaded"))
	}

	body, info, err := h.bucket.Get(ctx, obj.Key, version(obj))
	switch {
	case errors.Is(err, bucket.ErrGone):
		return end(Skipped, fmt.Errorf("%s (%s) is gone: nothing to load", obj, obj.Version()))
	case errors.Is(err, bucket.ErrPrecondition):
		return end(Skipped, fmt.Errorf("%s was overwritten since the notification: its own notification loads it", obj))
	case err != nil:
		return end(Failed, err)
	}
	defer body.Close()
	if obj.ETag == "" {
		obj.ETag = info.ETag
	}
	if obj.VersionID == "" && info.VersionID != "null" {
		obj.VersionID = info.VersionID
	}
	o.Version = obj.Version()

	lctx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		lctx, cancel = context.WithDeadline(ctx, dl.Add(-h.cfg.Reserve/2))
		defer cancel()
	}
	reread := &s3Body{Reader: body, reopen: func(ctx context.Context) (io.ReadCloser, error) {
		again, _, err := h.bucket.Get(ctx, obj.Key, version(obj))
		return again, err
	}}
	res, err := h.loader.Apply(lctx, db, table, reread, obj)
	o.Rows, o.Attempts = res.Rows, res.Attempts
	switch {
	case load.IsPermanent(err):
		return h.quarantine(ctx, obj, table.Name, err, o)
	case err != nil:
		return end(Failed, err)
	case res.Skipped:
		return end(Skipped, errors.New("already loaded"))
	}
	return end(Loaded, nil)
}

// database opens the pool and, once per cold start, migrates the schema.
func (h *Handler) database(ctx context.Context) (*sql.DB, error) {
	db, err := h.db.DB(ctx)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.migrated {
		if err := warehousedb.Migrate(ctx, db); err != nil {
			return nil, err
		}
		h.migrated = true
	}
	return db, nil
}

// s3Body is an object's body that load.Apply can fetch again (the same
// version or ETag) to rerun a transaction, instead of keeping a copy.
type s3Body struct {
	io.Reader
	reopen func(ctx context.Context) (io.ReadCloser, error)
}

func (b *s3Body) Reopen(ctx context.Context) (io.ReadCloser, error) { return b.reopen(ctx) }

// version is the version of obj a notification names: its version id, else
// its ETag.
func version(obj load.ObjectRef) bucket.Version {
	return bucket.Version{ID: obj.VersionID, ETag: obj.ETag}
}

// quarantine copies obj to quarantine/ with a report beside it: Quarantined
// once both are written (the message is acknowledged), Skipped when the
// object is gone or was overwritten since, else Failed.
func (h *Handler) quarantine(ctx context.Context, obj load.ObjectRef, table string, reason error, o Outcome) Outcome {
	o.Reason = reason.Error()
	rep := bucket.Report{Stage: "load", Key: obj.Key, ETag: strings.Trim(obj.ETag, `"`), VersionID: obj.VersionID,
		Table: table, Reason: reason.Error(), Time: h.Now()}
	var ce *load.ContentError
	if errors.As(reason, &ce) {
		rep.Line, rep.Column = ce.Line, ce.Column
	}
	err := h.bucket.Quarantine(ctx, rep, nil)
	switch {
	case err == nil:
		o.Status = Quarantined
	case errors.Is(err, bucket.ErrGone):
		o.Status, o.Reason = Skipped, o.Reason+"; and the object is gone: nothing to quarantine"
	case errors.Is(err, bucket.ErrPrecondition):
		o.Status, o.Reason = Skipped, o.Reason+"; but the object was overwritten since the notification: its own notification handles it"
	default:
		o.Status, o.Reason = Failed, fmt.Sprintf("quarantining %s: %v (because %s)", obj, err, reason)
	}
	return o
}

func tableNames() string {
	var names []string
	for _, t := range warehouse.Tables() {
		names = append(names, t.Name)
	}
	return strings.Join(names, ", ")
}

// Message returns an SQS message whose body is the S3 notification of an
// ObjectCreated:Put of obj, as S3 sends it: what the local runner and tests
// feed to Handle.
func Message(id string, obj load.ObjectRef, size int64, at time.Time) events.SQSMessage {
	rec := bucket.EventRecord(bucket.Created{Bucket: obj.Bucket, Key: obj.Key, Size: size, ETag: obj.ETag,
		VersionID: obj.VersionID, ConfigID: "LoadOnProcessedCsv", Time: at})
	body, _ := json.Marshal(struct {
		Records []events.S3EventRecord `json:"Records"`
	}{[]events.S3EventRecord{rec}})
	return events.SQSMessage{MessageId: id, Body: string(body), EventSource: "aws:sqs", AWSRegion: "us-east-1",
		Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
}
