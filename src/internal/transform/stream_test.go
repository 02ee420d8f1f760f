package transform

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/transform/transformtest"
)

// countSink counts bytes and keeps nothing.
type countSink map[string]*countWriter

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func (s countSink) Create(name string) (io.Writer, error) {
	w := &countWriter{}
	s[name] = w
	return w, nil
}

// TestLargeObjectStreamsInBoundedMemory transforms a 200 MB generated page
// and checks, loosely, that the heap never holds more than a small multiple
// of one record: the object is streamed, not read whole. (Speed lives in the
// benchmark: `make bench`.) Under -race or -short the object is 48 MB.
func TestLargeObjectStreamsInBoundedMemory(t *testing.T) {
	size := int64(200 << 20)
	if raceEnabled || testing.Short() {
		size = 48 << 20
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	sink := countSink{}
	rep, err := Transform(context.Background(), "raw/character/huge.json", fetchedAt, transformtest.CharacterPage(size), sink)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Bytes < size || rep.Rejected != 0 || rep.Rows["characters"] != rep.Records || rep.Records < 10000 {
		t.Fatalf("report %+v", rep)
	}
	grew := int64(peak) - int64(before.HeapInuse)
	t.Logf("%d MB in, %d records, %d MB of CSV out; heap in use grew by at most %.1f MB",
		rep.Bytes>>20, rep.Records, (sink["characters"].n+sink["character_episodes"].n)>>20, float64(grew)/(1<<20))
	// Reading the object whole would take more than its size; a streamed
	// record is a few KB. The seen-id set grows with the records (150k ids
	// at 200 MB, ~5 MB).
	if limit := min(64<<20, size/2); grew > limit {
		t.Errorf("heap grew by %d MB, want < %d MB", grew>>20, limit>>20)
	}
}

// BenchmarkTransform measures the core on a generated page held in memory
// (`make bench` measures it against the naive approach).
func BenchmarkTransform(b *testing.B) {
	raw, err := io.ReadAll(transformtest.CharacterPage(32 << 20))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Transform(context.Background(), "raw/character/b.json", fetchedAt, bytes.NewReader(raw), countSink{}); err != nil {
			b.Fatal(err)
		}
	}
}
