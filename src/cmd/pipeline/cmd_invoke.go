package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/lambdabuild"
	"github.com/dataeng/rickmorty-pipeline/src/internal/lambdaemu"
	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
)

// stringList is a flag that may be repeated.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// invokeOptions are the flags of `pipeline invoke`.
type invokeOptions struct {
	events     stringList
	envVars    string
	overrides  stringList
	bootstrap  string
	noLocal    bool
	offline    bool
	template   string
	stdin      io.Reader
	parameters map[string]string
}

func invokeCommand() *command {
	return &command{
		name:    "invoke",
		summary: "run a function's real bootstrap as Lambda runs it, on events from files (sam local invoke without Docker)",
		args:    "<FunctionLogicalId>",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			o := &invokeOptions{stdin: g.stdin}
			fs.Var(&o.events, "event", "event file (JSON); - reads standard input; repeated, the events run one after another in one warm process")
			fs.StringVar(&o.envVars, "env-vars", "", "JSON file of variables per function logical id (and \"Parameters\" for all), as sam local invoke --env-vars: only variables the template declares are set")
			fs.Var(&o.overrides, "parameter-overrides", "template parameters, Key=Value,Key2=Value2 (as sam; may repeat)")
			fs.StringVar(&o.bootstrap, "bootstrap", "", "prebuilt bootstrap to run (default: build the function for this machine with the Makefile's build-<LogicalId> recipe into <data-dir>/build/)")
			fs.BoolVar(&o.noLocal, "no-local", false, "use your AWS configuration (credentials, region, AWS_ENDPOINT_URL*) and the resolved variables as they are, instead of the local stack")
			fs.BoolVar(&o.offline, "offline", false, "ExtractFunction crawls the fake API's generated data (default: API_BASE_URL, or the fake API when the default API is unreachable)")
			fs.StringVar(&o.template, "template", "", "template.yaml (default: ./template.yaml or the nearest parent's)")
			return func(ctx context.Context) (result, error) {
				id, err := g.oneArg(fs, "name the function: pipeline invoke <FunctionLogicalId> --event FILE")
				if err != nil {
					return nil, err
				}
				return invoke(ctx, g, o, id)
			}
		},
	}
}

// invokeResult is what the invocations returned: the responses on stdout
// (one line each), or with --json every invocation's figures.
type invokeResult struct {
	Function    string             `json:"function"`
	Bootstrap   string             `json:"bootstrap"`
	Invocations []invocationResult `json:"invocations"`
}

type invocationResult struct {
	Event          string                   `json:"event"`
	RequestID      string                   `json:"requestId"`
	Response       json.RawMessage          `json:"response"`
	Error          *lambdaemu.FunctionError `json:"error,omitempty"`
	Cold           bool                     `json:"cold"`
	InitDurationMs float64                  `json:"initDurationMs,omitempty"`
	DurationMs     float64                  `json:"durationMs"`
	BilledMs       int64                    `json:"billedDurationMs"`
	MemorySizeMB   int                      `json:"memorySizeMB"`
	MaxMemoryMB    int64                    `json:"maxMemoryUsedMB"`
	Report         string                   `json:"report"`
}

// Human writes each response as the function returned it, one per line, as
// sam local invoke does.
func (r *invokeResult) Human(w io.Writer) {
	for _, inv := range r.Invocations {
		w.Write(inv.Response) //nolint:errcheck // as fmt.Fprint would
		fmt.Fprintln(w)
	}
}

func invoke(ctx context.Context, g *globals, o *invokeOptions, id string) (result, error) {
	if len(o.events) == 0 {
		return nil, errors.New("no --event: give an event file (or - for standard input)")
	}
	if n := slices.Index(o.events, "-"); n >= 0 && slices.Index(o.events[n+1:], "-") >= 0 {
		return nil, errors.New("--event - (standard input) may be given once")
	}
	tpl, tplPath, err := (&sourceFlags{template: o.template}).loadTemplate()
	if err != nil {
		return nil, err
	}
	fc, err := o.function(tpl, id, g.stderr)
	if err != nil {
		return nil, err
	}
	events, err := o.readEvents()
	if err != nil {
		return nil, err
	}

	fn := lambdaemu.Function{Name: fc.Name, Handler: fc.Handler, Env: fc.Environment, Timeout: fc.Timeout, MemoryMB: fc.MemoryMB,
		Region: samtemplate.LocalRegion, AccountID: samtemplate.LocalAccountID, LogFormat: fc.LogFormat, LogLevel: fc.LogLevel,
		LogGroup: fc.LogGroup, Logs: g.stderr}
	var where string
	if o.noLocal {
		where, err = o.callersAWS(ctx, &fn)
	} else {
		var closeStack func()
		closeStack, where, err = o.localStack(ctx, g, &fn)
		if closeStack != nil {
			defer closeStack()
		}
	}
	if err != nil {
		return nil, err
	}
	if fn.Bootstrap, err = o.buildBootstrap(ctx, g, tplPath, id); err != nil {
		return nil, err
	}
	fmt.Fprintf(g.stderr, "pipeline invoke: %s (%s, %v, %d MB) → %s\n", id, fc.Name, fc.Timeout, fc.MemoryMB, where)
	em, err := lambdaemu.New(fn)
	if err != nil {
		return nil, err
	}
	defer em.Close()

	res := &invokeResult{Function: id, Bootstrap: fn.Bootstrap}
	var failed []string
	for i, ev := range events {
		r, err := em.Invoke(ctx, ev)
		if err != nil {
			return res, fmt.Errorf("event %s: %w", o.events[i], err)
		}
		res.Invocations = append(res.Invocations, invocationResult{Event: o.events[i], RequestID: r.RequestID, Response: r.Payload, Error: r.Error,
			Cold: r.Cold, InitDurationMs: millis(r.InitDuration), DurationMs: millis(r.Duration), BilledMs: r.BilledDuration().Milliseconds(),
			MemorySizeMB: r.MemoryMB, MaxMemoryMB: r.MaxMemoryMB(), Report: r.Report()})
		if r.Error != nil {
			failed = append(failed, fmt.Sprintf("%s: %s", o.events[i], r.Error.Type))
		}
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("%s returned an error for %s", id, strings.Join(failed, ", "))
	}
	return res, nil
}

// millis is d in milliseconds, to the hundredth as REPORT gives it.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*100) / 100
}

// function resolves the function's configuration as sam local invoke does:
// Globals merged, the local pseudo parameters, parameter overrides, then the
// --env-vars file for the variables the function declares.
func (o *invokeOptions) function(tpl *samtemplate.Template, id string, stderr io.Writer) (samtemplate.FunctionConfig, error) {
	o.parameters = map[string]string{}
	for _, s := range o.overrides {
		p, err := samtemplate.ParseParameterOverrides(s)
		if err != nil {
			return samtemplate.FunctionConfig{}, fmt.Errorf("--parameter-overrides: %w", err)
		}
		for k, v := range p {
			o.parameters[k] = v
		}
	}
	if err := tpl.CheckParameters(o.parameters); err != nil {
		return samtemplate.FunctionConfig{}, err
	}
	if r, ok := tpl.Resource(id); !ok || r.Type != samtemplate.FunctionType {
		return samtemplate.FunctionConfig{}, fmt.Errorf("%s is no function of the template (functions: %s)", id, strings.Join(tpl.ResourceIDs(samtemplate.FunctionType), ", "))
	}
	fc, err := tpl.FunctionConfig(id, samtemplate.LocalStack(o.parameters))
	if err != nil {
		return fc, err
	}
	if o.envVars != "" {
		data, err := os.ReadFile(o.envVars)
		if err != nil {
			return fc, fmt.Errorf("--env-vars: %w", err)
		}
		ev, err := samtemplate.ParseEnvVars(data)
		if err != nil {
			return fc, fmt.Errorf("--env-vars %s: %w", o.envVars, err)
		}
		if ignored := ev.Apply(id, fc.Environment); len(ignored) > 0 {
			fmt.Fprintf(stderr, "pipeline invoke: %s sets %s for %s, which the template does not declare: ignored, as sam local invoke ignores it\n",
				o.envVars, strings.Join(ignored, ", "), id)
		}
	}
	return fc, nil
}

// readEvents reads every event file (- is standard input).
func (o *invokeOptions) readEvents() ([][]byte, error) {
	out := make([][]byte, 0, len(o.events))
	for _, name := range o.events {
		var data []byte
		var err error
		if name == "-" {
			if o.stdin == nil {
				return nil, errors.New("--event -: no standard input")
			}
			data, err = io.ReadAll(io.LimitReader(o.stdin, lambdaemu.MaxEventBytes+1))
		} else {
			data, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, fmt.Errorf("reading event %s: %w", name, err)
		}
		if !json.Valid(data) {
			return nil, fmt.Errorf("event %s is not JSON: Lambda refuses it", name)
		}
		out = append(out, data)
	}
	return out, nil
}

// localStack points the function at the local stack, started on
// --data-dir: its S3 endpoint and bucket, its MySQL (the embedded engine, or
// --mysql-dsn) when the function declares MYSQL_DSN, and for Extract the
// fake API when the API cannot be reached. It returns what stops them.
func (o *invokeOptions) localStack(ctx context.Context, g *globals, fn *lambdaemu.Function) (func(), string, error) {
	env := fn.Env
	for _, name := range []string{"AWS_ENDPOINT_URL_S3", "BUCKET"} {
		if _, ok := env[name]; !ok {
			return nil, "", fmt.Errorf("%s does not declare %s, so it cannot be pointed at the local stack: declare it in the template, or use --no-local", fn.Name, name)
		}
	}
	_, needDB := env["MYSQL_DSN"]
	st, err := g.openStack(ctx, needDB)
	if err != nil {
		return nil, "", err
	}
	closers := []func(){func() { st.Close() }}
	stop := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	env["AWS_ENDPOINT_URL_S3"] = st.Endpoint
	env["S3_FORCE_PATH_STYLE"] = "true"
	for _, name := range []string{"BUCKET", "EXPORT_BUCKET"} {
		if _, ok := env[name]; ok {
			env[name] = st.Bucket
		}
	}
	where := fmt.Sprintf("s3://%s on the local stack (%s)", st.Bucket, st.Server.Dir(st.Bucket))
	if needDB {
		env["MYSQL_DSN"] = st.DSN
		where += ", " + databaseName(st)
	}
	if api, ok := env["API_BASE_URL"]; ok {
		src, err := o.api(ctx, api, g.stderr)
		if err != nil {
			stop()
			return nil, "", err
		}
		closers = append(closers, src.close)
		env["API_BASE_URL"] = src.URL
		where += ", " + src.Description
	}
	fn.Credentials = lambdaemu.Credentials{AccessKeyID: locals3.AccessKeyID, SecretAccessKey: locals3.SecretAccessKey}
	fn.Region = locals3.Region
	return stop, where, nil
}

// api is the API Extract crawls: the fake API's generated data with
// --offline or when the default API cannot be reached (as `pipeline run`
// does), else the one configured.
func (o *invokeOptions) api(ctx context.Context, url string, note io.Writer) (*apiSource, error) {
	if !o.offline {
		err := probeAPI(ctx, url)
		if err == nil {
			return &apiSource{URL: url, Description: "the API at " + url, close: func() {}}, nil
		}
		if url != rickmorty.DefaultBaseURL {
			return nil, fmt.Errorf("API_BASE_URL %s is unreachable (%v); --offline crawls the fake API's generated data", url, err)
		}
		fmt.Fprintf(note, "pipeline invoke: the Rick and Morty API (%s) is unreachable (%v): the function crawls the fake API's generated data instead\n", url, err)
	}
	return generatedFakeAPI(fakeapi.DefaultSizes)
}

// callersAWS gives the function the caller's AWS configuration, as sam
// local invoke does: the credentials and region the SDK finds (profile,
// environment, SSO, ...), resolved here and passed as variables, and the
// caller's AWS_ENDPOINT_URL* for the endpoints the function leaves empty.
func (o *invokeOptions) callersAWS(ctx context.Context, fn *lambdaemu.Function) (string, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("--no-local: loading your AWS configuration: %w", err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("--no-local: no AWS credentials in your configuration: %w", err)
	}
	fn.Credentials = lambdaemu.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	if cfg.Region != "" {
		fn.Region = cfg.Region
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if (k == "AWS_ENDPOINT_URL" || strings.HasPrefix(k, "AWS_ENDPOINT_URL_")) && v != "" && fn.Env[k] == "" {
			fn.Env[k] = v
		}
	}
	where := "your AWS configuration (region " + fn.Region + ")"
	if b := fn.Env["BUCKET"]; b != "" {
		where += ", s3://" + b
	}
	if e := fn.Env["AWS_ENDPOINT_URL_S3"]; e != "" {
		where += " at " + e
	}
	return where, nil
}

// buildBootstrap returns --bootstrap, or builds the function for this
// machine with the Makefile's recipe beside the template.
func (o *invokeOptions) buildBootstrap(ctx context.Context, g *globals, tplPath, id string) (string, error) {
	if o.bootstrap != "" {
		return o.bootstrap, nil
	}
	recipe, err := lambdabuild.Read(filepath.Join(filepath.Dir(tplPath), "Makefile"), id)
	if err != nil {
		return "", fmt.Errorf("building %s: %w (or give --bootstrap)", id, err)
	}
	dir, err := filepath.Abs(filepath.Join(g.dataDir, "build", id))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bootstrap")
	if err := recipe.Build(ctx, lambdabuild.HostArch(), out, g.stderr); err != nil {
		return "", err
	}
	return out, nil
}
