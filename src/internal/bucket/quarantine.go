package bucket

import (
	"context"
	"encoding/json"
	"time"
)

// Report is the .error.json written beside a quarantined object: which
// object (the version that was read), which stage could not use it, and why.
type Report struct {
	Stage     string    `json:"stage"` // "transform" or "load"
	Bucket    string    `json:"bucket"`
	Key       string    `json:"key"`
	Size      int64     `json:"size,omitempty"`
	ETag      string    `json:"etag,omitempty"`
	VersionID string    `json:"version_id,omitempty"`
	Table     string    `json:"table,omitempty"` // load: the table the file was for
	Reason    string    `json:"reason"`
	Offset    int64     `json:"offset,omitempty"` // transform: byte where the problem was seen
	Line      int       `json:"line,omitempty"`   // load: CSV line (1: the header)
	Column    string    `json:"column,omitempty"` // load: the column at fault
	FetchedAt time.Time `json:"fetched_at,omitzero"`
	Time      time.Time `json:"time"`
}

// Quarantine copies the version of r.Key that was read (r.VersionID, else
// the one with r.ETag) to QuarantineKey(r.Key), then writes r at
// ReportKey(r.Key) (r.Time: now when zero), with metadata on the report. It fails with ErrGone when that
// version no longer exists and ErrPrecondition when the object was
// overwritten since: the caller decides what those mean.
func (b *Bucket) Quarantine(ctx context.Context, r Report, metadata map[string]string) error {
	r.Bucket = b.name
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	if _, err := b.Copy(ctx, r.Key, Version{ID: r.VersionID, ETag: r.ETag}, QuarantineKey(r.Key), CopyOptions{}); err != nil {
		return err
	}
	body, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = b.Put(ctx, ReportKey(r.Key), append(body, '\n'), PutOptions{ContentType: "application/json", Metadata: metadata})
	return err
}

// ReadReport returns the report of quarantined key.
func (b *Bucket) ReadReport(ctx context.Context, key string) (Report, error) {
	data, _, err := b.ReadAll(ctx, ReportKey(key), 1<<20)
	if err != nil {
		return Report{}, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return Report{}, &Error{Op: "decoding", Bucket: b.name, Key: ReportKey(key), Err: err}
	}
	return r, nil
}
