package awsclient

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCopySource(t *testing.T) {
	for _, c := range []struct{ bucket, key, version, want string }{
		{"b", "raw/a+b c%ζ.json", "v1", "b/raw/a%2Bb%20c%25%CE%B6.json?versionId=v1"},
		{"b", "raw/x.json", "null", "b/raw/x.json"},
		{"b", "processed/x?y#z.csv", "", "b/processed/x%3Fy%23z.csv"},
		{"b", "k", "a+b/c", "b/k?versionId=a%2Bb%2Fc"},
	} {
		if got := CopySource(c.bucket, c.key, c.version); got != c.want {
			t.Errorf("CopySource(%q, %q, %q) = %q, want %q", c.bucket, c.key, c.version, got, c.want)
		}
	}
}

// Any key decodes back exactly, with no '+', space, '?', '#' or control
// byte left for a server to misread.
func FuzzCopySource(f *testing.F) {
	for _, k := range []string{"raw/character/page-0001.json", "raw/a b+c%.json", "raw/%41%2F.json", "processed/ζ-ünï€-日本.csv", "semi;colon&amp=x?y#z", "/"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if key == "" || !utf8.ValidString(key) { // S3 keys are non-empty UTF-8
			return
		}
		cs := CopySource("b", key, "")
		back, err := url.PathUnescape(strings.TrimPrefix(cs, "b/"))
		if err != nil || back != key {
			t.Fatalf("CopySource(%q) = %q decodes to %q (%v)", key, cs, back, err)
		}
		for i := 0; i < len(cs); i++ {
			if c := cs[i]; c <= ' ' || c >= 0x7f || c == '+' || c == '?' || c == '#' {
				t.Fatalf("CopySource(%q) = %q holds %q", key, cs, c)
			}
		}
	})
}
