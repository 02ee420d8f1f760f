package samtemplate

// The tests in this file check the project's template.yaml: the wiring of the
// pipeline (runtimes, events and filters, queues, failure paths, logs), the
// policy rules (least privilege, no recursion) and its fit with the Makefile.
// Values are evaluated for a stack with the parameters' defaults, and for
// stacks with overrides where a condition decides something.

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

const (
	templatePath = "../../../template.yaml"
	makefilePath = "../../../Makefile"
)

// deployed is the stack the checks evaluate the template for.
var deployed = Stack{Name: "rm-test", AccountID: "123456789012", Region: "eu-west-1", Partition: "aws"}

// defaultBucket is the data bucket's name in the deployed stack.
const defaultBucket = "rm-test-data-123456789012-eu-west-1"

const (
	testSecretArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds-db-credentials-AbCdEf"
	vpcManagedArn = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
)

// Stacks that flip each condition of the template.
var (
	vpcStack     = withParams(deployed, "SubnetIds", "subnet-1,subnet-2", "SecurityGroupIds", "sg-1")
	secretStack  = withParams(deployed, "DbSecretArn", testSecretArn)
	ssmUserStack = withParams(deployed, "DbUserParameter", "/rm/db/user")
	namedStack   = withParams(deployed, "BucketName", "my-own-bucket", "ExportPrefix", "exports/team-a/")
	allStacks    = map[string]Stack{"defaults": deployed, "vpc": vpcStack, "secret": secretStack, "ssm user": ssmUserStack, "named bucket": namedStack}
)

// The pipeline's functions, in the order data flows through them.
var pipelineFunctions = []string{"ExtractFunction", "TransformFunction", "LoadFunction", "ExportFunction", "ExportRangeFunction"}

func projectTemplate(tb testing.TB) *Template {
	tb.Helper()
	tpl, err := Load(templatePath)
	if err != nil {
		tb.Fatalf("loading the project template: %v", err)
	}
	return tpl
}

func resolve(tb testing.TB, tpl *Template, v any, s Stack) any {
	tb.Helper()
	out, err := tpl.Resolve(v, s)
	if err != nil {
		tb.Fatalf("resolving %v: %v", v, err)
	}
	return out
}

func resolveString(tb testing.TB, tpl *Template, v any, s Stack) string {
	tb.Helper()
	out, err := tpl.ResolveString(v, s)
	if err != nil {
		tb.Fatalf("resolving %v to text: %v", v, err)
	}
	return out
}

func function(tb testing.TB, tpl *Template, id string) map[string]any {
	tb.Helper()
	props, err := tpl.FunctionProperties(id)
	if err != nil {
		tb.Fatal(err)
	}
	return props
}

func lookup(tb testing.TB, v any, p ...string) any {
	tb.Helper()
	got, ok := Lookup(v, p...)
	if !ok {
		tb.Fatalf("%s is missing", strings.Join(p, "."))
	}
	return got
}

func mustInt(tb testing.TB, v any, what string) int {
	tb.Helper()
	n, ok := Int(v)
	if !ok {
		tb.Fatalf("%s = %v, want a literal integer", what, v)
	}
	return n
}

func refTo(tb testing.TB, tpl *Template, v any, wantType, what string) string {
	tb.Helper()
	id, ok := ReferencedResource(v)
	if !ok {
		tb.Fatalf("%s = %v, want a Ref or Fn::GetAtt of a %s", what, v, wantType)
	}
	r, ok := tpl.Resource(id)
	if !ok || r.Type != wantType {
		tb.Fatalf("%s refers to %s, which is not a %s of the template", what, id, wantType)
	}
	return id
}

// bucketNameFor is the data bucket's name in the stack s.
func bucketNameFor(tb testing.TB, tpl *Template, s Stack) string {
	tb.Helper()
	b, _ := tpl.Resource("DataBucket")
	return resolveString(tb, tpl, b.Properties["BucketName"], s)
}

func TestGlobals(t *testing.T) {
	tpl := projectTemplate(t)
	g, ok := tpl.Globals["Function"].(map[string]any)
	if !ok {
		t.Fatal("Globals.Function is missing")
	}
	checks := []struct {
		path []string
		want any
	}{
		{[]string{"Runtime"}, "provided.al2023"},
		{[]string{"Architectures"}, []any{"arm64"}},
		{[]string{"Handler"}, "bootstrap"},
		{[]string{"LoggingConfig", "LogFormat"}, "JSON"},
		{[]string{"LoggingConfig", "ApplicationLogLevel"}, map[string]any{"Ref": "LogLevel"}},
	}
	for _, c := range checks {
		t.Run("Globals."+strings.Join(c.path, "."), func(t *testing.T) {
			if got := lookup(t, g, c.path...); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %#v, want %#v", got, c.want)
			}
		})
	}
	if n := mustInt(t, lookup(t, g, "Timeout"), "Globals.Function.Timeout"); n < 3 || n > 900 {
		t.Errorf("Globals.Function.Timeout = %d, want 3..900", n)
	}
	if n := mustInt(t, lookup(t, g, "MemorySize"), "Globals.Function.MemorySize"); n < 128 || n > 10240 {
		t.Errorf("Globals.Function.MemorySize = %d, want 128..10240", n)
	}

	// What each function ends up with once SAM merges Globals (a function-level
	// Architectures list would be appended, not substituted).
	for _, id := range tpl.ResourceIDs(FunctionType) {
		t.Run(id, func(t *testing.T) {
			fn := function(t, tpl, id)
			for _, c := range checks[:4] {
				if got := lookup(t, fn, c.path...); !reflect.DeepEqual(got, c.want) {
					t.Errorf("%s = %#v, want %#v", strings.Join(c.path, "."), got, c.want)
				}
			}
			if lvl := resolveString(t, tpl, lookup(t, fn, "LoggingConfig", "ApplicationLogLevel"), deployed); lvl != "INFO" {
				t.Errorf("ApplicationLogLevel = %q, want INFO by default", lvl)
			}
			timeout := mustInt(t, lookup(t, fn, "Timeout"), "Timeout")
			if timeout < 3 || timeout > 900 {
				t.Errorf("Timeout = %d, want 3..900", timeout)
			}
		})
	}
}

func TestFunctionsBuildWithMakefile(t *testing.T) {
	tpl := projectTemplate(t)
	got := tpl.ResourceIDs(FunctionType)
	want := slices.Clone(pipelineFunctions)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("functions = %v, want %v", got, want)
	}
	for _, id := range got {
		t.Run(id, func(t *testing.T) {
			r, _ := tpl.Resource(id)
			if r.Properties["CodeUri"] != "." {
				t.Errorf("CodeUri = %v, want .", r.Properties["CodeUri"])
			}
			if r.Metadata["BuildMethod"] != "makefile" {
				t.Errorf("Metadata.BuildMethod = %v, want makefile", r.Metadata["BuildMethod"])
			}
			name := resolveString(t, tpl, r.Properties["FunctionName"], deployed)
			want := deployed.Name + "-" + strings.ToLower(strings.TrimSuffix(id, "Function"))
			if name != want {
				t.Errorf("FunctionName = %q, want %q", name, want)
			}
		})
	}
}

func TestMakefileHasBuildTargetPerFunction(t *testing.T) {
	tpl := projectTemplate(t)
	mk, err := os.ReadFile(makefilePath)
	if err != nil {
		t.Fatalf("reading the Makefile: %v", err)
	}
	for _, id := range tpl.ResourceIDs(FunctionType) {
		target := regexp.MustCompile(`(?m)^build-` + regexp.QuoteMeta(id) + `\s*:`)
		if !target.Match(mk) {
			t.Errorf("Makefile has no build-%s target (sam build runs it for BuildMethod makefile)", id)
		}
	}
}

func TestParameterDefaults(t *testing.T) {
	tpl := projectTemplate(t)
	want := []struct{ name, typ, def string }{
		{"Stage", "String", "dev"},
		{"BucketName", "String", ""},
		{"ApiBaseUrl", "String", "https://rickandmortyapi.com/api"},
		{"ExtractSchedule", "String", "rate(1 day)"},
		{"ExportSchedule", "String", "rate(4 hours)"},
		{"CrawlConcurrency", "Number", "4"},
		{"DbHost", "String", ""},
		{"DbPort", "Number", "3306"},
		{"DbName", "String", "rickmorty"},
		{"DbUserParameter", "String", ""},
		{"DbPasswordParameter", "String", "/rickmorty-pipeline/db/password"},
		{"DbSecretArn", "String", ""},
		{"SubnetIds", "CommaDelimitedList", ""},
		{"SecurityGroupIds", "CommaDelimitedList", ""},
		{"ExportTables", "String", "characters,locations,episodes,character_episodes"},
		{"ExportPrefix", "String", "exports/"},
		{"ExportLag", "String", "30s"},
		{"ExportWatermarkColumns", "String", ""},
		{"ExportParquetCompression", "String", "zstd"},
		{"LoadMaxConcurrency", "Number", "2"},
		{"LogLevel", "String", "INFO"},
	}
	for _, w := range want {
		t.Run(w.name, func(t *testing.T) {
			p, ok := tpl.Parameters[w.name]
			if !ok {
				t.Fatalf("parameter %s is missing", w.name)
			}
			if p.Type != w.typ || !p.HasDefault || p.Default != w.def {
				t.Errorf("%s = %s default %q (has default: %v), want %s default %q", w.name, p.Type, p.Default, p.HasDefault, w.typ, w.def)
			}
		})
	}
	if p := tpl.Parameters["LoadMaxConcurrency"]; mustInt(t, p.Properties["MinValue"], "LoadMaxConcurrency.MinValue") < 2 {
		t.Error("LoadMaxConcurrency.MinValue < 2: SQS ScalingConfig.MaximumConcurrency must be at least 2")
	}
	if p := tpl.Parameters["LogRetentionDays"]; !p.HasDefault || mustInt(t, p.Default, "LogRetentionDays.Default") <= 0 {
		t.Errorf("LogRetentionDays = %+v, want a positive default", p)
	}

	// Every parameter deploys with its default: the default satisfies the
	// parameter's own constraints.
	for name, p := range tpl.Parameters {
		if !p.HasDefault {
			t.Errorf("parameter %s has no default", name)
			continue
		}
		if p.AllowedPattern != "" {
			re, err := regexp.Compile(p.AllowedPattern)
			if err != nil {
				t.Errorf("parameter %s: AllowedPattern %q: %v", name, p.AllowedPattern, err)
			} else if !re.MatchString(p.Default) {
				t.Errorf("parameter %s: default %q does not match its AllowedPattern %q", name, p.Default, p.AllowedPattern)
			}
		}
		if len(p.AllowedValues) > 0 && !slices.Contains(p.AllowedValues, p.Default) {
			t.Errorf("parameter %s: default %q is not one of %v", name, p.Default, p.AllowedValues)
		}
		if p.Type == "Number" {
			n := mustInt(t, p.Default, name+".Default")
			if lo, ok := Int(p.Properties["MinValue"]); ok && n < lo {
				t.Errorf("parameter %s: default %d < MinValue %d", name, n, lo)
			}
			if hi, ok := Int(p.Properties["MaxValue"]); ok && n > hi {
				t.Errorf("parameter %s: default %d > MaxValue %d", name, n, hi)
			}
		}
	}
}

// TestReferences is the check cfn-lint would do first: every name the
// template uses exists, and every parameter and condition is used.
func TestReferences(t *testing.T) {
	tpl := projectTemplate(t)
	usedParams := map[string]bool{}
	usedConds := map[string]bool{}
	subVar := regexp.MustCompile(`\$\{([^!}][^}]*)\}`)
	isPseudo := func(name string) bool { return strings.HasPrefix(name, "AWS::") }
	checkName := func(where, name string, locals map[string]any) {
		if _, ok := locals[name]; ok {
			return
		}
		if res, _, dotted := strings.Cut(name, "."); dotted {
			if _, ok := tpl.Resources[res]; !ok {
				t.Errorf("%s: ${%s} names no resource %s", where, name, res)
			}
			return
		}
		switch {
		case isPseudo(name):
		case tpl.Parameters[name].Type != "":
			usedParams[name] = true
		case tpl.Resources[name].Type != "":
		default:
			t.Errorf("%s: %s names no parameter or resource", where, name)
		}
	}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(where, e)
			}
		case map[string]any:
			if !isIntrinsic(x) {
				for k, e := range x {
					walk(where+"."+k, e)
				}
				return
			}
			for fn, arg := range x {
				switch fn {
				case "Ref":
					checkName(where, arg.(string), nil)
				case "Condition":
					name, _ := arg.(string)
					if _, ok := tpl.Conditions[name]; !ok {
						t.Errorf("%s: no condition %s", where, name)
					}
					usedConds[name] = true
				case "Fn::GetAtt":
					id, _ := ReferencedResource(x)
					if _, ok := tpl.Resources[id]; !ok {
						t.Errorf("%s: Fn::GetAtt of unknown resource %s", where, id)
					}
				case "Fn::If":
					l, _ := arg.([]any)
					name, _ := l[0].(string)
					if _, ok := tpl.Conditions[name]; !ok {
						t.Errorf("%s: Fn::If on unknown condition %s", where, name)
					}
					usedConds[name] = true
					walk(where, l[1:])
				case "Fn::Sub":
					text, locals := "", map[string]any{}
					switch s := arg.(type) {
					case string:
						text = s
					case []any:
						text, _ = s[0].(string)
						locals, _ = s[1].(map[string]any)
						walk(where, s[1])
					}
					for _, m := range subVar.FindAllStringSubmatch(text, -1) {
						checkName(where, m[1], locals)
					}
				default:
					walk(where, arg)
				}
			}
		}
	}
	walk("Globals", tpl.Globals)
	walk("Conditions", tpl.Conditions)
	walk("Outputs", tpl.Tree["Outputs"])
	for id, r := range tpl.Resources {
		walk(id, r.Properties)
		for _, d := range r.DependsOn {
			if _, ok := tpl.Resources[d]; !ok {
				t.Errorf("%s: DependsOn names no resource %s", id, d)
			}
		}
		if r.Condition != "" {
			if _, ok := tpl.Conditions[r.Condition]; !ok {
				t.Errorf("%s: no condition %s", id, r.Condition)
			}
			usedConds[r.Condition] = true
		}
	}
	for name := range tpl.Parameters {
		if !usedParams[name] {
			t.Errorf("parameter %s is never used", name)
		}
	}
	for name := range tpl.Conditions {
		if !usedConds[name] {
			t.Errorf("condition %s is never used", name)
		}
	}
	for name, s := range allStacks {
		for c := range tpl.Conditions {
			if _, err := tpl.Condition(c, s); err != nil {
				t.Errorf("stack %q: condition %s: %v", name, c, err)
			}
		}
	}
}

func TestEnvironment(t *testing.T) {
	tpl := projectTemplate(t)
	common := map[string]string{"BUCKET": defaultBucket, "LOG_LEVEL": "INFO", "S3_FORCE_PATH_STYLE": "false", "AWS_ENDPOINT_URL_S3": ""}
	db := map[string]string{
		"MYSQL_DSN": "", "DB_HOST": "", "DB_PORT": "3306", "DB_NAME": "rickmorty", "DB_USER": "pipeline",
		"DB_USER_PARAM": "", "DB_PASSWORD_PARAM": "/rickmorty-pipeline/db/password", "DB_SECRET_ARN": "",
		"DB_TLS": "true", "DB_CA_BUNDLE": "/var/task/rds-ca-bundle.pem",
		"DB_MAX_OPEN_CONNS": "4", "DB_CONN_MAX_LIFETIME": "5m",
	}
	load := map[string]string{"LOAD_DEADLINE_RESERVE": "5s", "LOAD_PATH": ""}
	export := map[string]string{
		"EXPORT_BUCKET": defaultBucket, "EXPORT_PREFIX": "exports/", "EXPORT_LAG": "30s",
		"EXPORT_TABLES":            "characters,locations,episodes,character_episodes",
		"EXPORT_WATERMARK_COLUMNS": "", "EXPORT_PARQUET_COMPRESSION": "zstd", "EXPORT_CHUNK_ROWS": "100000",
		"EXPORT_ROW_GROUP_ROWS": "131072", "EXPORT_DEADLINE_MARGIN": "30s",
		"EXPORT_RANGE_ROWS": "1000000", "EXPORT_RANGE_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/rm-test-export-ranges",
	}
	exportRange := map[string]string{"EXPORT_RANGE_ROWS": "0", "EXPORT_RANGE_QUEUE_URL": ""}
	extract := map[string]string{
		"API_BASE_URL": "https://rickandmortyapi.com/api", "CRAWL_CONCURRENCY": "4",
		"REQUEST_TIMEOUT": "10s", "RETRY_MAX": "5", "RETRY_BUDGET": "100",
	}
	join := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	tests := []struct {
		fn    string
		stack Stack
		want  map[string]string
	}{
		{"ExtractFunction", deployed, join(common, extract)},
		{"TransformFunction", deployed, common},
		{"LoadFunction", deployed, join(common, db, load)},
		{"ExportFunction", deployed, join(common, db, export)},
		// A secret replaces the SSM parameters: exactly one source of credentials.
		{"LoadFunction", secretStack, join(common, db, load, map[string]string{"DB_PASSWORD_PARAM": "", "DB_SECRET_ARN": testSecretArn})},
		{"ExportFunction", ssmUserStack, join(common, db, export, map[string]string{"DB_USER_PARAM": "/rm/db/user"})},
		// A given bucket name reaches every variable naming the bucket.
		{"TransformFunction", namedStack, join(common, map[string]string{"BUCKET": "my-own-bucket"})},
		{"ExportFunction", namedStack, join(common, db, export, map[string]string{"BUCKET": "my-own-bucket", "EXPORT_BUCKET": "my-own-bucket", "EXPORT_PREFIX": "exports/team-a/"})},
		{"ExportRangeFunction", deployed, join(common, db, export, exportRange)},
		{"ExportRangeFunction", namedStack, join(common, db, export, exportRange, map[string]string{"BUCKET": "my-own-bucket", "EXPORT_BUCKET": "my-own-bucket", "EXPORT_PREFIX": "exports/team-a/"})},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %v", tt.fn, tt.stack.Parameters), func(t *testing.T) {
			vars := resolve(t, tpl, lookup(t, function(t, tpl, tt.fn), "Environment", "Variables"), tt.stack)
			got := map[string]string{}
			for k, v := range vars.(map[string]any) {
				s, ok := String(v)
				if !ok {
					t.Fatalf("%s = %v, want text", k, v)
				}
				got[k] = s
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("environment =\n%v\nwant\n%v", got, tt.want)
			}
			if b := got["BUCKET"]; b != bucketNameFor(t, tpl, tt.stack) {
				t.Errorf("BUCKET = %q, but the bucket is named %q", b, bucketNameFor(t, tpl, tt.stack))
			}
		})
	}
}

// TestExportRunsOneAtATime: two exports running at once would export the
// same rows and race for each table's watermark.
func TestExportRunsOneAtATime(t *testing.T) {
	tpl := projectTemplate(t)
	fn := function(t, tpl, "ExportFunction")
	if n := mustInt(t, lookup(t, fn, "ReservedConcurrentExecutions"), "ExportFunction.ReservedConcurrentExecutions"); n != 1 {
		t.Errorf("ExportFunction.ReservedConcurrentExecutions = %d, want 1", n)
	}
}

// TestLocalInvokeVariablesAreDeclared: `sam local invoke --env-vars
// events/env.json` only overrides variables that the template declares for
// the function, and silently drops the others.
func TestLocalInvokeVariablesAreDeclared(t *testing.T) {
	tpl := projectTemplate(t)
	data, err := os.ReadFile("../../../events/env.json")
	if err != nil {
		t.Fatalf("reading events/env.json: %v", err)
	}
	var local map[string]map[string]string
	if err := json.Unmarshal(data, &local); err != nil {
		t.Fatalf("events/env.json: %v", err)
	}
	for fn, vars := range local {
		if r, ok := tpl.Resource(fn); !ok || r.Type != FunctionType {
			t.Errorf("events/env.json names %s, which is no function of the template", fn)
			continue
		}
		declared, _ := lookupOr(function(t, tpl, fn), "Environment", "Variables").(map[string]any)
		for k := range vars {
			if _, ok := declared[k]; !ok {
				t.Errorf("events/env.json sets %s for %s, which the template does not declare (sam local would ignore it)", k, fn)
			}
		}
	}
}

func TestDataBucket(t *testing.T) {
	tpl := projectTemplate(t)
	b, ok := tpl.Resource("DataBucket")
	if !ok || b.Type != "AWS::S3::Bucket" {
		t.Fatalf("DataBucket = %+v, want an AWS::S3::Bucket", b)
	}
	if got := tpl.ResourceIDs("AWS::S3::Bucket"); len(got) != 1 {
		t.Errorf("buckets = %v, want exactly one data bucket", got)
	}
	p := resolve(t, tpl, b.Properties, deployed)
	checks := []struct {
		path []string
		want any
	}{
		{[]string{"BucketName"}, defaultBucket},
		{[]string{"VersioningConfiguration", "Status"}, "Enabled"},
		{[]string{"PublicAccessBlockConfiguration", "BlockPublicAcls"}, true},
		{[]string{"PublicAccessBlockConfiguration", "BlockPublicPolicy"}, true},
		{[]string{"PublicAccessBlockConfiguration", "IgnorePublicAcls"}, true},
		{[]string{"PublicAccessBlockConfiguration", "RestrictPublicBuckets"}, true},
		{[]string{"OwnershipControls", "Rules", "0", "ObjectOwnership"}, "BucketOwnerEnforced"},
	}
	for _, c := range checks {
		if got, _ := Lookup(p, c.path...); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s = %#v, want %#v", strings.Join(c.path, "."), got, c.want)
		}
	}
	alg, _ := Lookup(p, "BucketEncryption", "ServerSideEncryptionConfiguration", "0", "ServerSideEncryptionByDefault", "SSEAlgorithm")
	if alg != "AES256" && alg != "aws:kms" && alg != "aws:kms:dsse" {
		t.Errorf("default encryption SSEAlgorithm = %v, want AES256 or aws:kms", alg)
	}
	if got := bucketNameFor(t, tpl, namedStack); got != "my-own-bucket" {
		t.Errorf("BucketName with the parameter set = %q, want my-own-bucket", got)
	}
	if b.DeletionPolicy != "Retain" {
		t.Errorf("DeletionPolicy = %q, want Retain: deleting the stack must not delete the exports", b.DeletionPolicy)
	}
}

func TestBucketPolicyDeniesInsecureTransport(t *testing.T) {
	tpl := projectTemplate(t)
	var found bool
	for _, id := range tpl.ResourceIDs("AWS::S3::BucketPolicy") {
		r, _ := tpl.Resource(id)
		if target, _ := ReferencedResource(r.Properties["Bucket"]); target != "DataBucket" {
			continue
		}
		for _, st := range statements(t, resolve(t, tpl, r.Properties["PolicyDocument"], deployed)) {
			cond, _ := Lookup(st, "Condition", "Bool", "aws:SecureTransport")
			if st["Effect"] != "Deny" || (cond != "false" && cond != false) {
				continue
			}
			if st["Principal"] != "*" && !reflect.DeepEqual(st["Principal"], map[string]any{"AWS": "*"}) {
				t.Errorf("%s: TLS deny has Principal %v, want everyone", id, st["Principal"])
			}
			if actions, _ := Strings(st["Action"]); !slices.Contains(actions, "s3:*") {
				t.Errorf("%s: TLS deny covers %v, want s3:*", id, actions)
			}
			var bucket, objects bool
			resources, _ := st["Resource"].([]any)
			for _, res := range resources {
				switch {
				case reflect.DeepEqual(res, map[string]any{"Fn::GetAtt": []any{"DataBucket", "Arn"}}):
					bucket = true
				case reflect.DeepEqual(res, map[string]any{"Fn::Sub": "${DataBucket.Arn}/*"}):
					objects = true
				}
			}
			if !bucket || !objects {
				t.Errorf("%s: TLS deny resources %v, want the bucket and its objects", id, st["Resource"])
			}
			found = true
		}
	}
	if !found {
		t.Fatal("no bucket policy of DataBucket denies requests with aws:SecureTransport false")
	}
}

func TestNotifications(t *testing.T) {
	tpl := projectTemplate(t)
	got, err := tpl.Notifications()
	if err != nil {
		t.Fatal(err)
	}
	want := []Notification{
		{Bucket: "DataBucket", Target: "LoadQueue", TargetType: "AWS::SQS::Queue", Events: []string{"s3:ObjectCreated:*"}, Prefix: "processed/", Suffix: ".csv"},
		{Bucket: "DataBucket", Target: "TransformFunction", TargetType: FunctionType, Events: []string{"s3:ObjectCreated:*"}, Prefix: "raw/", Suffix: ".json"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("notifications =\n%+v\nwant\n%+v", got, want)
	}
	routes := []struct {
		key  string
		want []string
	}{
		{"raw/character/page-0001.json", []string{"TransformFunction"}},
		{"raw/my upload.json", []string{"TransformFunction"}},
		{"processed/characters/character/page-0001.csv", []string{"LoadQueue"}},
		{"raw/character/page-0001.json.tmp", nil},
		{"rejected/character/page-0001.jsonl", nil},
		{"quarantine/character/page-0001.json", nil},
		{"manifests/extract/run.json", nil},
		{"exports/characters/csv/characters_data_20240101_000000.csv", nil},
	}
	for _, r := range routes {
		var targets []string
		for _, n := range got {
			if n.Matches("ObjectCreated:Put", r.key) {
				targets = append(targets, n.Target)
			}
		}
		if !reflect.DeepEqual(targets, r.want) {
			t.Errorf("a new %s goes to %v, want %v", r.key, targets, r.want)
		}
	}
}

func TestLoadQueuePolicy(t *testing.T) {
	tpl := projectTemplate(t)
	bucket, _ := tpl.Resource("DataBucket")
	var policyID string
	for _, id := range tpl.ResourceIDs("AWS::SQS::QueuePolicy") {
		r, _ := tpl.Resource(id)
		for _, q := range r.Properties["Queues"].([]any) {
			if target, _ := ReferencedResource(q); target == "LoadQueue" {
				policyID = id
			}
		}
	}
	if policyID == "" {
		t.Fatal("no AWS::SQS::QueuePolicy applies to LoadQueue")
	}
	if !slices.Contains(bucket.DependsOn, policyID) {
		t.Errorf("DataBucket.DependsOn = %v, want %s (S3 checks it may send when the notification is set)", bucket.DependsOn, policyID)
	}
	for name, s := range map[string]Stack{"default bucket": deployed, "named bucket": namedStack} {
		t.Run(name, func(t *testing.T) {
			r, _ := tpl.Resource(policyID)
			var found bool
			for _, st := range statements(t, resolve(t, tpl, r.Properties["PolicyDocument"], s)) {
				if st["Effect"] != "Allow" {
					continue
				}
				if !reflect.DeepEqual(st["Principal"], map[string]any{"Service": "s3.amazonaws.com"}) {
					t.Errorf("Principal = %v, want the S3 service only", st["Principal"])
				}
				if actions, _ := Strings(st["Action"]); !reflect.DeepEqual(actions, []string{"sqs:SendMessage"}) {
					t.Errorf("Action = %v, want sqs:SendMessage only", actions)
				}
				if target, _ := ReferencedResource(st["Resource"]); target != "LoadQueue" {
					t.Errorf("Resource = %v, want LoadQueue's ARN", st["Resource"])
				}
				wantArn := "arn:aws:s3:::" + bucketNameFor(t, tpl, s)
				if got, _ := Lookup(st, "Condition", "ArnLike", "aws:SourceArn"); got != wantArn {
					if got2, _ := Lookup(st, "Condition", "ArnEquals", "aws:SourceArn"); got2 != wantArn {
						t.Errorf("aws:SourceArn condition = %v, want %s", got, wantArn)
					}
				}
				if got, _ := Lookup(st, "Condition", "StringEquals", "aws:SourceAccount"); got != s.AccountID {
					t.Errorf("aws:SourceAccount condition = %v, want %s", got, s.AccountID)
				}
				found = true
			}
			if !found {
				t.Error("LoadQueue's policy allows nothing")
			}
		})
	}
}

func TestQueues(t *testing.T) {
	tpl := projectTemplate(t)
	for _, id := range tpl.ResourceIDs("AWS::SQS::Queue") {
		r, _ := tpl.Resource(id)
		if r.Properties["SqsManagedSseEnabled"] != true && r.Properties["KmsMasterKeyId"] == nil {
			t.Errorf("%s is not encrypted at rest (SqsManagedSseEnabled or KmsMasterKeyId)", id)
		}
	}
	q, _ := tpl.Resource("LoadQueue")
	// S3 cannot send to a queue encrypted with the AWS managed aws/sqs key.
	if q.Properties["SqsManagedSseEnabled"] != true {
		t.Error("LoadQueue must use SSE-SQS (SqsManagedSseEnabled: true) so S3 can deliver to it")
	}
	dlq := refTo(t, tpl, lookup(t, q.Properties, "RedrivePolicy", "deadLetterTargetArn"), "AWS::SQS::Queue", "LoadQueue.RedrivePolicy.deadLetterTargetArn")
	if dlq != "LoadDeadLetterQueue" {
		t.Errorf("LoadQueue redrives to %s, want LoadDeadLetterQueue", dlq)
	}
	if n := mustInt(t, lookup(t, q.Properties, "RedrivePolicy", "maxReceiveCount"), "maxReceiveCount"); n < 5 {
		t.Errorf("maxReceiveCount = %d, want >= 5 (fewer sends messages to the DLQ during short throttling)", n)
	}

	load := function(t, tpl, "LoadFunction")
	timeout := mustInt(t, load["Timeout"], "LoadFunction.Timeout")
	window := 0
	if ev, ok := sqsEvent(t, tpl, "LoadFunction"); ok {
		if w, ok := Int(ev["MaximumBatchingWindowInSeconds"]); ok {
			window = w
		}
	}
	vis := mustInt(t, q.Properties["VisibilityTimeout"], "LoadQueue.VisibilityTimeout")
	if vis < 6*timeout+window {
		t.Errorf("LoadQueue.VisibilityTimeout = %d, want >= 6 x LoadFunction.Timeout (%d) + batching window (%d) = %d", vis, timeout, window, 6*timeout+window)
	}

	retention := mustInt(t, q.Properties["MessageRetentionPeriod"], "LoadQueue.MessageRetentionPeriod")
	for _, id := range deadLetterQueues(t, tpl) {
		r, _ := tpl.Resource(id)
		got := mustInt(t, r.Properties["MessageRetentionPeriod"], id+".MessageRetentionPeriod")
		if got != 1209600 {
			t.Errorf("%s keeps messages %d s, want 14 days (1209600)", id, got)
		}
		if got < retention {
			t.Errorf("%s keeps messages %d s, less than LoadQueue (%d): dead letters would expire early", id, got, retention)
		}
	}
}

// sqsEvent returns the Properties of the function's only SQS event.
func sqsEvent(tb testing.TB, tpl *Template, fn string) (map[string]any, bool) {
	tb.Helper()
	r, _ := tpl.Resource(fn)
	events, _ := r.Properties["Events"].(map[string]any)
	var found map[string]any
	for name, e := range events {
		if lookupOr(e, "Type") != "SQS" {
			continue
		}
		if found != nil {
			tb.Fatalf("%s has more than one SQS event (%s)", fn, name)
		}
		found, _ = lookupOr(e, "Properties").(map[string]any)
	}
	return found, found != nil
}

func lookupOr(v any, p ...string) any {
	got, _ := Lookup(v, p...)
	return got
}

func TestLoadEventSource(t *testing.T) {
	tpl := projectTemplate(t)
	ev, ok := sqsEvent(t, tpl, "LoadFunction")
	if !ok {
		t.Fatal("LoadFunction has no SQS event")
	}
	if q := refTo(t, tpl, ev["Queue"], "AWS::SQS::Queue", "SQS event Queue"); q != "LoadQueue" {
		t.Errorf("LoadFunction reads %s, want LoadQueue", q)
	}
	if types, _ := Strings(ev["FunctionResponseTypes"]); !slices.Contains(types, "ReportBatchItemFailures") {
		t.Errorf("FunctionResponseTypes = %v, want ReportBatchItemFailures", types)
	}
	if n := mustInt(t, ev["BatchSize"], "BatchSize"); n < 1 || n > 10 {
		t.Errorf("BatchSize = %d, want 1..10", n)
	}
	for name, s := range map[string]Stack{"default": deployed, "raised": withParams(deployed, "LoadMaxConcurrency", "5")} {
		mc := resolve(t, tpl, lookup(t, ev, "ScalingConfig", "MaximumConcurrency"), s)
		n := mustInt(t, mc, "ScalingConfig.MaximumConcurrency")
		if n < 2 || n > 1000 {
			t.Errorf("%s: MaximumConcurrency = %d, want 2..1000", name, n)
		}
		if want, _ := tpl.ParameterValue("LoadMaxConcurrency", s); fmt.Sprint(n) != want {
			t.Errorf("%s: MaximumConcurrency = %d, want the LoadMaxConcurrency parameter (%s)", name, n, want)
		}
	}
}

func TestSchedules(t *testing.T) {
	tpl := projectTemplate(t)
	tests := []struct {
		fn, param, wantDefault string
	}{
		{"ExtractFunction", "ExtractSchedule", "rate(1 day)"},
		{"ExportFunction", "ExportSchedule", "rate(4 hours)"},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			r, _ := tpl.Resource(tt.fn)
			events, _ := r.Properties["Events"].(map[string]any)
			var schedules []map[string]any
			for _, e := range events {
				if lookupOr(e, "Type") == "Schedule" {
					p, _ := lookupOr(e, "Properties").(map[string]any)
					schedules = append(schedules, p)
				}
			}
			if len(schedules) != 1 {
				t.Fatalf("%s has %d Schedule events, want 1", tt.fn, len(schedules))
			}
			ev := schedules[0]
			if !reflect.DeepEqual(ev["Schedule"], map[string]any{"Ref": tt.param}) {
				t.Errorf("Schedule = %v, want !Ref %s", ev["Schedule"], tt.param)
			}
			if got := resolveString(t, tpl, ev["Schedule"], deployed); got != tt.wantDefault {
				t.Errorf("default schedule = %q, want %q", got, tt.wantDefault)
			}
			if ev["Enabled"] == false || ev["State"] == "DISABLED" {
				t.Error("the schedule is disabled")
			}
			retries := mustInt(t, lookup(t, ev, "RetryPolicy", "MaximumRetryAttempts"), "RetryPolicy.MaximumRetryAttempts")
			age := mustInt(t, lookup(t, ev, "RetryPolicy", "MaximumEventAgeInSeconds"), "RetryPolicy.MaximumEventAgeInSeconds")
			if retries < 0 || retries > 185 || age < 60 || age > 86400 {
				t.Errorf("RetryPolicy = %d retries, %d s, want 0..185 and 60..86400", retries, age)
			}
			dlc, ok := ev["DeadLetterConfig"].(map[string]any)
			if !ok {
				t.Fatal("the schedule has no DeadLetterConfig")
			}
			if dlc["Type"] == "SQS" {
				return // SAM creates the queue and its policy
			}
			queue := refTo(t, tpl, dlc["Arn"], "AWS::SQS::Queue", "DeadLetterConfig.Arn")
			// With an existing queue SAM adds no queue policy: the template
			// must let this rule (and only it) send there.
			rule := resolveString(t, tpl, ev["Name"], deployed)
			if len(rule) > 64 {
				t.Errorf("rule name %q is longer than 64", rule)
			}
			ruleArn := "arn:aws:events:eu-west-1:123456789012:rule/" + rule
			if !queuePolicyAllows(t, tpl, queue, "events.amazonaws.com", ruleArn) {
				t.Errorf("no queue policy lets %s send dead letters to %s", ruleArn, queue)
			}
		})
	}
}

// queuePolicyAllows reports whether a queue policy of the template lets the
// service principal send to queue, restricted to sourceArn.
func queuePolicyAllows(tb testing.TB, tpl *Template, queue, service, sourceArn string) bool {
	tb.Helper()
	for _, id := range tpl.ResourceIDs("AWS::SQS::QueuePolicy") {
		r, _ := tpl.Resource(id)
		applies := false
		for _, q := range r.Properties["Queues"].([]any) {
			if target, _ := ReferencedResource(q); target == queue {
				applies = true
			}
		}
		if !applies {
			continue
		}
		for _, st := range statements(tb, resolve(tb, tpl, r.Properties["PolicyDocument"], deployed)) {
			actions, _ := Strings(st["Action"])
			src, _ := Lookup(st, "Condition", "ArnEquals", "aws:SourceArn")
			if src == nil {
				src, _ = Lookup(st, "Condition", "ArnLike", "aws:SourceArn")
			}
			if st["Effect"] == "Allow" &&
				reflect.DeepEqual(st["Principal"], map[string]any{"Service": service}) &&
				slices.Contains(actions, "sqs:SendMessage") && src == sourceArn {
				return true
			}
		}
	}
	return false
}

func TestAsyncFailureDestinations(t *testing.T) {
	tpl := projectTemplate(t)
	tests := []struct {
		fn, queue   string
		wantRetries int
	}{
		{"TransformFunction", "TransformFailureQueue", 2},
		{"ExtractFunction", "ExtractDeadLetterQueue", -1},
		{"ExportFunction", "ExportDeadLetterQueue", -1},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			fn := function(t, tpl, tt.fn)
			cfg := lookup(t, fn, "EventInvokeConfig")
			retries := mustInt(t, lookup(t, cfg, "MaximumRetryAttempts"), "MaximumRetryAttempts")
			if tt.wantRetries >= 0 && retries != tt.wantRetries {
				t.Errorf("MaximumRetryAttempts = %d, want %d", retries, tt.wantRetries)
			}
			if got := lookupOr(cfg, "DestinationConfig", "OnFailure", "Type"); got != "SQS" {
				t.Errorf("OnFailure.Type = %v, want SQS", got)
			}
			dest := refTo(t, tpl, lookup(t, cfg, "DestinationConfig", "OnFailure", "Destination"), "AWS::SQS::Queue", "OnFailure.Destination")
			if dest != tt.queue {
				t.Errorf("OnFailure goes to %s, want %s", dest, tt.queue)
			}
			// The role is explicit, so SAM adds no sqs:SendMessage for the
			// destination: the role itself must grant it.
			if !grants(roleGrants(t, tpl, roleOf(t, tpl, tt.fn), deployed), "sqs:SendMessage", tt.queue) {
				t.Errorf("%s's role cannot send to its failure destination %s", tt.fn, tt.queue)
			}
		})
	}
}

// deadLetterQueues returns the queues where failed work ends: redrive
// targets, schedule dead-letter queues and on-failure destinations.
func deadLetterQueues(tb testing.TB, tpl *Template) []string {
	tb.Helper()
	set := map[string]bool{}
	for _, id := range tpl.ResourceIDs("AWS::SQS::Queue") {
		r, _ := tpl.Resource(id)
		if v, ok := Lookup(r.Properties, "RedrivePolicy", "deadLetterTargetArn"); ok {
			set[refTo(tb, tpl, v, "AWS::SQS::Queue", id+" deadLetterTargetArn")] = true
		}
	}
	for _, fn := range tpl.ResourceIDs(FunctionType) {
		props := function(tb, tpl, fn)
		if v, ok := Lookup(props, "EventInvokeConfig", "DestinationConfig", "OnFailure", "Destination"); ok {
			set[refTo(tb, tpl, v, "AWS::SQS::Queue", fn+" OnFailure")] = true
		}
		events, _ := props["Events"].(map[string]any)
		for name, e := range events {
			if v, ok := Lookup(e, "Properties", "DeadLetterConfig", "Arn"); ok {
				set[refTo(tb, tpl, v, "AWS::SQS::Queue", fn+" "+name+" DeadLetterConfig")] = true
			}
		}
	}
	var ids []string
	for id := range set {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func TestDeadLetterQueueAlarms(t *testing.T) {
	tpl := projectTemplate(t)
	dlqs := deadLetterQueues(t, tpl)
	// One failure path per function: Load and ExportRange by redrive,
	// Transform by its on-failure destination, Extract and Export by their
	// schedules'.
	if len(dlqs) != len(pipelineFunctions) {
		t.Fatalf("dead-letter queues = %v, want one per function", dlqs)
	}
	alarmed := map[string]bool{}
	for _, id := range tpl.ResourceIDs("AWS::CloudWatch::Alarm") {
		r, _ := tpl.Resource(id)
		p := r.Properties
		if p["Namespace"] != "AWS/SQS" || p["MetricName"] != "ApproximateNumberOfMessagesVisible" {
			continue
		}
		dims, _ := p["Dimensions"].([]any)
		if len(dims) != 1 || lookupOr(dims[0], "Name") != "QueueName" {
			t.Errorf("%s: Dimensions = %v, want QueueName only", id, dims)
			continue
		}
		if !reflect.DeepEqual(lookupOr(dims[0], "Value", "Fn::GetAtt", "1"), "QueueName") {
			t.Errorf("%s: QueueName dimension = %v, want Fn::GetAtt Queue.QueueName", id, lookupOr(dims[0], "Value"))
			continue
		}
		queue, _ := ReferencedResource(lookupOr(dims[0], "Value"))
		threshold := mustInt(t, p["Threshold"], id+".Threshold")
		op := p["ComparisonOperator"]
		fires := (op == "GreaterThanThreshold" && threshold == 0) || (op == "GreaterThanOrEqualToThreshold" && threshold == 1)
		if !fires {
			t.Errorf("%s: %v %d does not fire on the first message", id, op, threshold)
			continue
		}
		if n := mustInt(t, p["EvaluationPeriods"], id+".EvaluationPeriods"); n != 1 {
			t.Errorf("%s: EvaluationPeriods = %d, want 1", id, n)
		}
		alarmed[queue] = true
	}
	for _, q := range dlqs {
		if !alarmed[q] {
			t.Errorf("dead-letter queue %s has no alarm on ApproximateNumberOfMessagesVisible > 0", q)
		}
	}
}

func TestLogGroups(t *testing.T) {
	tpl := projectTemplate(t)
	seen := map[string]string{}
	for _, fnID := range tpl.ResourceIDs(FunctionType) {
		t.Run(fnID, func(t *testing.T) {
			fn := function(t, tpl, fnID)
			if got := lookupOr(fn, "LoggingConfig", "LogFormat"); got != "JSON" {
				t.Errorf("LogFormat = %v, want JSON", got)
			}
			lgID := refTo(t, tpl, lookup(t, fn, "LoggingConfig", "LogGroup"), "AWS::Logs::LogGroup", "LoggingConfig.LogGroup")
			if other, dup := seen[lgID]; dup {
				t.Errorf("log group %s is shared with %s", lgID, other)
			}
			seen[lgID] = fnID
			lg, _ := tpl.Resource(lgID)
			days := mustInt(t, resolve(t, tpl, lg.Properties["RetentionInDays"], deployed), lgID+".RetentionInDays")
			if days <= 0 {
				t.Errorf("%s keeps logs %d days, want a retention", lgID, days)
			}
			name := resolveString(t, tpl, lg.Properties["LogGroupName"], deployed)
			fnName := resolveString(t, tpl, fn["FunctionName"], deployed)
			if name != "/aws/lambda/"+fnName {
				t.Errorf("log group name = %q, want /aws/lambda/%s", name, fnName)
			}
			// The role writes to its own log group and nowhere else.
			for _, g := range roleGrants(t, tpl, roleOf(t, tpl, fnID), deployed) {
				if !g.hasService("logs") {
					continue
				}
				for _, res := range g.Resources {
					if !reflect.DeepEqual(res, map[string]any{"Fn::GetAtt": []any{lgID, "Arn"}}) {
						t.Errorf("%s: logs actions on %v, want only %s", g.Sid, res, lgID)
					}
				}
				for _, a := range g.Actions {
					if a != "logs:CreateLogStream" && a != "logs:PutLogEvents" {
						t.Errorf("%s: logs action %s, want CreateLogStream and PutLogEvents only", g.Sid, a)
					}
				}
			}
		})
	}
}

func TestVpcOnlyUnderCondition(t *testing.T) {
	tpl := projectTemplate(t)
	subnetsOnly := withParams(deployed, "SubnetIds", "subnet-1")
	wantVpc := map[string]any{"SubnetIds": []any{"subnet-1", "subnet-2"}, "SecurityGroupIds": []any{"sg-1"}}
	for _, fnID := range tpl.ResourceIDs(FunctionType) {
		t.Run(fnID, func(t *testing.T) {
			inVpc := fnID == "LoadFunction" || fnID == "ExportFunction" || fnID == "ExportRangeFunction"
			vc := function(t, tpl, fnID)["VpcConfig"]
			role, _ := tpl.Resource(roleOf(t, tpl, fnID))
			managed := func(s Stack) []string {
				l, _ := Strings(resolve(t, tpl, role.Properties["ManagedPolicyArns"], s))
				return l
			}
			if !inVpc {
				if vc != nil {
					t.Errorf("VpcConfig = %v, want none: %s needs no VPC", vc, fnID)
				}
				for name, s := range allStacks {
					if l := managed(s); len(l) != 0 {
						t.Errorf("%s: managed policies %v, want none", name, l)
					}
				}
				return
			}
			if !isIntrinsic(vc) || lookupOr(vc, "Fn::If", "0") != "HasVpc" {
				t.Fatalf("VpcConfig = %v, want !If [HasVpc, ..., !Ref AWS::NoValue]", vc)
			}
			if got := resolve(t, tpl, vc, deployed); got != nil {
				t.Errorf("without subnets VpcConfig = %v, want none", got)
			}
			if got := resolve(t, tpl, vc, subnetsOnly); got != nil {
				t.Errorf("with subnets but no security groups VpcConfig = %v, want none", got)
			}
			if got := resolve(t, tpl, vc, vpcStack); !reflect.DeepEqual(got, wantVpc) {
				t.Errorf("with a VPC, VpcConfig = %v, want %v", got, wantVpc)
			}
			if l := managed(deployed); len(l) != 0 {
				t.Errorf("without a VPC the role has managed policies %v, want none", l)
			}
			if l := managed(vpcStack); !reflect.DeepEqual(l, []string{vpcManagedArn}) {
				t.Errorf("in a VPC the role has managed policies %v, want %s", l, vpcManagedArn)
			}
		})
	}
}

// grant is one statement of an identity policy, evaluated for a stack.
type grant struct {
	Role      string
	Sid       string
	Effect    string
	Actions   []string
	Resources []any // text, or a deploy-time reference
	Condition map[string]any
	Not       string // "NotAction" or "NotResource" when the statement uses one
}

func (g grant) hasService(svc string) bool {
	for _, a := range g.Actions {
		if strings.HasPrefix(strings.ToLower(a), svc+":") || a == "*" {
			return true
		}
	}
	return false
}

// allows reports whether the grant allows action (no wildcard) on resource
// (an ARN, or the logical id of a resource that the grant references).
func (g grant) allows(action, resource string) bool {
	if g.Effect != "Allow" {
		return false
	}
	matched := false
	for _, a := range g.Actions {
		if ok, _ := path.Match(strings.ToLower(a), strings.ToLower(action)); ok {
			matched = true
		}
	}
	if !matched {
		return false
	}
	for _, r := range g.Resources {
		if id, ok := ReferencedResource(r); ok && id == resource {
			return true
		}
		if s, ok := r.(string); ok {
			if ok, _ := path.Match(s, resource); ok || s == "*" {
				return true
			}
		}
	}
	return false
}

func grants(gs []grant, action, resource string) bool {
	for _, g := range gs {
		if g.allows(action, resource) {
			return true
		}
	}
	return false
}

// statements returns the Statement list of a (resolved) policy document.
func statements(tb testing.TB, doc any) []map[string]any {
	tb.Helper()
	var out []map[string]any
	switch s := lookupOr(doc, "Statement").(type) {
	case map[string]any:
		out = append(out, s)
	case []any:
		for _, e := range s {
			m, ok := e.(map[string]any)
			if !ok {
				tb.Fatalf("statement %v is not a mapping", e)
			}
			out = append(out, m)
		}
	default:
		tb.Fatalf("policy document %v has no Statement", doc)
	}
	return out
}

func toGrant(tb testing.TB, role string, st map[string]any) grant {
	tb.Helper()
	g := grant{Role: role, Condition: map[string]any{}}
	g.Sid, _ = st["Sid"].(string)
	g.Effect, _ = st["Effect"].(string)
	for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
		if _, ok := st[k]; ok {
			g.Not = k
		}
	}
	var ok bool
	if g.Actions, ok = Strings(st["Action"]); !ok && g.Not == "" {
		tb.Fatalf("%s %s: Action %v is not text", role, g.Sid, st["Action"])
	}
	switch r := st["Resource"].(type) {
	case []any:
		g.Resources = r
	case nil:
	default:
		g.Resources = []any{r}
	}
	if c, ok := st["Condition"].(map[string]any); ok {
		g.Condition = c
	}
	return g
}

// roleOf returns the explicit role of a function.
func roleOf(tb testing.TB, tpl *Template, fn string) string {
	tb.Helper()
	r, _ := tpl.Resource(fn)
	return refTo(tb, tpl, r.Properties["Role"], "AWS::IAM::Role", fn+".Role")
}

// roleGrants returns the statements of a role's inline policies, and of the
// AWS::IAM::Policy and AWS::IAM::ManagedPolicy resources attached to it.
func roleGrants(tb testing.TB, tpl *Template, roleID string, s Stack) []grant {
	tb.Helper()
	var out []grant
	for _, g := range identityGrants(tb, tpl, s) {
		if g.Role == roleID {
			out = append(out, g)
		}
	}
	return out
}

// identityGrants returns every statement of every identity policy of the
// template: role inline policies, policy resources, and the inline statements
// of a SAM function's Policies (whose role SAM names <Function>Role).
func identityGrants(tb testing.TB, tpl *Template, s Stack) []grant {
	tb.Helper()
	var out []grant
	add := func(role string, doc any) {
		for _, st := range statements(tb, doc) {
			out = append(out, toGrant(tb, role, st))
		}
	}
	for _, id := range tpl.ResourceIDs("AWS::IAM::Role") {
		r, _ := tpl.Resource(id)
		policies, _ := resolve(tb, tpl, r.Properties["Policies"], s).([]any)
		for _, p := range policies {
			add(id, lookup(tb, p, "PolicyDocument"))
		}
	}
	for _, typ := range []string{"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"} {
		for _, id := range tpl.ResourceIDs(typ) {
			r, _ := tpl.Resource(id)
			roles, _ := r.Properties["Roles"].([]any)
			role := id
			if len(roles) > 0 {
				role, _ = ReferencedResource(roles[0])
			}
			add(role, resolve(tb, tpl, r.Properties["PolicyDocument"], s))
		}
	}
	for _, id := range tpl.ResourceIDs(FunctionType) {
		r, _ := tpl.Resource(id)
		policies, _ := resolve(tb, tpl, r.Properties["Policies"], s).([]any)
		for _, p := range policies {
			if m, ok := p.(map[string]any); ok && m["Statement"] != nil {
				add(id+"Role", m)
			}
		}
	}
	return out
}

// s3Path splits an S3 ARN of the data bucket into the key pattern it covers
// ("" for the bucket itself).
func s3Path(tb testing.TB, arn, bucket string) (key string, isBucket bool) {
	tb.Helper()
	rest, ok := strings.CutPrefix(arn, "arn:aws:s3:::")
	if !ok {
		tb.Fatalf("S3 resource %q is not an S3 ARN", arn)
	}
	b, key, hasKey := strings.Cut(rest, "/")
	if b != bucket {
		tb.Fatalf("S3 resource %q is not in the data bucket %s", arn, bucket)
	}
	return key, !hasKey
}

func TestLeastPrivilege(t *testing.T) {
	tpl := projectTemplate(t)

	t.Run("every function has its own explicit role", func(t *testing.T) {
		seen := map[string]string{}
		for _, fn := range tpl.ResourceIDs(FunctionType) {
			r, _ := tpl.Resource(fn)
			if r.Properties["Policies"] != nil {
				t.Errorf("%s has Policies: put its permissions on its explicit role", fn)
			}
			role := roleOf(t, tpl, fn)
			if other, dup := seen[role]; dup {
				t.Errorf("%s shares role %s with %s", fn, role, other)
			}
			seen[role] = fn
			rr, _ := tpl.Resource(role)
			for _, st := range statements(t, resolve(t, tpl, rr.Properties["AssumeRolePolicyDocument"], deployed)) {
				if !reflect.DeepEqual(st["Principal"], map[string]any{"Service": "lambda.amazonaws.com"}) {
					t.Errorf("%s can be assumed by %v, want lambda.amazonaws.com only", role, st["Principal"])
				}
			}
		}
	})

	for name, s := range allStacks {
		t.Run(name, func(t *testing.T) {
			bucket := bucketNameFor(t, tpl, s)
			for _, g := range identityGrants(t, tpl, s) {
				where := g.Role + " " + g.Sid
				if g.Effect != "Allow" {
					continue
				}
				if g.Not != "" {
					t.Errorf("%s: Allow with %s", where, g.Not)
				}
				for _, a := range g.Actions {
					svc, op, _ := strings.Cut(a, ":")
					if a == "*" || op == "*" {
						t.Errorf("%s: action %s allows a whole service", where, a)
					}
					if (svc == "s3" || svc == "sqs") && strings.ContainsAny(op, "*?") {
						t.Errorf("%s: wildcard action %s", where, a)
					}
				}
				for _, res := range g.Resources {
					if res == "*" && (g.hasService("s3") || g.hasService("sqs")) {
						t.Errorf("%s: S3/SQS actions on Resource '*'", where)
					}
					if g.hasService("sqs") {
						refTo(t, tpl, res, "AWS::SQS::Queue", where+" SQS resource")
					}
					if g.hasService("s3") {
						arn, ok := res.(string)
						if !ok {
							t.Errorf("%s: S3 resource %v is not the bucket's name-built ARN", where, res)
							continue
						}
						key, isBucket := s3Path(t, arn, bucket)
						if !isBucket && (key == "*" || key == "") {
							t.Errorf("%s: S3 actions on every object of the bucket", where)
						}
						if isBucket {
							prefixes, _ := Strings(lookupOr(g.Condition, "StringLike", "s3:prefix"))
							if len(prefixes) == 0 || slices.Contains(prefixes, "*") {
								t.Errorf("%s: bucket-level S3 actions without an s3:prefix condition", where)
							}
						}
					}
				}
				if g.hasService("kms") {
					if via, _ := Strings(lookupOr(g.Condition, "StringEquals", "kms:ViaService")); len(via) == 0 {
						t.Errorf("%s: kms actions without a kms:ViaService condition", where)
					}
				}
			}
			for _, id := range tpl.ResourceIDs("AWS::IAM::Role") {
				r, _ := tpl.Resource(id)
				arns, _ := Strings(resolve(t, tpl, r.Properties["ManagedPolicyArns"], s))
				for _, arn := range arns {
					for _, bad := range []string{"FullAccess", "AdministratorAccess", "PowerUserAccess"} {
						if strings.Contains(arn, bad) {
							t.Errorf("%s: managed policy %s", id, arn)
						}
					}
				}
			}
			// Resource policies that let a service in name the source.
			for _, id := range tpl.ResourceIDs("AWS::SQS::QueuePolicy") {
				r, _ := tpl.Resource(id)
				for _, st := range statements(t, resolve(t, tpl, r.Properties["PolicyDocument"], s)) {
					if st["Effect"] != "Allow" {
						continue
					}
					src, _ := Lookup(st, "Condition", "ArnLike", "aws:SourceArn")
					if src == nil {
						src, _ = Lookup(st, "Condition", "ArnEquals", "aws:SourceArn")
					}
					if src == nil {
						t.Errorf("%s: Allow for %v without an aws:SourceArn condition", id, st["Principal"])
					}
				}
			}
		})
	}
}

// dataAccess describes what a role may do with the data bucket: for each
// action, the key patterns it applies to (bucket-level actions list the
// s3:prefix values they are limited to), and for each SQS action, the queues.
type dataAccess struct {
	S3  map[string][]string
	SQS map[string][]string
	Any []string // other services' actions
}

func accessOf(tb testing.TB, tpl *Template, role string, s Stack) dataAccess {
	tb.Helper()
	bucket := bucketNameFor(tb, tpl, s)
	acc := dataAccess{S3: map[string][]string{}, SQS: map[string][]string{}}
	for _, g := range roleGrants(tb, tpl, role, s) {
		if g.Effect != "Allow" {
			continue
		}
		for _, a := range g.Actions {
			svc, _, _ := strings.Cut(a, ":")
			switch svc {
			case "s3":
				for _, res := range g.Resources {
					arn, _ := res.(string)
					key, isBucket := s3Path(tb, arn, bucket)
					if isBucket {
						prefixes, _ := Strings(lookupOr(g.Condition, "StringLike", "s3:prefix"))
						acc.S3[a] = append(acc.S3[a], prefixes...)
					} else {
						acc.S3[a] = append(acc.S3[a], key)
					}
				}
			case "sqs":
				for _, res := range g.Resources {
					id, _ := ReferencedResource(res)
					acc.SQS[a] = append(acc.SQS[a], id)
				}
			case "logs":
			default:
				acc.Any = append(acc.Any, a)
			}
		}
	}
	for _, m := range []map[string][]string{acc.S3, acc.SQS} {
		for k := range m {
			sort.Strings(m[k])
		}
	}
	sort.Strings(acc.Any)
	return acc
}

// TestDataAccessPerFunction pins each function to the prefixes and queues of
// its stage (issue: Transform reads raw/* and writes processed/*, rejected/*,
// quarantine/*; the exporter writes only its prefix).
func TestDataAccessPerFunction(t *testing.T) {
	tpl := projectTemplate(t)
	dbSSM := []string{"kms:Decrypt", "ssm:GetParameter"}
	dbSecret := []string{"kms:Decrypt", "secretsmanager:GetSecretValue"}
	tests := []struct {
		fn    string
		stack Stack
		want  dataAccess
	}{
		{"ExtractFunction", deployed, dataAccess{
			S3: map[string][]string{
				"s3:GetObject":  {"manifests/extract/*", "raw/*"},
				"s3:PutObject":  {"manifests/extract/*", "raw/*"},
				"s3:ListBucket": {"manifests/extract/*", "raw/*"},
			},
			SQS: map[string][]string{"sqs:SendMessage": {"ExtractDeadLetterQueue"}},
		}},
		{"TransformFunction", deployed, dataAccess{
			S3: map[string][]string{
				"s3:GetObject":            {"raw/*"},
				"s3:GetObjectVersion":     {"raw/*"},
				"s3:ListBucket":           {"raw/*"},
				"s3:PutObject":            {"processed/*", "quarantine/*", "rejected/*"},
				"s3:AbortMultipartUpload": {"processed/*", "quarantine/*", "rejected/*"},
				"s3:DeleteObject":         {"rejected/*"},
			},
			SQS: map[string][]string{"sqs:SendMessage": {"TransformFailureQueue"}},
		}},
		{"LoadFunction", deployed, dataAccess{
			S3: map[string][]string{
				"s3:GetObject":        {"processed/*"},
				"s3:GetObjectVersion": {"processed/*"},
				"s3:ListBucket":       {"processed/*"},
				"s3:PutObject":        {"quarantine/*"},
			},
			SQS: map[string][]string{
				"sqs:ReceiveMessage":     {"LoadQueue"},
				"sqs:DeleteMessage":      {"LoadQueue"},
				"sqs:GetQueueAttributes": {"LoadQueue"},
			},
			Any: dbSSM,
		}},
		{"LoadFunction", secretStack, dataAccess{
			S3: map[string][]string{
				"s3:GetObject":        {"processed/*"},
				"s3:GetObjectVersion": {"processed/*"},
				"s3:ListBucket":       {"processed/*"},
				"s3:PutObject":        {"quarantine/*"},
			},
			SQS: map[string][]string{
				"sqs:ReceiveMessage":     {"LoadQueue"},
				"sqs:DeleteMessage":      {"LoadQueue"},
				"sqs:GetQueueAttributes": {"LoadQueue"},
			},
			Any: dbSecret,
		}},
		{"ExportFunction", deployed, dataAccess{
			S3: map[string][]string{
				"s3:GetObject":                {"exports/*", "manifests/export/*"},
				"s3:PutObject":                {"exports/*", "manifests/export/*"},
				"s3:AbortMultipartUpload":     {"exports/*"},
				"s3:ListMultipartUploadParts": {"exports/*"},
				"s3:ListBucket":               {"exports/*", "manifests/export/*"},
			},
			SQS: map[string][]string{"sqs:SendMessage": {"ExportDeadLetterQueue", "ExportRangeQueue"}},
			Any: dbSSM,
		}},
		{"ExportFunction", namedStack, dataAccess{
			S3: map[string][]string{
				"s3:GetObject":                {"exports/team-a/*", "manifests/export/*"},
				"s3:PutObject":                {"exports/team-a/*", "manifests/export/*"},
				"s3:AbortMultipartUpload":     {"exports/team-a/*"},
				"s3:ListMultipartUploadParts": {"exports/team-a/*"},
				"s3:ListBucket":               {"exports/team-a/*", "manifests/export/*"},
			},
			SQS: map[string][]string{"sqs:SendMessage": {"ExportDeadLetterQueue", "ExportRangeQueue"}},
			Any: dbSSM,
		}},
		// The range worker writes its parts and its run's manifest, and
		// consumes the range queue; it sends nothing.
		{"ExportRangeFunction", namedStack, dataAccess{
			S3: map[string][]string{
				"s3:GetObject":                {"exports/team-a/*", "manifests/export/*"},
				"s3:PutObject":                {"exports/team-a/*", "manifests/export/*"},
				"s3:AbortMultipartUpload":     {"exports/team-a/*"},
				"s3:ListMultipartUploadParts": {"exports/team-a/*"},
				"s3:ListBucket":               {"exports/team-a/*", "manifests/export/*"},
			},
			SQS: map[string][]string{
				"sqs:ReceiveMessage":     {"ExportRangeQueue"},
				"sqs:DeleteMessage":      {"ExportRangeQueue"},
				"sqs:GetQueueAttributes": {"ExportRangeQueue"},
			},
			Any: dbSSM,
		}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %v", tt.fn, tt.stack.Parameters), func(t *testing.T) {
			got := accessOf(t, tpl, roleOf(t, tpl, tt.fn), tt.stack)
			if !reflect.DeepEqual(got.S3, tt.want.S3) {
				t.Errorf("S3 access =\n%v\nwant\n%v", got.S3, tt.want.S3)
			}
			if !reflect.DeepEqual(got.SQS, tt.want.SQS) {
				t.Errorf("SQS access = %v, want %v", got.SQS, tt.want.SQS)
			}
			if !slices.Equal(got.Any, tt.want.Any) {
				t.Errorf("other actions = %v, want %v", got.Any, tt.want.Any)
			}
		})
	}

	t.Run("credential reads name only the configured parameters and secret", func(t *testing.T) {
		cases := []struct {
			stack Stack
			want  []string
		}{
			{deployed, []string{"arn:aws:ssm:eu-west-1:123456789012:parameter/rickmorty-pipeline/db/password"}},
			{ssmUserStack, []string{"arn:aws:ssm:eu-west-1:123456789012:parameter/rickmorty-pipeline/db/password", "arn:aws:ssm:eu-west-1:123456789012:parameter/rm/db/user"}},
			{secretStack, []string{testSecretArn}},
		}
		for _, fn := range []string{"LoadFunction", "ExportFunction"} {
			for _, c := range cases {
				var got []string
				for _, g := range roleGrants(t, tpl, roleOf(t, tpl, fn), c.stack) {
					if g.hasService("ssm") || g.hasService("secretsmanager") {
						l, _ := Strings(g.Resources)
						got = append(got, l...)
					}
				}
				sort.Strings(got)
				if !slices.Equal(got, c.want) {
					t.Errorf("%s %v: reads %v, want %v", fn, c.stack.Parameters, got, c.want)
				}
			}
		}
	})
}

// TestNoRecursion derives, from the template alone, which stage can start
// which: a function's writes (its s3:PutObject grants) start every target
// whose notification prefix overlaps them, and a queue starts the function
// that reads it. That graph must have no cycle: no function may write where
// it, or a stage before it, is triggered.
func TestNoRecursion(t *testing.T) {
	tpl := projectTemplate(t)
	notes, err := tpl.Notifications()
	if err != nil {
		t.Fatal(err)
	}
	consumers := func(n Notification) []string {
		if n.TargetType == FunctionType {
			return []string{n.Target}
		}
		var fns []string
		for _, fn := range tpl.ResourceIDs(FunctionType) {
			if ev, ok := sqsEvent(t, tpl, fn); ok {
				if q, _ := ReferencedResource(ev["Queue"]); q == n.Target {
					fns = append(fns, fn)
				}
			}
		}
		return fns
	}
	overlaps := func(pattern, prefix string) bool {
		literal := pattern
		if i := strings.IndexAny(pattern, "*?"); i >= 0 {
			literal = pattern[:i]
		}
		return strings.HasPrefix(literal, prefix) || strings.HasPrefix(prefix, literal)
	}

	for name, s := range allStacks {
		t.Run(name, func(t *testing.T) {
			bucket := bucketNameFor(t, tpl, s)
			edges := map[string][]string{}
			for _, fn := range tpl.ResourceIDs(FunctionType) {
				for _, g := range roleGrants(t, tpl, roleOf(t, tpl, fn), s) {
					if !writesAnything(g) {
						continue
					}
					for _, res := range g.Resources {
						arn, ok := res.(string)
						if !ok {
							continue
						}
						key, isBucket := s3Path(t, arn, bucket)
						if isBucket {
							continue
						}
						for _, n := range notes {
							if n.Bucket == "DataBucket" && overlaps(key, n.Prefix) {
								for _, c := range consumers(n) {
									if !slices.Contains(edges[fn], c) {
										edges[fn] = append(edges[fn], c)
									}
								}
							}
						}
					}
				}
			}
			if cycle := findCycle(edges); cycle != nil {
				t.Errorf("recursion: %s", strings.Join(cycle, " -> "))
			}
			// The derivation sees the chain itself, so the check above is not
			// vacuous.
			want := map[string][]string{"ExtractFunction": {"TransformFunction"}, "TransformFunction": {"LoadFunction"}}
			if !reflect.DeepEqual(edges, want) {
				t.Errorf("derived triggers = %v, want %v", edges, want)
			}
		})
	}

	t.Run("export prefix cannot be set to a triggering prefix", func(t *testing.T) {
		re := regexp.MustCompile(tpl.Parameters["ExportPrefix"].AllowedPattern)
		for _, ok := range []string{"exports/", "exports/team-a/", "exports/v2.1/"} {
			if !re.MatchString(ok) {
				t.Errorf("ExportPrefix rejects %q", ok)
			}
		}
		for _, n := range notes {
			for _, p := range []string{n.Prefix, n.Prefix + "exports/", "exports/../" + n.Prefix, "exports/./" + n.Prefix} {
				if re.MatchString(p) {
					t.Errorf("ExportPrefix accepts %q, too close to %s's trigger %q", p, n.Target, n.Prefix)
				}
			}
		}
	})
}

// writesAnything reports whether a grant allows s3:PutObject at all, so its
// object resources are writes.
func writesAnything(g grant) bool {
	if g.Effect != "Allow" {
		return false
	}
	for _, a := range g.Actions {
		if ok, _ := path.Match(strings.ToLower(a), "s3:putobject"); ok {
			return true
		}
	}
	return false
}

// findCycle returns a cycle of the directed graph, or nil.
func findCycle(edges map[string][]string) []string {
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = active
		stack = append(stack, n)
		for _, m := range edges[n] {
			switch state[m] {
			case active:
				i := slices.Index(stack, m)
				return append(slices.Clone(stack[i:]), m)
			case unseen:
				if c := visit(m); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return nil
	}
	nodes := make([]string, 0, len(edges))
	for n := range edges {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		if state[n] == unseen {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

func TestFindCycle(t *testing.T) {
	if c := findCycle(map[string][]string{"a": {"b"}, "b": {"c"}}); c != nil {
		t.Errorf("chain reported cycle %v", c)
	}
	if c := findCycle(map[string][]string{"a": {"a"}}); !slices.Equal(c, []string{"a", "a"}) {
		t.Errorf("self loop = %v", c)
	}
	if c := findCycle(map[string][]string{"a": {"b"}, "b": {"a"}}); !slices.Equal(c, []string{"a", "b", "a"}) {
		t.Errorf("two-step loop = %v", c)
	}
}

func TestOutputs(t *testing.T) {
	tpl := projectTemplate(t)
	want := map[string]string{
		"DataBucketName":            "DataBucket",
		"LoadQueueUrl":              "LoadQueue",
		"LoadDeadLetterQueueUrl":    "LoadDeadLetterQueue",
		"TransformFailureQueueUrl":  "TransformFailureQueue",
		"ExtractDeadLetterQueueUrl": "ExtractDeadLetterQueue",
		"ExportDeadLetterQueueUrl":  "ExportDeadLetterQueue",
		"ExtractFunctionName":       "ExtractFunction",
		"TransformFunctionName":     "TransformFunction",
		"LoadFunctionName":          "LoadFunction",
		"ExportFunctionName":        "ExportFunction",
	}
	for name, target := range want {
		o, ok := tpl.Outputs[name]
		if !ok {
			t.Errorf("output %s is missing", name)
			continue
		}
		if !reflect.DeepEqual(o.Value, map[string]any{"Ref": target}) {
			t.Errorf("output %s = %v, want !Ref %s", name, o.Value, target)
		}
	}
	// Every dead-letter queue and function is reachable from the outputs.
	exposed := map[string]bool{}
	for _, o := range tpl.Outputs {
		if id, ok := ReferencedResource(o.Value); ok {
			exposed[id] = true
		}
	}
	for _, id := range append(deadLetterQueues(t, tpl), tpl.ResourceIDs(FunctionType)...) {
		if !exposed[id] {
			t.Errorf("no output names %s", id)
		}
	}
}

// TestExportRangeQueue: the ranges of a fanned-out export go to a queue
// that ExportFunction names by URL, whose event source mapping feeds one
// range per invocation to ExportRangeFunction with a concurrency cap, and
// whose failures end, after 5 receives, in a dead-letter queue (alarmed by
// TestDeadLetterQueueAlarms).
func TestExportRangeQueue(t *testing.T) {
	tpl := projectTemplate(t)
	q, ok := tpl.Resource("ExportRangeQueue")
	if !ok {
		t.Fatal("no ExportRangeQueue")
	}
	if dlq := refTo(t, tpl, lookup(t, q.Properties, "RedrivePolicy", "deadLetterTargetArn"), "AWS::SQS::Queue", "ExportRangeQueue redrive"); dlq != "ExportRangeDeadLetterQueue" {
		t.Errorf("ExportRangeQueue redrives to %s", dlq)
	}
	if n := mustInt(t, lookup(t, q.Properties, "RedrivePolicy", "maxReceiveCount"), "maxReceiveCount"); n < 5 {
		t.Errorf("maxReceiveCount = %d, want >= 5", n)
	}
	timeout := mustInt(t, function(t, tpl, "ExportRangeFunction")["Timeout"], "ExportRangeFunction.Timeout")
	if vis := mustInt(t, q.Properties["VisibilityTimeout"], "VisibilityTimeout"); vis < 6*timeout {
		t.Errorf("ExportRangeQueue.VisibilityTimeout = %d, want >= 6 x %d", vis, timeout)
	}
	name := resolveString(t, tpl, q.Properties["QueueName"], deployed)
	url := resolveString(t, tpl, lookup(t, function(t, tpl, "ExportFunction"), "Environment", "Variables", "EXPORT_RANGE_QUEUE_URL"), deployed)
	if want := "https://sqs." + deployed.Region + ".amazonaws.com/" + deployed.AccountID + "/" + name; url != want {
		t.Errorf("EXPORT_RANGE_QUEUE_URL = %s, want %s (the queue's URL)", url, want)
	}
	ev, ok := sqsEvent(t, tpl, "ExportRangeFunction")
	if !ok {
		t.Fatal("ExportRangeFunction has no SQS event")
	}
	if got := refTo(t, tpl, ev["Queue"], "AWS::SQS::Queue", "SQS event Queue"); got != "ExportRangeQueue" {
		t.Errorf("ExportRangeFunction reads %s", got)
	}
	if types, _ := Strings(ev["FunctionResponseTypes"]); !slices.Contains(types, "ReportBatchItemFailures") {
		t.Errorf("FunctionResponseTypes = %v, want ReportBatchItemFailures", types)
	}
	if n := mustInt(t, ev["BatchSize"], "BatchSize"); n != 1 {
		t.Errorf("BatchSize = %d, want 1: a range fills an invocation", n)
	}
	for _, s := range []Stack{deployed, withParams(deployed, "ExportRangeMaxConcurrency", "8")} {
		n := mustInt(t, resolve(t, tpl, lookup(t, ev, "ScalingConfig", "MaximumConcurrency"), s), "MaximumConcurrency")
		if want, _ := tpl.ParameterValue("ExportRangeMaxConcurrency", s); fmt.Sprint(n) != want || n < 2 {
			t.Errorf("MaximumConcurrency = %d, want the ExportRangeMaxConcurrency parameter (%s)", n, want)
		}
	}
	// The scheduled run stays one at a time; the range worker scales out.
	if _, ok := function(t, tpl, "ExportRangeFunction")["ReservedConcurrentExecutions"]; ok {
		t.Error("ExportRangeFunction has reserved concurrency: its mapping's MaximumConcurrency bounds it")
	}
}
