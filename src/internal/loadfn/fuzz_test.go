package loadfn

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dataeng/rickmorty-pipeline/src/internal/load"
)

// FuzzEncodeKey: any key S3 announces on the load queue comes out of the
// SQS body decoded exactly (EncodeKey is S3's encoding, parseBody the
// handler's reading of it); its quarantine copy stays
// under quarantine/.
func FuzzEncodeKey(f *testing.F) {
	for _, k := range []string{"processed/characters/character/page-0001.csv", "processed/characters/a b+c%.csv", "processed/x/%41%2F.csv",
		"processed/locations/ζ-ünï€-日本.csv", "processed/semi;colon&amp=x?y#z.csv", "processed/characters/", "processed//x.csv", "a", "/"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if key == "" || !utf8.ValidString(key) { // S3 keys are non-empty UTF-8
			return
		}
		m := Message("m", load.ObjectRef{Bucket: "b", Key: key, ETag: "e"}, 1, time.Unix(0, 0))
		n, err := parseBody(m.Body)
		if err != nil || n.testEvent || len(n.records) != 1 {
			t.Fatalf("the notification of %q does not parse: %v", key, err)
		}
		if got := n.records[0].S3.Object.URLDecodedKey; got != key {
			t.Fatalf("key %q came out of the notification as %q", key, got)
		}
		if q := QuarantineKey(key); strings.HasPrefix(key, ProcessedPrefix) && (!strings.HasPrefix(q, QuarantinePrefix) || strings.HasPrefix(q, ProcessedPrefix)) {
			t.Fatalf("QuarantineKey(%q) = %q", key, q)
		}
	})
}
