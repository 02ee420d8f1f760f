package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/transform"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transform/transformtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// hostileUpload streams r to key as a multipart upload of 16 MiB parts, so a
// generated object of hundreds of megabytes is never held in memory, and
// returns its size.
func (w *hostileWorld) hostileUpload(key string, r io.Reader) int64 {
	w.t.Helper()
	ctx := context.Background()
	up, err := w.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(w.bucket), Key: aws.String(key)})
	if err != nil {
		w.t.Fatal(err)
	}
	buf := make([]byte, 16<<20)
	var parts []types.CompletedPart
	var size int64
	for n := int32(1); ; n++ {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			out, perr := w.s3.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: aws.String(w.bucket), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(n),
				Body: bytes.NewReader(buf[:k]), ContentLength: aws.Int64(int64(k)),
			})
			if perr != nil {
				w.t.Fatal(perr)
			}
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag})
			size += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			w.t.Fatal(err)
		}
	}
	if _, err := w.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(w.bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		w.t.Fatal(err)
	}
	return size
}

// hostilePeakHeap samples the heap in use until stop is called and returns
// the highest sample: what streaming an object costs in memory.
func hostilePeakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// hostileOversized is a character page whose one record holds a string of
// size bytes: a single JSON value larger than transform.MaxValueBytes.
func hostileOversized(size int) io.Reader {
	head := `{"info":{"count":1,"pages":1,"next":null,"prev":null},"results":[{"id":1,"name":"`
	return io.MultiReader(strings.NewReader(head), io.LimitReader(hostileRepeat('x'), int64(size)), strings.NewReader(`"}]}`))
}

// hostileRepeat reads as an endless run of c.
type hostileRepeat byte

func (c hostileRepeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// TestReliabilityHostileHugeObjects streams a page just over
// transform.MaxValueBytes (it can only pass if read record by record) and a
// page whose one value exceeds that bound through Transform.
func TestReliabilityHostileHugeObjects(t *testing.T) {
	hostileHuge(t, transform.MaxValueBytes+1<<20, false)
}

// TestReliabilityHostileHugeObjectsFull does the same with a page of
// hundreds of megabytes, and bounds the heap while it streams.
func TestReliabilityHostileHugeObjectsFull(t *testing.T) {
	hostileHuge(t, 320<<20, true)
}

// hostileHuge runs the case with a page of size bytes; a long one only
// under `make reliability`.
func hostileHuge(t *testing.T, size int64, long bool) {
	row := Case(t, fmt.Sprintf("raw/ page of %d MiB (generated, streamed up in parts) and a page holding one %d MiB string, in one S3 event", size>>20, (transform.MaxValueBytes>>20)+4),
		"big page transformed in full (every record a row, no upload left open, heap under half the object when it is over 100 MiB); oversized value quarantined with its reason; event not failed")
	if long {
		requireFull(t)
	}
	w := newHostileWorld(t)
	big, over := "raw/character/huge.json", "raw/character/oversized-value.json"
	gotSize := w.hostileUpload(big, transformtest.CharacterPage(size))
	w.hostileUpload(over, hostileOversized(transform.MaxValueBytes+4<<20))

	runtime.GC()
	stop := hostilePeakHeap()
	err := w.transform.Handle(context.Background(), w.s3Event(big, over))
	peak := stop()
	if err != nil {
		t.Fatalf("Transform failed the event: %v", err)
	}
	outs := w.transformOutcomes()
	o := outs[big]
	if o.Status != transformfn.Transformed || o.Report == nil {
		t.Fatalf("%s: %s (%s)", big, o.Status, o.Reason)
	}
	if o.Report.Bytes != gotSize || o.Report.Rejected != 0 || o.Report.Records < 1000 || o.Report.Rows[warehouse.Characters] != o.Report.Records {
		t.Errorf("%s: report %+v for %d bytes: want every record a row", big, o.Report, gotSize)
	}
	for _, k := range o.Outputs {
		head, err := w.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(k)})
		if err != nil || aws.ToInt64(head.ContentLength) == 0 {
			t.Errorf("output %s: %v", k, err)
		}
	}
	uploads, err := w.s3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(w.bucket)})
	if err != nil || len(uploads.Uploads) != 0 {
		t.Errorf("multipart uploads left open: %v (%v)", uploads.Uploads, err)
	}
	if q := outs[over]; q.Status != transformfn.Quarantined || !strings.Contains(q.Reason, fmt.Sprintf("is larger than %d bytes", transform.MaxValueBytes)) {
		t.Errorf("%s: %s (%s), want quarantined for a value larger than %d bytes", over, q.Status, q.Reason, transform.MaxValueBytes)
	}
	// The heap holds a few output parts, one value and the ids seen: far less
	// than a big object (half of it leaves room for the collector's slack).
	if limit := uint64(gotSize / 2); gotSize > 100<<20 && peak > limit {
		t.Errorf("heap peaked at %d MiB while transforming a %d MiB object: not streamed", peak>>20, gotSize>>20)
	}
	row.Notef("%d MiB page: %d records, %d link rows; peak heap %d MiB", gotSize>>20, o.Report.Records, o.Report.Rows[warehouse.CharacterEpisodes], peak>>20)
}
