// Package cmd_test guards what the Lambda binaries link.
package cmd_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/dataeng/rickmorty-pipeline/src/"

// localOnly are the packages that exist for the local CLI and the tests:
// an S3 emulator, an embedded MySQL engine, a fake API, the food-delivery
// seed, the local runner, the template parser, the Lambda emulator and its
// bootstrap builder, the web page, test support. No Lambda binary may link
// one.
var localOnly = []string{
	"internal/locals3", "internal/localmysql", "internal/fakeapi", "internal/fooddb", "internal/localrun",
	"internal/samtemplate", "internal/lambdaemu", "internal/lambdabuild", "internal/dashboard", "internal/reliability",
	"internal/testenv", "internal/bucket/buckettest", "internal/load/loadtest", "internal/transform/transformtest",
	"internal/secrets/secretstest",
}

// heavy are third-party modules only the local stack and tests may use.
var heavy = []string{"github.com/dolthub/", "github.com/johannesboyne/gofakes3", "github.com/chromedp/", "github.com/sirupsen/logrus"}

// Every Lambda binary links only what it needs: no local-only package, no
// embedded engine or S3 emulator, and Transform no database code at all.
func TestLambdaBinariesLinkOnlyWhatTheyNeed(t *testing.T) {
	for _, fn := range []string{"extract", "transform", "load", "export", "exportrange"} {
		t.Run(fn, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-tags", "lambda.norpc", "./"+fn).CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps ./src/cmd/%s: %v\n%s", fn, err, out)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 50 {
				t.Fatalf("go list -deps listed only %d packages: %v", len(deps), deps)
			}
			forbidden := append([]string(nil), heavy...)
			for _, p := range localOnly {
				forbidden = append(forbidden, module+p)
			}
			if fn == "transform" {
				forbidden = append(forbidden, "database/sql", "github.com/go-sql-driver/", "github.com/parquet-go/")
			}
			if fn == "extract" {
				forbidden = append(forbidden, "database/sql", "github.com/parquet-go/")
			}
			for _, d := range deps {
				for _, f := range forbidden {
					if d == f || strings.HasPrefix(d, f+"/") || strings.HasSuffix(f, "/") && strings.HasPrefix(d, f) {
						t.Errorf("%s links %s", fn, d)
					}
				}
				if strings.HasPrefix(d, module+"cmd/") && d != module+"cmd/"+fn {
					t.Errorf("%s links another command: %s", fn, d)
				}
			}
		})
	}
}
