package samtemplate

// The tests in this file hold template.yaml's Environment to the code: each
// function's variables are derived from the configuration reader its main
// calls (<fn>.ConfigFromEnv, src/cmd/<fn>/main.go) and from the os.Getenv
// calls of that main, not from a list kept by hand.

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extractfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
)

// configReaders are the functions' configuration readers, as their mains
// call them.
var configReaders = map[string]func(getenv func(string) string) (any, error){
	"ExtractFunction":   func(g func(string) string) (any, error) { return extractfn.ConfigFromEnv(g) },
	"TransformFunction": func(g func(string) string) (any, error) { return transformfn.ConfigFromEnv(g) },
	"LoadFunction":      func(g func(string) string) (any, error) { return loadfn.ConfigFromEnv(g) },
	"ExportFunction":    func(g func(string) string) (any, error) { return exportfn.ConfigFromEnv(g) },
	// The range worker is ExportFunction's code with another entry point.
	"ExportRangeFunction": func(g func(string) string) (any, error) { return exportfn.ConfigFromEnv(g) },
}

// sdkVariables are read by the AWS SDK, not by our code; the template
// declares them so that `sam local invoke --env-vars` can set them.
var sdkVariables = []string{"AWS_ENDPOINT_URL_S3"}

// runtimeVariables are set by Lambda or tune the Go runtime; a main may read
// them, but they are no configuration of the pipeline.
func runtimeVariable(name string) bool {
	return strings.HasPrefix(name, "AWS_LAMBDA_") || name == "GOGC" || name == "GOMEMLIMIT"
}

// variablesRead is every environment variable the function's code reads:
// what its configuration reader asks for, once with every variable empty
// and once with every variable set (a set MYSQL_DSN, for one, skips the
// DB_* variables; an empty EXPORT_BUCKET falls back to BUCKET), and what its
// main reads with os.Getenv.
func variablesRead(tb testing.TB, fn string) []string {
	tb.Helper()
	read, ok := configReaders[fn]
	if !ok {
		tb.Fatalf("no configuration reader for %s: add it to configReaders", fn)
	}
	names := readerVariables(read)
	dir := filepath.Join("..", "..", "cmd", strings.ToLower(strings.TrimSuffix(fn, "Function")))
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no main for %s in %s: %v", fn, dir, err)
	}
	getenv := regexp.MustCompile(`os\.(?:Getenv|LookupEnv)\("([A-Z0-9_]+)"\)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, m := range getenv.FindAllSubmatch(src, -1) {
			if name := string(m[1]); !runtimeVariable(name) {
				names[name] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(names))
}

// readerVariables is every variable read asks for, once with every
// variable empty and once with every variable set.
func readerVariables(read func(getenv func(string) string) (any, error)) map[string]bool {
	names := map[string]bool{}
	for _, value := range []string{"", "1"} {
		_, _ = read(func(name string) string { names[name] = true; return value })
	}
	return names
}

// declaredVariables is the function's Environment.Variables, Globals merged.
func declaredVariables(tb testing.TB, tpl *Template, fn string) map[string]any {
	tb.Helper()
	vars, _ := lookupOr(function(tb, tpl, fn), "Environment", "Variables").(map[string]any)
	return vars
}

// TestFunctionsDeclareEveryVariableTheyRead: a variable the code reads but
// the template does not set cannot be tuned per stack nor set by `sam local
// invoke --env-vars`, and its value is invisible to whoever reads the
// template; a variable the template sets but no code reads is a typo.
func TestFunctionsDeclareEveryVariableTheyRead(t *testing.T) {
	tpl := projectTemplate(t)
	for _, fn := range pipelineFunctions {
		t.Run(fn, func(t *testing.T) {
			read := variablesRead(t, fn)
			// The derivation sees the variables, so the checks are not vacuous.
			for _, must := range []string{"BUCKET", "LOG_LEVEL", "S3_FORCE_PATH_STYLE"} {
				if !slices.Contains(read, must) {
					t.Fatalf("derived variables %v lack %s", read, must)
				}
			}
			declared := declaredVariables(t, tpl, fn)
			for _, name := range read {
				if _, ok := declared[name]; !ok {
					t.Errorf("%s reads %s, which template.yaml does not set: add it with the code's default", fn, name)
				}
			}
			for _, name := range slices.Sorted(maps.Keys(declared)) {
				if !slices.Contains(read, name) && !slices.Contains(sdkVariables, name) {
					t.Errorf("template.yaml sets %s for %s, which its code never reads", name, fn)
				}
			}
		})
	}
}

// TestTemplateValuesAreTheCodeDefaults: a variable the template sets only to
// declare it has the code's default, so deploying changes nothing unless an
// operator changes a parameter. The values below are the deployment's own,
// chosen on purpose.
func TestTemplateValuesAreTheCodeDefaults(t *testing.T) {
	tpl := projectTemplate(t)
	deliberate := map[string]string{
		"DB_USER":           "the DbUser parameter",
		"DB_PASSWORD_PARAM": "the DbPasswordParameter parameter",
		"DB_CA_BUNDLE":      "the RDS CA bundle that the build puts beside the bootstrap",
		"EXPORT_RANGE_ROWS": "the ExportRangeRows parameter: fan-out on for the scheduled export",
	}
	// A stack with every required value: a reader that fails without one
	// variable shows that variable is required.
	stack := withParams(deployed, "DbHost", "db.example.internal")
	for _, fn := range pipelineFunctions {
		t.Run(fn, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range resolve(t, tpl, declaredVariables(t, tpl, fn), stack).(map[string]any) {
				s, ok := String(v)
				if !ok {
					t.Fatalf("%s = %v, want text", k, v)
				}
				env[k] = s
			}
			read := configReaders[fn]
			want, err := read(func(name string) string { return env[name] })
			if err != nil {
				t.Fatalf("the template's environment is not a valid configuration: %v", err)
			}
			names := slices.Sorted(maps.Keys(env))
			compared := 0
			for _, name := range names {
				if _, ok := deliberate[name]; ok {
					continue
				}
				got, err := read(func(n string) string {
					if n == name {
						return ""
					}
					return env[n]
				})
				if err != nil {
					continue // required: there is no default to agree with
				}
				compared++
				if !reflect.DeepEqual(got, want) {
					t.Errorf("template.yaml sets %s=%q, which is not the code's default:\n with it  %+v\n unset    %+v", name, env[name], want, got)
				}
			}
			if compared == 0 {
				t.Errorf("no variable of %s compared", fn)
			}
		})
	}
}

// readerVariables follows both branches of a reader that reads a variable
// only when another one is unset, or only when it is set.
func TestReaderVariablesFollowsBothBranches(t *testing.T) {
	got := readerVariables(func(g func(string) string) (any, error) {
		if g("MYSQL_DSN") == "" {
			return g("DB_HOST"), nil
		}
		return g("DSN_OPTIONS"), nil
	})
	if want := []string{"DB_HOST", "DSN_OPTIONS", "MYSQL_DSN"}; !slices.Equal(slices.Sorted(maps.Keys(got)), want) {
		t.Errorf("read %v, want %v", slices.Sorted(maps.Keys(got)), want)
	}
}
