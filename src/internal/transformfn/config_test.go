package transformfn

import (
	"strings"
	"testing"
)

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"BUCKET": "data", "S3_FORCE_PATH_STYLE": "true"}
	c, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil || c != (Config{Bucket: "data", PathStyle: true}) {
		t.Errorf("ConfigFromEnv = %+v, %v", c, err)
	}
	_, err = ConfigFromEnv(func(k string) string { return map[string]string{"S3_FORCE_PATH_STYLE": "maybe"}[k] })
	if err == nil || !strings.Contains(err.Error(), "BUCKET") || !strings.Contains(err.Error(), "S3_FORCE_PATH_STYLE") {
		t.Errorf("missing BUCKET and a bad bool: err = %v, want both reported", err)
	}
}

func TestKeyEscapes(t *testing.T) {
	if got, want := escapeMeta("raw/manual/a+b c 100% ζ.json"), "raw/manual/a+b c 100%25 %CE%B6.json"; got != want {
		t.Errorf("escapeMeta = %q, want %q", got, want)
	}
}
