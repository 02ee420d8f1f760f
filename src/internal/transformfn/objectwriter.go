package transformfn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// defaultPartSize is the part size of multipart uploads: an output smaller
// than this is one PutObject; a larger one is uploaded in parts while it is
// written, with at most two parts in memory (one filling, one uploading).
const defaultPartSize = 8 << 20

// objectWriter streams one S3 object. Nothing is visible under its key
// until Close succeeds: a small object is one PutObject at Close, a large
// one a multipart upload completed at Close; Abort (or a failed Close)
// aborts the multipart upload, so a failure never leaves a partial object.
type objectWriter struct {
	ctx         context.Context
	s3          s3API
	bucket, key string
	contentType string
	meta        map[string]string
	partSize    int

	buf      []byte
	spare    []byte
	uploadID *string
	next     int32
	parts    []types.CompletedPart
	inflight chan partResult
	err      error // sticky
	done     bool
}

type partResult struct {
	part types.CompletedPart
	body []byte
	err  error
}

func (w *objectWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("write after close")
	}
	n := len(p)
	for len(p) > 0 {
		k := min(w.partSize-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) >= w.partSize {
			if err := w.flushPart(); err != nil {
				w.err = err
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// flushPart starts uploading buf as the next part, once the previous part
// has finished.
func (w *objectWriter) flushPart() error {
	if w.uploadID == nil {
		out, err := w.s3.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{
			Bucket: aws.String(w.bucket), Key: aws.String(w.key), ContentType: aws.String(w.contentType),
			Metadata: w.meta, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			return fmt.Errorf("creating multipart upload of s3://%s/%s: %w", w.bucket, w.key, err)
		}
		w.uploadID = out.UploadId
	}
	if err := w.wait(); err != nil {
		return err
	}
	w.next++
	num, body := w.next, w.buf
	w.buf, w.spare = w.spare[:0], nil
	ch := make(chan partResult, 1)
	w.inflight = ch
	go func() {
		out, err := w.s3.UploadPart(w.ctx, &s3.UploadPartInput{
			Bucket: aws.String(w.bucket), Key: aws.String(w.key), UploadId: w.uploadID,
			PartNumber: aws.Int32(num), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			ch <- partResult{body: body, err: fmt.Errorf("uploading part %d of s3://%s/%s: %w", num, w.bucket, w.key, err)}
			return
		}
		ch <- partResult{body: body, part: types.CompletedPart{
			PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32,
			ChecksumCRC32C: out.ChecksumCRC32C, ChecksumCRC64NVME: out.ChecksumCRC64NVME,
			ChecksumSHA1: out.ChecksumSHA1, ChecksumSHA256: out.ChecksumSHA256,
		}}
	}()
	return nil
}

// wait waits for the part in flight, if any.
func (w *objectWriter) wait() error {
	if w.inflight == nil {
		return nil
	}
	r := <-w.inflight
	w.inflight = nil
	if r.err != nil {
		return r.err
	}
	w.parts = append(w.parts, r.part)
	w.spare = r.body
	return nil
}

// Close makes the object visible. On error the object is not written.
func (w *objectWriter) Close() error {
	if w.done {
		return w.err
	}
	if w.err != nil {
		_ = w.Abort()
		return w.err
	}
	w.done = true
	if w.uploadID == nil {
		_, err := w.s3.PutObject(w.ctx, &s3.PutObjectInput{
			Bucket: aws.String(w.bucket), Key: aws.String(w.key), ContentType: aws.String(w.contentType),
			Metadata: w.meta, Body: bytes.NewReader(w.buf), ContentLength: aws.Int64(int64(len(w.buf))),
		})
		w.buf = nil
		if err != nil {
			w.err = fmt.Errorf("putting s3://%s/%s: %w", w.bucket, w.key, err)
		}
		return w.err
	}
	err := func() error {
		if len(w.buf) > 0 {
			if err := w.flushPart(); err != nil {
				return err
			}
		}
		if err := w.wait(); err != nil {
			return err
		}
		slices.SortFunc(w.parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
		_, err := w.s3.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
			Bucket: aws.String(w.bucket), Key: aws.String(w.key), UploadId: w.uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
		})
		if err != nil {
			return fmt.Errorf("completing multipart upload of s3://%s/%s: %w", w.bucket, w.key, err)
		}
		return nil
	}()
	if err != nil {
		w.done = false
		w.err = err
		_ = w.Abort() // the upload's own error is the one to report
	}
	w.buf, w.spare = nil, nil
	return err
}

// Abort discards the object: the multipart upload, if one was started, is
// aborted (even when ctx is already cancelled: parts left behind cost
// storage until the bucket's lifecycle rule removes them).
func (w *objectWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.err == nil {
		w.err = errors.New("aborted")
	}
	w.buf, w.spare = nil, nil
	if w.uploadID == nil {
		return nil
	}
	_ = w.wait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), 30*time.Second)
	defer cancel()
	if _, err := w.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(w.bucket), Key: aws.String(w.key), UploadId: w.uploadID,
	}); err != nil {
		return fmt.Errorf("aborting multipart upload of s3://%s/%s: %w", w.bucket, w.key, err)
	}
	return nil
}
