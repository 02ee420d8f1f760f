package extract

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
)

// storePage writes page n of res unless the stored object already has
// these bytes (its sha256 metadata matches): an unchanged page costs one
// HEAD and no PUT, so nothing downstream runs. force skips the HEAD. A
// missing bucket or a denied access fails the page (never "not stored yet").
func (r *run) storePage(ctx context.Context, res string, n int, url string, body []byte, fetchedAt time.Time) (written bool, err error) {
	key := bucket.PageKey(res, n)
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	if !r.force {
		head, err := r.store.Head(ctx, key)
		switch {
		case err == nil:
			if head.Meta(bucket.MetaSHA256) == digest && head.Size == int64(len(body)) {
				return false, nil
			}
		case !errors.Is(err, bucket.ErrGone):
			return false, err
		}
	}
	_, err = r.store.Put(ctx, key, body, bucket.PutOptions{
		ContentType: "application/json",
		Metadata: map[string]string{
			bucket.MetaSourceURL: url,
			bucket.MetaFetchedAt: fetchedAt.UTC().Format(bucket.FetchedAtLayout),
			bucket.MetaSHA256:    digest,
		},
	})
	if err != nil {
		return false, err
	}
	return true, nil
}

// writeManifest writes the run manifest, even when the run's context is
// done (a deadline or an interrupt is exactly when it matters).
func (c *Crawler) writeManifest(ctx context.Context, res Result, runErr error) error {
	m := Manifest{Result: res, APIBaseURL: c.cfg.BaseURL, Bucket: c.cfg.Bucket, Concurrency: c.cfg.Concurrency}
	if runErr != nil {
		m.Error = runErr.Error()
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the run manifest: %w", err)
	}
	// Up to 30 s, and never past the invocation's deadline: the crawl
	// stopped DeadlineMargin before it to leave this write that time.
	timeout := 30 * time.Second
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); left > 0 {
			timeout = min(timeout, left)
		} else {
			timeout = min(timeout, c.cfg.DeadlineMargin)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if _, err := c.store.Put(ctx, res.ManifestKey, body, bucket.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("writing the run manifest: %w", err)
	}
	return nil
}
