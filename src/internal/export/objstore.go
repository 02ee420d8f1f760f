package export

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// s3API lists the S3 operations the exporter uses; *s3.Client has them.
type s3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// ErrPreconditionFailed is returned when a conditional write lost: the object
// exists (If-None-Match: *) or changed since it was read (If-Match).
var ErrPreconditionFailed = errors.New("precondition failed")

// isPrecondition reports whether err is S3's answer to a failed condition:
// 412 Precondition Failed, or 409 ConditionalRequestConflict (a concurrent
// conditional write to the same key).
func isPrecondition(err error) bool {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		if s := re.HTTPStatusCode(); s == http.StatusPreconditionFailed {
			return true
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	var nk *types.NoSuchKey
	if errors.As(err, &nk) {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// unsignedPayload skips SigV4's SHA-256 of each part's body: the body's
// integrity is checked by S3 through Content-MD5 instead (one hash, not two).
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// Multipart sizes: S3 wants parts of at least 5 MiB (but the last) and at
// most 10,000 of them; the part size doubles every 2,000 parts so an object
// can grow to about 300 GiB while memory stays at a few parts.
const (
	minPartSize       = 5 << 20
	partsPerSizeLevel = 2000
	maxParts          = 10000
	partsInFlight     = 2 // uploads running at once per object
)

// objectWriter streams an object to S3 in parts and publishes it only when
// Commit is called, with If-None-Match: * so that it never replaces an
// existing object. Until then nothing is visible: an object smaller than
// one part is kept in memory and PUT by Commit; a larger one is a multipart
// upload that Commit completes and Abort discards.
//
// Write and Close are called from one goroutine; part uploads run in the
// background, at most partsInFlight at a time.
type objectWriter struct {
	ctx         context.Context
	s3          s3API
	bucket, key string
	contentType string
	metadata    map[string]string
	partSize    int

	buf      []byte // the part being filled
	free     chan []byte
	buffers  int // buffers allocated
	uploadID string
	partNum  int32
	size     int64
	closed   bool

	wg    sync.WaitGroup
	mu    sync.Mutex
	parts []types.CompletedPart
	err   error
}

func newObjectWriter(ctx context.Context, api s3API, bucket, key, contentType string, metadata map[string]string, partSize int) *objectWriter {
	return &objectWriter{
		ctx: ctx, s3: api, bucket: bucket, key: key, contentType: contentType, metadata: metadata,
		partSize: max(partSize, minPartSize), free: make(chan []byte, partsInFlight+1),
	}
}

// Size is the number of bytes written so far.
func (w *objectWriter) Size() int64 { return w.size }

func (w *objectWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *objectWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// currentPartSize is the size of part number n (1-based).
func (w *objectWriter) currentPartSize(n int32) int {
	return w.partSize << ((int(n) - 1) / partsPerSizeLevel)
}

// buffer returns an empty buffer for the next part, waiting for an upload
// to finish when every buffer is in flight.
func (w *objectWriter) buffer() ([]byte, error) {
	want := w.currentPartSize(w.partNum + 1)
	for {
		select {
		case b := <-w.free:
			if cap(b) >= want {
				return b[:0], nil
			}
			return make([]byte, 0, want), nil // outgrown: replace
		default:
		}
		if w.buffers < partsInFlight+1 {
			w.buffers++
			return make([]byte, 0, want), nil
		}
		select {
		case b := <-w.free:
			if cap(b) >= want {
				return b[:0], nil
			}
			return make([]byte, 0, want), nil
		case <-w.ctx.Done():
			return nil, w.ctx.Err()
		}
	}
}

func (w *objectWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("write after close")
	}
	n := 0
	for len(p) > 0 {
		if err := w.failed(); err != nil {
			return n, err
		}
		if w.buf == nil {
			b, err := w.buffer()
			if err != nil {
				return n, err
			}
			w.buf = b
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
		w.size += int64(k)
		if len(w.buf) == cap(w.buf) {
			if err := w.sendPart(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// sendPart starts the upload of w.buf as the next part.
func (w *objectWriter) sendPart() error {
	if w.uploadID == "" {
		out, err := w.s3.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{
			Bucket: aws.String(w.bucket), Key: aws.String(w.key),
			ContentType: aws.String(w.contentType), Metadata: w.metadata,
		})
		if err != nil {
			return fmt.Errorf("starting multipart upload of s3://%s/%s: %w", w.bucket, w.key, err)
		}
		w.uploadID = aws.ToString(out.UploadId)
	}
	if w.partNum >= maxParts {
		return fmt.Errorf("s3://%s/%s: more than %d parts", w.bucket, w.key, maxParts)
	}
	w.partNum++
	num, buf := w.partNum, w.buf
	w.buf = nil
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		sum := md5.Sum(buf)
		out, err := w.s3.UploadPart(w.ctx, &s3.UploadPartInput{
			Bucket: aws.String(w.bucket), Key: aws.String(w.key), UploadId: aws.String(w.uploadID),
			PartNumber: aws.Int32(num), Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf))),
			ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		}, unsignedPayload)
		w.free <- buf
		if err != nil {
			w.fail(fmt.Errorf("uploading part %d of s3://%s/%s: %w", num, w.bucket, w.key, err))
			return
		}
		w.mu.Lock()
		w.parts = append(w.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		w.mu.Unlock()
	}()
	return nil
}

// Close uploads what is left of a multipart object and waits for every
// part; the object is still invisible until Commit.
func (w *objectWriter) Close() error {
	if w.closed {
		return w.failed()
	}
	w.closed = true
	if w.uploadID != "" && len(w.buf) > 0 {
		if err := w.sendPart(); err != nil {
			w.fail(err)
		}
	}
	w.wg.Wait()
	return w.failed()
}

// Rename changes the key of an object not yet started as a multipart upload.
func (w *objectWriter) Rename(key string) bool {
	if w.uploadID != "" {
		return false
	}
	w.key = key
	return true
}

// Commit publishes the object under its key unless an object already exists
// there (then ErrPreconditionFailed, and a multipart upload stays pending
// for Abort). It returns the ETag.
func (w *objectWriter) Commit(ctx context.Context) (string, error) {
	if err := w.Close(); err != nil {
		return "", err
	}
	if w.uploadID == "" {
		sum := md5.Sum(w.buf)
		out, err := w.s3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(w.bucket), Key: aws.String(w.key), Body: bytes.NewReader(w.buf),
			ContentLength: aws.Int64(int64(len(w.buf))), ContentType: aws.String(w.contentType),
			ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
			Metadata:   w.metadata, IfNoneMatch: aws.String("*"),
		}, unsignedPayload)
		if err != nil {
			if isPrecondition(err) {
				return "", fmt.Errorf("storing s3://%s/%s: %w", w.bucket, w.key, ErrPreconditionFailed)
			}
			return "", fmt.Errorf("storing s3://%s/%s: %w", w.bucket, w.key, err)
		}
		return aws.ToString(out.ETag), nil
	}
	w.mu.Lock()
	parts := append([]types.CompletedPart(nil), w.parts...)
	w.mu.Unlock()
	sortParts(parts)
	out, err := w.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(w.bucket), Key: aws.String(w.key), UploadId: aws.String(w.uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     aws.String("*"),
	})
	if err != nil {
		if isPrecondition(err) {
			return "", fmt.Errorf("completing s3://%s/%s: %w", w.bucket, w.key, ErrPreconditionFailed)
		}
		return "", fmt.Errorf("completing s3://%s/%s: %w", w.bucket, w.key, err)
	}
	w.uploadID = "" // done: nothing to abort
	w.buf = nil
	return aws.ToString(out.ETag), nil
}

func sortParts(parts []types.CompletedPart) {
	for i := 1; i < len(parts); i++ {
		for j := i; j > 0 && aws.ToInt32(parts[j].PartNumber) < aws.ToInt32(parts[j-1].PartNumber); j-- {
			parts[j], parts[j-1] = parts[j-1], parts[j]
		}
	}
}

// Abort discards an uncommitted object: it waits for running part uploads
// and aborts the multipart upload, even when ctx is already done.
func (w *objectWriter) Abort(ctx context.Context) error {
	w.closed = true
	w.fail(errors.New("aborted"))
	w.wg.Wait()
	w.buf = nil
	if w.uploadID == "" {
		return nil
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := w.s3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(w.bucket), Key: aws.String(w.key), UploadId: aws.String(w.uploadID),
	})
	w.uploadID = ""
	if err != nil {
		return fmt.Errorf("aborting multipart upload of s3://%s/%s: %w", w.bucket, w.key, err)
	}
	return nil
}

// exists reports whether key is an object of bucket.
func exists(ctx context.Context, api s3API, bucket, key string) (bool, error) {
	_, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("checking s3://%s/%s: %w", bucket, key, err)
}

// objectSize returns the stored size of key.
func objectSize(ctx context.Context, api s3API, bucket, key string) (int64, error) {
	out, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, fmt.Errorf("checking s3://%s/%s: %w", bucket, key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

// readObject returns key's content and ETag; found is false when it does
// not exist.
func readObject(ctx context.Context, api s3API, bucket, key string, limit int64) (body []byte, etag string, found bool, err error) {
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, "", false, nil
		}
		return nil, "", false, fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	body, err = io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, "", false, fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
	}
	if int64(len(body)) > limit {
		return nil, "", false, fmt.Errorf("reading s3://%s/%s: larger than %d bytes", bucket, key, limit)
	}
	return body, aws.ToString(out.ETag), true, nil
}

// putIf stores body under key only if the object still has ETag ifMatch, or
// does not exist when ifMatch is empty.
func putIf(ctx context.Context, api s3API, bucket, key, contentType string, body []byte, ifMatch string) (string, error) {
	in := &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String(contentType),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := api.PutObject(ctx, in)
	if err != nil {
		if isPrecondition(err) {
			return "", fmt.Errorf("storing s3://%s/%s: %w", bucket, key, ErrPreconditionFailed)
		}
		return "", fmt.Errorf("storing s3://%s/%s: %w", bucket, key, err)
	}
	return aws.ToString(out.ETag), nil
}
