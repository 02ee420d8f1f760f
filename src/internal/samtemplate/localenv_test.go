package samtemplate

// The test in this file reads template.yaml and events/env.json together, as
// `sam local invoke --env-vars events/env.json` resolves them, and checks
// that every variable a function's code then reads and that names a
// resource (a bucket, a queue, a database, an endpoint, a parameter or
// secret) points into the local stack: `make invoke-*` must never touch a
// bucket or database of a deployed stack, nor one that does not exist.

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// The local stack, as events/env.json addresses it: the bucket of
// `pipeline run` and `pipeline serve`, on this machine (host.docker.internal
// is this machine seen from SAM's Docker container).
const localStackBucket = "rick-morty-local"

var localStackHosts = []string{"127.0.0.1", "localhost", "::1", "host.docker.internal"}

// notAResource are variables whose names look like a resource but that name
// something outside the stack on purpose.
var notAResource = map[string]string{
	"API_BASE_URL": "the API Extract crawls: the real one, or the fake API given by --parameter-overrides",
}

// resourceKind says what kind of resource the variable name names, or "".
func resourceKind(name string) string {
	switch {
	case notAResource[name] != "":
		return ""
	case strings.Contains(name, "BUCKET"):
		return "bucket"
	case strings.Contains(name, "QUEUE"):
		return "queue"
	case strings.HasSuffix(name, "_DSN"):
		return "dsn"
	case strings.HasSuffix(name, "_HOST"):
		return "host"
	case strings.Contains(name, "ENDPOINT") || strings.HasSuffix(name, "_URL"):
		return "endpoint"
	case strings.HasSuffix(name, "_ARN"), strings.HasSuffix(name, "_PARAM"):
		return "aws" // a Secrets Manager secret, an SSM parameter: none runs locally
	}
	return ""
}

// outsideLocalStack says why value, of a variable of kind, is outside the
// local stack, or "" when it is inside. An empty value names nothing (the
// code then falls back to another variable, which is checked on its own).
func outsideLocalStack(kind, value string) string {
	if value == "" {
		return ""
	}
	localHost := func(h string) bool { return slices.Contains(localStackHosts, strings.ToLower(h)) }
	switch kind {
	case "bucket":
		if value != localStackBucket {
			return "is not the local stack's bucket " + localStackBucket
		}
	case "host":
		if !localHost(value) {
			return "is not this machine"
		}
	case "endpoint":
		u, err := url.Parse(value)
		if err != nil || u.Host == "" {
			return "is not a URL"
		}
		if !localHost(u.Hostname()) {
			return "is not on this machine"
		}
	case "dsn":
		dc, err := mysql.ParseDSN(value)
		if err != nil {
			return "is not a DSN"
		}
		host, _, err := net.SplitHostPort(dc.Addr)
		if err != nil {
			host = dc.Addr
		}
		if dc.Net != "tcp" || !localHost(host) {
			return "is not a database on this machine"
		}
	default: // queues, ARNs, parameters: nothing of the kind runs locally
		return "names a resource of a deployed stack, which does not run locally"
	}
	return ""
}

// localInvokeProblems resolves each pipeline function's environment as `sam
// local invoke --env-vars` does with envJSON, and lists every variable the
// function's code reads that names a resource outside the local stack. It
// also returns how many variables it checked.
func localInvokeProblems(tb testing.TB, tpl *Template, envJSON []byte) (problems []string, checked int) {
	tb.Helper()
	ev, err := ParseEnvVars(envJSON)
	if err != nil {
		tb.Fatal(err)
	}
	for _, fn := range pipelineFunctions {
		c, err := tpl.FunctionConfig(fn, LocalStack(nil))
		if err != nil {
			tb.Fatal(err)
		}
		ev.Apply(fn, c.Environment)
		// What the code reads with this environment (a set MYSQL_DSN skips
		// the DB_* settings), and what the SDK reads.
		read := map[string]bool{}
		if _, err := configReaders[fn](func(name string) string { read[name] = true; return c.Environment[name] }); err != nil {
			problems = append(problems, fmt.Sprintf("%s: the resolved environment is not a valid configuration: %v", fn, err))
		}
		for _, name := range sdkVariables {
			read[name] = true
		}
		for _, name := range slices.Sorted(maps.Keys(read)) {
			kind := resourceKind(name)
			if kind == "" {
				continue
			}
			checked++
			if why := outsideLocalStack(kind, c.Environment[name]); why != "" {
				problems = append(problems, fmt.Sprintf("%s: %s resolves to %q, which %s", fn, name, c.Environment[name], why))
			}
		}
	}
	return problems, checked
}

// TestLocalInvokeStaysInTheLocalStack: with events/env.json, every variable
// naming a resource resolves into the local stack.
func TestLocalInvokeStaysInTheLocalStack(t *testing.T) {
	data, err := os.ReadFile("../../../events/env.json")
	if err != nil {
		t.Fatal(err)
	}
	problems, checked := localInvokeProblems(t, projectTemplate(t), data)
	for _, p := range problems {
		t.Error(p)
	}
	// BUCKET (or EXPORT_BUCKET), the endpoint, and the DSNs of Load and Export.
	if checked < 2*len(pipelineFunctions)+2 {
		t.Errorf("only %d variables checked", checked)
	}
}

// TestLocalInvokeCheckFailsOnTheOldEnvJSON: the env.json of before issue 11
// set BUCKET for ExportFunction but not EXPORT_BUCKET, which `sam local`
// resolved to the bucket of a stack named "local"; the check finds exactly
// that.
func TestLocalInvokeCheckFailsOnTheOldEnvJSON(t *testing.T) {
	data, err := os.ReadFile("testdata/env-before-issue-11.json")
	if err != nil {
		t.Fatal(err)
	}
	problems, _ := localInvokeProblems(t, projectTemplate(t), data)
	want := `ExportFunction: EXPORT_BUCKET resolves to "local-data-123456789012-us-east-1", which is not the local stack's bucket rick-morty-local`
	// The other problems are the fan-out's, which that env.json predates:
	// the range queue's URL, and the range worker it has no entry for.
	var others []string
	for _, p := range problems {
		if p != want && !strings.HasPrefix(p, "ExportRangeFunction: ") && !strings.HasPrefix(p, "ExportFunction: EXPORT_RANGE_QUEUE_URL ") {
			others = append(others, p)
		}
	}
	if !slices.Contains(problems, want) || len(others) != 0 {
		t.Errorf("problems:\n%s\nwant:\n%s\n(and the fan-out's only)", strings.Join(problems, "\n"), want)
	}
}

func TestOutsideLocalStack(t *testing.T) {
	for _, c := range []struct {
		name, value string
		outside     bool
	}{
		{"BUCKET", "rick-morty-local", false},
		{"BUCKET", "rm-prod-data-123456789012-eu-west-1", true},
		{"EXPORT_BUCKET", "", false},
		{"AWS_ENDPOINT_URL_S3", "http://host.docker.internal:9090", false},
		{"AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000", false},
		{"AWS_ENDPOINT_URL_S3", "https://s3.eu-west-1.amazonaws.com", true},
		{"AWS_ENDPOINT_URL_S3", "not a url", true},
		{"MYSQL_DSN", "root@tcp(host.docker.internal:3307)/rm", false},
		{"MYSQL_DSN", "admin:pw@tcp(db.abc.eu-west-1.rds.amazonaws.com:3306)/rm", true},
		{"MYSQL_DSN", "root@unix(/run/mysqld/mysqld.sock)/rm", true},
		{"DB_HOST", "localhost", false},
		{"DB_HOST", "db.internal", true},
		{"LOAD_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/q", true},
		{"DB_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:x", true},
		{"DB_PASSWORD_PARAM", "/rickmorty-pipeline/db/password", true},
		{"API_BASE_URL", "https://rickandmortyapi.com/api", false},
		{"LOG_LEVEL", "debug", false},
	} {
		kind := resourceKind(c.name)
		if got := kind != "" && outsideLocalStack(kind, c.value) != ""; got != c.outside {
			t.Errorf("%s=%q: outside = %v, want %v", c.name, c.value, got, c.outside)
		}
	}
}
