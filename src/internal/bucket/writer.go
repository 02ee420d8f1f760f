package bucket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Multipart sizes: S3 wants parts of at least 5 MiB (but the last) and at
// most 10,000 of them. The part size doubles every 2,000 parts, so an object
// can grow past 300 GiB (from 5 MiB parts) while memory stays at a few parts.
const (
	MinPartSize       = 5 << 20
	DefaultPartSize   = 8 << 20
	MaxParts          = 10000
	partsPerSizeLevel = 2000
	defaultInFlight   = 2
	// firstBufferSize is where an object's first buffer starts; it doubles
	// up to the part size only if the object gets that big.
	firstBufferSize = 64 << 10
)

// WriteOptions configure a Writer.
type WriteOptions struct {
	ContentType string
	Metadata    map[string]string
	// IfNoneMatch makes Commit fail with ErrPrecondition rather than
	// replace an existing object.
	IfNoneMatch bool
	// PartSize is the first part size (DefaultPartSize; at least MinPartSize).
	PartSize int
	// PartsInFlight bounds concurrent part uploads (default 2). Memory is
	// PartsInFlight+1 parts at most.
	PartsInFlight int
}

// Writer streams one object, all or nothing: nothing is visible under its
// key until Commit succeeds. An object smaller than one part is kept in
// memory and put by Commit; a larger one is a multipart upload whose parts
// are uploaded as they fill, each checked by S3 against its MD5, and which
// Commit completes. Any failure (a write, a part, the commit) aborts the
// upload, so no partial object and no orphaned parts are left behind.
//
// Write, Close, Commit and Abort are called from one goroutine; parts
// upload in the background.
type Writer struct {
	ctx      context.Context
	b        *Bucket
	key      string
	o        WriteOptions
	inFlight int

	buf      []byte // the part being filled
	free     chan []byte
	buffers  int // buffers allocated
	uploadID string
	partNum  int32
	size     int64
	closed   bool
	done     bool // committed or aborted

	wg    sync.WaitGroup
	mu    sync.Mutex
	parts []types.CompletedPart
	err   error // the first failure, sticky
}

// NewWriter starts an object at key. ctx bounds its uploads.
func (b *Bucket) NewWriter(ctx context.Context, key string, o WriteOptions) *Writer {
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	o.PartSize = max(o.PartSize, MinPartSize)
	n := o.PartsInFlight
	if n <= 0 {
		n = defaultInFlight
	}
	return &Writer{ctx: ctx, b: b, key: key, o: o, inFlight: n, free: make(chan []byte, n+1)}
}

// Key is where the object goes.
func (w *Writer) Key() string { return w.key }

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.size }

func (w *Writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// partSize is the size of part number n (1-based).
func (w *Writer) partSize(n int32) int {
	return w.o.PartSize << ((int(n) - 1) / partsPerSizeLevel)
}

// buffer returns an empty buffer for the next part, waiting for an upload
// to finish when every buffer is in flight.
func (w *Writer) buffer() ([]byte, error) {
	want := w.partSize(w.partNum + 1)
	take := func(b []byte) []byte {
		if cap(b) >= want {
			return b[:0]
		}
		return make([]byte, 0, want) // outgrown: replace
	}
	select {
	case b := <-w.free:
		return take(b), nil
	default:
	}
	if w.buffers < w.inFlight+1 {
		w.buffers++
		if w.partNum == 0 {
			// Most objects are far smaller than a part: the first buffer
			// starts small and grows as the writes come (Write).
			return make([]byte, 0, min(firstBufferSize, want)), nil
		}
		return make([]byte, 0, want), nil
	}
	select {
	case b := <-w.free:
		return take(b), nil
	case <-w.ctx.Done():
		return nil, w.ctx.Err()
	}
}

// Write appends p to the object.
func (w *Writer) Write(p []byte) (int, error) {
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
				w.fail(err)
				return n, err
			}
			w.buf = b
		}
		limit := w.partSize(w.partNum + 1)
		if len(w.buf) == cap(w.buf) { // a first buffer, short of a part: double it
			w.buf = slices.Grow(w.buf, min(2*cap(w.buf), limit)-len(w.buf))
		}
		k := copy(w.buf[len(w.buf):min(cap(w.buf), limit)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
		w.size += int64(k)
		if len(w.buf) == limit {
			if err := w.sendPart(); err != nil {
				w.fail(err)
				return n, err
			}
		}
	}
	return n, nil
}

// sendPart starts the upload of w.buf as the next part.
func (w *Writer) sendPart() error {
	if w.uploadID == "" {
		in := &s3.CreateMultipartUploadInput{Bucket: aws.String(w.b.name), Key: aws.String(w.key), Metadata: w.o.Metadata}
		if w.o.ContentType != "" {
			in.ContentType = aws.String(w.o.ContentType)
		}
		out, err := w.b.api.CreateMultipartUpload(w.ctx, in)
		if err != nil {
			return w.b.fail(w.ctx, "starting a multipart upload of", w.key, err)
		}
		w.uploadID = aws.ToString(out.UploadId)
	}
	if w.partNum >= MaxParts {
		return &Error{Op: "writing", Bucket: w.b.name, Key: w.key, Err: fmt.Errorf("more than %d parts", MaxParts)}
	}
	w.partNum++
	num, buf := w.partNum, w.buf
	w.buf = nil
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		out, err := w.b.api.UploadPart(w.ctx, &s3.UploadPartInput{
			Bucket: aws.String(w.b.name), Key: aws.String(w.key), UploadId: aws.String(w.uploadID),
			PartNumber: aws.Int32(num), Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf))),
			ContentMD5: contentMD5(buf),
		}, unsignedPayload)
		w.free <- buf
		if err != nil {
			w.fail(w.b.fail(w.ctx, fmt.Sprintf("uploading part %d of", num), w.key, err))
			return
		}
		w.mu.Lock()
		w.parts = append(w.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		w.mu.Unlock()
	}()
	return nil
}

// Close uploads what is left of a multipart object and waits for every
// part. The object stays invisible until Commit.
func (w *Writer) Close() error {
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

// Rename moves the object to key, which only an object not yet uploading
// in parts can do.
func (w *Writer) Rename(key string) bool {
	if w.uploadID != "" || w.done {
		return false
	}
	w.key = key
	return true
}

// Commit makes the object visible and returns its ETag. On ErrPrecondition
// (IfNoneMatch, and an object exists) nothing changes: Rename and Commit
// again, or Abort. On any other failure the upload is aborted.
func (w *Writer) Commit(ctx context.Context) (string, error) {
	if w.done {
		if err := w.failed(); err != nil {
			return "", err
		}
		return "", errors.New("commit after commit")
	}
	if err := w.Close(); err != nil {
		_ = w.Abort(ctx)
		return "", err
	}
	var etag string
	var err error
	if w.uploadID == "" {
		etag, err = w.b.Put(ctx, w.key, w.buf, PutOptions{ContentType: w.o.ContentType, Metadata: w.o.Metadata, IfNoneMatch: w.o.IfNoneMatch})
	} else {
		etag, err = w.complete(ctx)
	}
	if err != nil {
		if !errors.Is(err, ErrPrecondition) {
			w.fail(err)
			_ = w.Abort(ctx)
		}
		return "", err
	}
	w.done, w.uploadID, w.buf = true, "", nil
	return etag, nil
}

func (w *Writer) complete(ctx context.Context) (string, error) {
	w.mu.Lock()
	parts := slices.Clone(w.parts)
	w.mu.Unlock()
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber)) })
	in := &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(w.b.name), Key: aws.String(w.key), UploadId: aws.String(w.uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if w.o.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := w.b.api.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return "", w.b.fail(ctx, "completing", w.key, err)
	}
	return aws.ToString(out.ETag), nil
}

// Abort discards an uncommitted object: it waits for running part uploads
// and aborts the multipart upload, even when ctx is done (parts left behind
// cost storage until the bucket's lifecycle rule removes them). Abort after
// Commit does nothing.
func (w *Writer) Abort(ctx context.Context) error {
	if w.done {
		return nil
	}
	w.done, w.closed = true, true
	w.fail(errors.New("aborted"))
	w.wg.Wait()
	w.buf = nil
	if w.uploadID == "" {
		return nil
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := w.b.api.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(w.b.name), Key: aws.String(w.key), UploadId: aws.String(w.uploadID),
	})
	w.uploadID = ""
	if err != nil {
		return w.b.fail(actx, "aborting the multipart upload of", w.key, err)
	}
	return nil
}
