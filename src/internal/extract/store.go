package extract

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// storePage writes page n of res unless the stored object already has
// these bytes (its sha256 metadata matches): an unchanged page costs one
// HEAD and no PUT, so nothing downstream runs. force skips the HEAD.
func (r *run) storePage(ctx context.Context, res string, n int, url string, body []byte, fetchedAt time.Time) (written bool, err error) {
	key := Key(res, n)
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	if !r.force {
		head, err := r.store.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.cfg.Bucket), Key: aws.String(key)})
		switch {
		case err == nil:
			if metadata(head.Metadata, MetaSHA256) == digest && aws.ToInt64(head.ContentLength) == int64(len(body)) {
				return false, nil
			}
		case !isNotFound(err):
			return false, fmt.Errorf("checking s3://%s/%s: %w", r.cfg.Bucket, key, err)
		}
	}
	md := md5.Sum(body)
	_, err = r.store.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(r.cfg.Bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(md[:])),
		Metadata: map[string]string{
			MetaSourceURL: url,
			MetaFetchedAt: fetchedAt.UTC().Format(FetchedAtLayout),
			MetaSHA256:    digest,
		},
	})
	if err != nil {
		return false, fmt.Errorf("putting s3://%s/%s: %w", r.cfg.Bucket, key, err)
	}
	return true, nil
}

// metadata looks a user metadata key up whatever its case (servers and SDK
// versions differ in how they case x-amz-meta-* names).
func metadata(m map[string]string, key string) string {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

func isNotFound(err error) bool {
	var nf *types.NotFound
	var nk *types.NoSuchKey
	if errors.As(err, &nf) || errors.As(err, &nk) {
		return true
	}
	var se interface{ HTTPStatusCode() int }
	return errors.As(err, &se) && se.HTTPStatusCode() == http.StatusNotFound
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
	_, err = c.store.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(c.cfg.Bucket),
		Key:           aws.String(res.ManifestKey),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
	})
	if err != nil {
		return fmt.Errorf("putting the run manifest s3://%s/%s: %w", c.cfg.Bucket, res.ManifestKey, err)
	}
	return nil
}
