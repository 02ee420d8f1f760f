package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/dataeng/rickmorty-pipeline/src/internal/awsclient"
	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/envconfig"
)

// reprocessSuffix is the suffix filter of TransformFunction's S3 event in
// template.yaml (prefix raw/, suffix .json): copying any other object under
// raw/ would emit an event that invokes nothing.
const reprocessSuffix = ".json"

// maxCopySize is the largest object one CopyObject can copy (5 GiB).
const maxCopySize = 5 << 30

// defaultReprocessConcurrency bounds the copies in flight: each one starts a
// Transform invocation, so this also bounds the burst sent to Lambda.
const defaultReprocessConcurrency = 8

func reprocessCommand() *command {
	return &command{
		name:    "reprocess",
		summary: "make a deployed pipeline reprocess raw/ objects (copy onto themselves)",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			bucketName := fs.String("bucket", "", "the deployed data bucket (required)")
			prefix := fs.String("prefix", bucket.RawPrefix, "reprocess every .json object under this prefix (it must be under raw/)")
			dryRun := fs.Bool("dry-run", false, "list the objects, their sizes and the total; write nothing")
			conc := fs.Int("concurrency", defaultReprocessConcurrency, "copies in flight")
			return func(ctx context.Context) (result, error) {
				if *bucketName == "" {
					return nil, errors.New("--bucket is required (the data bucket of the deployed stack)")
				}
				if err := checkRawPrefix(*prefix); err != nil {
					return nil, err
				}
				if *conc < 1 {
					return nil, errors.New("--concurrency must be positive")
				}
				// The default SDK configuration (profile, region, credentials,
				// AWS_ENDPOINT_URL[_S3]); path style for S3-compatible servers.
				env := envconfig.New(os.Getenv)
				pathStyle := env.Bool("S3_FORCE_PATH_STYLE", false)
				if err := env.Err(); err != nil {
					return nil, err
				}
				cfg, err := awsclient.Load(ctx)
				if err != nil {
					return nil, err
				}
				rp := reprocessor{bucket: bucket.New(awsclient.S3(cfg, pathStyle), *bucketName), concurrency: *conc}
				return rp.run(ctx, *prefix, *dryRun)
			}
		},
	}
}

// checkRawPrefix refuses a prefix outside raw/: copying processed/ or
// exports/ objects onto themselves would re-trigger Load or nothing at all.
func checkRawPrefix(prefix string) error {
	if !strings.HasPrefix(prefix, bucket.RawPrefix) {
		return fmt.Errorf("--prefix %q is not under %s: only raw objects can be reprocessed (Transform is triggered by %s*%s)",
			prefix, bucket.RawPrefix, bucket.RawPrefix, reprocessSuffix)
	}
	return nil
}

// reprocessor copies raw objects onto themselves so that S3 announces them
// again (ObjectCreated:Copy) and the deployed Transform function runs on
// each one.
type reprocessor struct {
	bucket      *bucket.Bucket
	concurrency int
}

// Statuses of one object.
const (
	reprocessListed  = "listed"  // dry run: nothing written
	reprocessCopied  = "copied"  // copied onto itself: S3 emitted ObjectCreated
	reprocessSkipped = "skipped" // gone, or rewritten since it was read (its own event transforms it)
	reprocessFailed  = "failed"  // not copied: see Reason
	reprocessNotDone = "not done"
)

// reprocessObject is one object under the prefix.
type reprocessObject struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// reprocessResult is what `pipeline reprocess` did.
type reprocessResult struct {
	Bucket  string            `json:"bucket"`
	Prefix  string            `json:"prefix"`
	DryRun  bool              `json:"dryRun"`
	Count   int               `json:"count"`   // .json objects under the prefix
	Bytes   int64             `json:"bytes"`   // their total size
	Ignored int               `json:"ignored"` // other objects under the prefix: no event would reach Transform
	Copied  int               `json:"copied"`
	Skipped int               `json:"skipped"`
	Failed  int               `json:"failed"`
	Objects []reprocessObject `json:"objects"` // in key order
}

func (r *reprocessResult) Human(w io.Writer) {
	where := "s3://" + r.Bucket + "/" + r.Prefix
	if r.DryRun {
		for _, o := range r.Objects {
			fmt.Fprintf(w, "%12d  %s\n", o.Size, o.Key)
		}
		fmt.Fprintf(w, "dry run: would copy %d objects (%d bytes) under %s onto themselves; %d other objects ignored; nothing written\n",
			r.Count, r.Bytes, where, r.Ignored)
		return
	}
	fmt.Fprintf(w, "reprocessed %d of %d objects (%d bytes) under %s: %d skipped, %d failed; %d other objects ignored\n",
		r.Copied, r.Count, r.Bytes, where, r.Skipped, r.Failed, r.Ignored)
	for _, o := range r.Objects {
		if o.Status != reprocessCopied {
			fmt.Fprintf(w, "  %s s3://%s/%s: %s\n", o.Status, r.Bucket, o.Key, o.Reason)
		}
	}
}

// run lists the .json objects under prefix and, unless dryRun, copies each
// one onto itself with at most rp.concurrency copies in flight. A failed
// object does not stop the others; the error counts them.
func (rp *reprocessor) run(ctx context.Context, prefix string, dryRun bool) (*reprocessResult, error) {
	res := &reprocessResult{Bucket: rp.bucket.Name(), Prefix: prefix, DryRun: dryRun, Objects: []reprocessObject{}}
	// The listing is kept (keys and sizes only) so the report is in key
	// order and a dry run can print it; raw/ holds pages, not rows.
	err := rp.bucket.List(ctx, prefix, func(obj bucket.Info) error {
		if !strings.HasSuffix(obj.Key, reprocessSuffix) {
			res.Ignored++
			return nil
		}
		res.Objects = append(res.Objects, reprocessObject{Key: obj.Key, Size: obj.Size, Status: reprocessListed})
		res.Count++
		res.Bytes += obj.Size
		return nil
	})
	if err != nil {
		return res, err
	}
	if dryRun {
		return res, nil
	}

	work := make(chan int)
	var wg sync.WaitGroup
	for range min(rp.concurrency, len(res.Objects)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				o := &res.Objects[i] // each index is handed to one worker only
				o.Status, o.Reason = rp.copyOnto(ctx, o.Key)
			}
		}()
	}
feed:
	for i := range res.Objects {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()

	for i := range res.Objects {
		o := &res.Objects[i]
		switch o.Status {
		case reprocessCopied:
			res.Copied++
		case reprocessSkipped:
			res.Skipped++
		case reprocessFailed:
			res.Failed++
		case reprocessListed:
			o.Status, o.Reason = reprocessNotDone, "interrupted before it was copied"
		}
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("interrupted after %d of %d objects: %w", res.Copied+res.Skipped+res.Failed, res.Count, err)
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("%d of %d objects failed (listed above; run again to retry them)", res.Failed, res.Count)
	}
	return res, nil
}

// copyOnto copies the object at key onto itself. MetadataDirective REPLACE
// is what S3 requires to copy an object onto itself; it replaces the
// Content-Type and user metadata too, so both are read first and written
// back unchanged (Transform reads fetched-at: losing it would date the rows
// at the copy, not at the fetch). The copy is conditional on the ETag that
// was read, so bytes written meanwhile never get the old metadata.
func (rp *reprocessor) copyOnto(ctx context.Context, key string) (status, reason string) {
	head, err := rp.bucket.Head(ctx, key)
	switch {
	case errors.Is(err, bucket.ErrGone):
		return reprocessSkipped, "deleted since it was listed"
	case err != nil:
		return reprocessFailed, fmt.Sprintf("reading its metadata: %v", err)
	case head.Size > maxCopySize:
		return reprocessFailed, fmt.Sprintf("%d bytes: CopyObject copies at most 5 GiB; upload it again instead", head.Size)
	}
	_, err = rp.bucket.Copy(ctx, key, bucket.Version{ETag: head.ETag}, key, bucket.CopyOptions{ReplaceWith: &head})
	switch {
	case err == nil:
		return reprocessCopied, ""
	case errors.Is(err, bucket.ErrPrecondition):
		return reprocessSkipped, "rewritten since its metadata was read: that write's own event transforms it"
	case errors.Is(err, bucket.ErrGone):
		return reprocessSkipped, "deleted since it was listed"
	}
	return reprocessFailed, err.Error()
}
