package bucket

import (
	"context"
	"strings"
	"testing"
)

// The part size doubles every 2,000 parts, so 10,000 parts reach far past
// what a table export writes; the 10,001st part is refused.
func TestPartLimits(t *testing.T) {
	w := New(nil, "b").NewWriter(context.Background(), "k", WriteOptions{PartSize: MinPartSize})
	for _, c := range []struct {
		part int32
		size int
	}{{1, MinPartSize}, {2000, MinPartSize}, {2001, 2 * MinPartSize}, {4001, 4 * MinPartSize}, {10000, 16 * MinPartSize}} {
		if got := w.partSize(c.part); got != c.size {
			t.Errorf("part %d: %d bytes, want %d", c.part, got, c.size)
		}
	}
	var total int64
	for n := int32(1); n <= MaxParts; n++ {
		total += int64(w.partSize(n))
	}
	if total < 300<<30 {
		t.Errorf("10,000 parts hold %d GiB", total>>30)
	}
	w.uploadID, w.partNum = "upload", MaxParts
	if err := w.sendPart(); err == nil || !strings.Contains(err.Error(), "more than 10000 parts") {
		t.Errorf("part 10,001: %v", err)
	}
}
