package reliability

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extractfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
)

// hostileConfig is one environment given to a function's configuration
// loader, and what its error must name (nil: the loader must accept it).
type hostileConfig struct {
	function string
	env      map[string]string
	want     []string
}

var hostileConfigCorpus = []hostileConfig{
	{"transform", map[string]string{}, []string{"BUCKET is required"}},
	{"transform", map[string]string{"BUCKET": " \t\n", "S3_FORCE_PATH_STYLE": "maybe"}, []string{"BUCKET is required", `S3_FORCE_PATH_STYLE="maybe" is not a boolean`}},
	{"transform", map[string]string{"BUCKET": " data-bucket ", "S3_FORCE_PATH_STYLE": "TRUE"}, nil},
	{"load", map[string]string{}, []string{"BUCKET is required", "DB_HOST is required", "DB_NAME is required", "DB_SECRET_ARN or DB_PASSWORD_PARAM"}},
	{"load", map[string]string{
		"BUCKET": "b", "DB_HOST": "h", "DB_NAME": "d", "DB_PASSWORD_PARAM": "/p",
		"LOAD_DEADLINE_RESERVE": "-5s", "DB_MAX_OPEN_CONNS": "0", "DB_CONN_MAX_LIFETIME": "forever", "DB_PORT": "3306abc", "DB_TLS": "TRUE",
	}, []string{"LOAD_DEADLINE_RESERVE", "DB_MAX_OPEN_CONNS=0 is outside", "DB_CONN_MAX_LIFETIME", `DB_PORT="3306abc" is not an integer`, `DB_TLS="TRUE" must be one of`}},
	{"load", map[string]string{"BUCKET": "b", "DB_HOST": "h", "DB_NAME": "d", "DB_PORT": "99999", "DB_SECRET_ARN": "arn:x", "DB_MAX_OPEN_CONNS": "1e3"},
		[]string{"DB_PORT=99999 is outside [1, 65535]", `DB_MAX_OPEN_CONNS="1e3" is not an integer`}},
	{"load", map[string]string{"BUCKET": "b", "MYSQL_DSN": "not a DSN; DROP TABLE characters"}, nil}, // parsed (and refused) when connecting
	{"export", map[string]string{
		"EXPORT_PREFIX": "../exports/", "EXPORT_TABLES": " , ,", "EXPORT_LAG": "-1s", "EXPORT_WATERMARK_COLUMNS": "orders", "EXPORT_CHUNK_ROWS": "1e3",
		"EXPORT_ROW_GROUP_ROWS": "99999999999999999999", "EXPORT_PARQUET_COMPRESSION": "zstd; rm -rf /", "EXPORT_DEADLINE_MARGIN": "30", "MYSQL_DSN": "x",
	}, []string{"BUCKET is required", "EXPORT_PREFIX", "EXPORT_TABLES lists no table", "EXPORT_LAG", "EXPORT_WATERMARK_COLUMNS", "EXPORT_CHUNK_ROWS",
		"EXPORT_ROW_GROUP_ROWS", "EXPORT_PARQUET_COMPRESSION", "EXPORT_DEADLINE_MARGIN"}},
	{"export", map[string]string{"BUCKET": "b", "MYSQL_DSN": "x", "EXPORT_PREFIX": "raw/"}, []string{`export prefix "raw/" overlaps raw/`}},
	{"export", map[string]string{"BUCKET": "b", "MYSQL_DSN": "x", "EXPORT_PREFIX": "processed/exports/"}, []string{`overlaps processed/`}},
	{"export", map[string]string{"BUCKET": "b", "MYSQL_DSN": "x", "EXPORT_PREFIX": "exports"}, []string{`must be non-empty, end with "/"`}},
	{"export", map[string]string{"BUCKET": "b", "MYSQL_DSN": "x", "EXPORT_PREFIX": "a/./b/"}, []string{`has an empty, "." or ".." segment`}},
	{"export", map[string]string{"BUCKET": "b", "MYSQL_DSN": "x", "EXPORT_TABLES": "characters`; DROP TABLE x; --"}, nil}, // a name looked up, never spliced
	{"extract", map[string]string{"CRAWL_CONCURRENCY": "１", "REQUEST_TIMEOUT": "0s", "RETRY_MAX": "-1", "RETRY_BUDGET": "1e9"},
		[]string{"BUCKET is required", `CRAWL_CONCURRENCY="１" is not an integer`, "REQUEST_TIMEOUT must be positive", "RETRY_MAX=-1 is outside", `RETRY_BUDGET="1e9" is not an integer`}},
	{"extract", map[string]string{"BUCKET": "b", "CRAWL_CONCURRENCY": "100000", "REQUEST_TIMEOUT": "1h1h1h1h", "RETRY_MAX": "21"},
		[]string{"CRAWL_CONCURRENCY=100000 is outside [1, 64]", "RETRY_MAX=21 is outside [0, 20]"}},
}

// hostileLoadConfig runs a function's configuration loader.
func hostileLoadConfig(function string, env map[string]string) (err error) {
	getenv := func(k string) string { return env[k] }
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	switch function {
	case "transform":
		_, err = transformfn.ConfigFromEnv(getenv)
	case "load":
		_, err = loadfn.ConfigFromEnv(getenv)
	case "export":
		_, err = exportfn.ConfigFromEnv(getenv)
	case "extract":
		_, err = extractfn.ConfigFromEnv(getenv)
	default:
		err = fmt.Errorf("no function %q", function)
	}
	return err
}

// TestReliabilityHostileConfiguration gives every function's configuration
// loader hostile environments: blanks, bad numbers, fullwidth digits,
// negative durations, shell and SQL text, prefixes that would trigger the
// pipeline's own functions.
func TestReliabilityHostileConfiguration(t *testing.T) {
	row := Case(t, "environments for the four functions: blanks, whitespace, bad and out-of-range numbers, fullwidth digits, negative durations, shell and SQL text, export prefixes under raw/ or processed/, '..' segments",
		"the cold start fails with one error naming every bad variable and why; no panic; odd but valid values accepted")
	refused := 0
	for i, c := range hostileConfigCorpus {
		err := hostileLoadConfig(c.function, c.env)
		if err != nil && strings.HasPrefix(err.Error(), "panic") {
			t.Errorf("%s #%d: %v", c.function, i, err)
			continue
		}
		if c.want == nil {
			if err != nil {
				t.Errorf("%s #%d: refused %v: %v", c.function, i, c.env, err)
			}
			continue
		}
		refused++
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s #%d: error %v does not say %q", c.function, i, err, w)
			}
		}
	}
	row.Notef("%d environments, %d refused with every problem named", len(hostileConfigCorpus), refused)
}
