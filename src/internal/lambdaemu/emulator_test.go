package lambdaemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testBootstrap builds testdata/testfn, a tiny function that does what its
// event says, once per test binary.
var testBootstrap = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lambdaemu-testfn")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", out, "./testdata/testfn")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", errors.New(string(b))
	}
	return out, nil
})

// syncBuffer is a bytes.Buffer safe for the emulator's and the process's
// writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestEmulator returns an emulator of testfn with fn's settings.
func newTestEmulator(t *testing.T, fn Function) (*Emulator, *syncBuffer) {
	t.Helper()
	bin, err := testBootstrap()
	if err != nil {
		t.Fatalf("building testfn: %v", err)
	}
	logs := &syncBuffer{}
	fn.Bootstrap, fn.Logs = bin, logs
	if fn.Name == "" {
		fn.Name = "testfn"
	}
	if fn.Timeout == 0 {
		fn.Timeout = 30 * time.Second
	}
	e, err := New(fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	return e, logs
}

func invoke(t *testing.T, e *Emulator, event string) *Result {
	t.Helper()
	res, err := e.Invoke(context.Background(), []byte(event))
	if err != nil {
		t.Fatalf("Invoke(%s): %v", event, err)
	}
	return res
}

// seenBy decodes what testfn reports it saw.
func seenBy(t *testing.T, res *Result) seen {
	t.Helper()
	if res.Error != nil {
		t.Fatalf("invocation failed: %v", res.Error)
	}
	var s seen
	if err := json.Unmarshal(res.Payload, &s); err != nil {
		t.Fatalf("response %.200s: %v", res.Payload, err)
	}
	return s
}

type seen struct {
	Invocation int      `json:"invocation"`
	PID        int      `json:"pid"`
	RequestID  string   `json:"requestId"`
	ARN        string   `json:"arn"`
	DeadlineMS int64    `json:"deadlineMs"`
	TraceID    string   `json:"traceId"`
	Env        []string `json:"env"`
}

func (s seen) env(name string) (string, bool) {
	for _, kv := range s.Env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

func TestWarmInvocationReusesTheProcessWithoutInitDuration(t *testing.T) {
	e, logs := newTestEmulator(t, Function{MemoryMB: 256})
	first := invoke(t, e, `{}`)
	second := invoke(t, e, `{}`)
	s1, s2 := seenBy(t, first), seenBy(t, second)
	if !first.Cold || first.InitDuration <= 0 || !strings.Contains(first.Report(), "\tInit Duration: ") {
		t.Errorf("first invocation: cold %v, init %v, %q", first.Cold, first.InitDuration, first.Report())
	}
	if second.Cold || second.InitDuration != 0 || strings.Contains(second.Report(), "Init Duration") {
		t.Errorf("second invocation: cold %v, init %v, %q", second.Cold, second.InitDuration, second.Report())
	}
	if s1.PID != s2.PID || s1.Invocation != 1 || s2.Invocation != 2 {
		t.Errorf("pids %d, %d, invocations %d, %d: want one process serving both", s1.PID, s2.PID, s1.Invocation, s2.Invocation)
	}
	for _, r := range []*Result{first, second} {
		if !strings.HasPrefix(r.Report(), "REPORT RequestId: "+r.RequestID+"\tDuration: ") ||
			!strings.Contains(r.Report(), "\tMemory Size: 256 MB\tMax Memory Used: ") || r.MaxMemoryKB <= 0 {
			t.Errorf("report %q", r.Report())
		}
		if r.BilledDuration() < r.Duration+r.InitDuration {
			t.Errorf("billed %v for %v + init %v", r.BilledDuration(), r.Duration, r.InitDuration)
		}
	}
	e.Close()
	out := logs.String()
	for _, want := range []string{"START RequestId: " + first.RequestID + " Version: $LATEST\n", "END RequestId: " + first.RequestID + "\n",
		first.Report() + "\n", "START RequestId: " + second.RequestID, second.Report() + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}

func TestNextCarriesRequestIDDeadlineARNAndTrace(t *testing.T) {
	e, _ := newTestEmulator(t, Function{Name: "fn-x", Timeout: 42 * time.Second, Region: "eu-west-1", AccountID: "210987654321"})
	before := time.Now()
	res := invoke(t, e, `{}`)
	after := time.Now()
	s := seenBy(t, res)
	if s.RequestID != res.RequestID || len(s.RequestID) != 36 {
		t.Errorf("request id %q, result's %q", s.RequestID, res.RequestID)
	}
	if s.ARN != "arn:aws:lambda:eu-west-1:210987654321:function:fn-x" {
		t.Errorf("arn %q", s.ARN)
	}
	// The deadline is the delivery time plus the Timeout, whatever that was.
	lo, hi := before.Add(42*time.Second).UnixMilli()-1, after.Add(42*time.Second).UnixMilli()
	if s.DeadlineMS < lo || s.DeadlineMS > hi {
		t.Errorf("deadline %d outside [%d, %d]", s.DeadlineMS, lo, hi)
	}
	if !strings.HasPrefix(s.TraceID, "Root=1-") || !strings.Contains(s.TraceID, ";Parent=") {
		t.Errorf("trace id %q", s.TraceID)
	}
	if again := seenBy(t, invoke(t, e, `{}`)); again.RequestID == s.RequestID || again.TraceID == s.TraceID {
		t.Errorf("the second invocation reuses request id %q or trace %q", again.RequestID, again.TraceID)
	}
}

func TestEnvironmentIsCleanAndLambdas(t *testing.T) {
	t.Setenv("CALLER_SECRET", "must-not-leak")
	e, _ := newTestEmulator(t, Function{
		Name: "fn-env", MemoryMB: 512, LogFormat: "JSON", LogLevel: "WARN", LogGroup: "/aws/lambda/group-x",
		Env:         map[string]string{"BUCKET": "b", "EMPTY": ""},
		Credentials: Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET"},
	})
	s := seenBy(t, invoke(t, e, `{}`))
	want := map[string]string{
		"BUCKET": "b", "EMPTY": "", "_HANDLER": "bootstrap", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
		"AWS_LAMBDA_FUNCTION_NAME": "fn-env", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
		"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/group-x",
		"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "WARN", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET",
		"TZ": ":UTC", "LANG": "en_US.UTF-8", "LAMBDA_RUNTIME_DIR": "/var/runtime",
	}
	for k, v := range want {
		if got, ok := s.env(k); !ok || got != v {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
		}
	}
	for _, k := range []string{"AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_LOG_STREAM_NAME", "LAMBDA_TASK_ROOT", "PATH"} {
		if v, ok := s.env(k); !ok || v == "" {
			t.Errorf("%s unset", k)
		}
	}
	for _, k := range []string{"CALLER_SECRET", "HOME", "AWS_SESSION_TOKEN", "GOFLAGS"} {
		if v, ok := s.env(k); ok {
			t.Errorf("%s=%q reached the function", k, v)
		}
	}
	if _, err := New(Function{Name: "x", Bootstrap: e.fn.Bootstrap, Env: map[string]string{"AWS_REGION": "eu-west-1", "AWS_LAMBDA_RUNTIME_API": "x"}}); err == nil ||
		!strings.Contains(err.Error(), "AWS_LAMBDA_RUNTIME_API, AWS_REGION") {
		t.Errorf("reserved variables: %v", err)
	}
}

// coldAgain checks that the next invocation runs in a new process.
func coldAgain(t *testing.T, e *Emulator, oldPID int) {
	t.Helper()
	res := invoke(t, e, `{}`)
	s := seenBy(t, res)
	if !res.Cold || s.PID == oldPID || s.Invocation != 1 || !strings.Contains(res.Report(), "Init Duration") {
		t.Errorf("after the failure: cold %v, pid %d (was %d), invocation %d; want a new process", res.Cold, s.PID, oldPID, s.Invocation)
	}
}

func TestTimeoutKillsTheProcess(t *testing.T) {
	e, logs := newTestEmulator(t, Function{Timeout: time.Second})
	pid := seenBy(t, invoke(t, e, `{}`)).PID
	res := invoke(t, e, `{"sleep": "1m"}`)
	if res.Error == nil || res.Error.Type != ErrorTimeout || !res.Platform ||
		res.Error.Message != "RequestId: "+res.RequestID+" Error: Task timed out after 1.00 seconds" {
		t.Fatalf("error %+v", res.Error)
	}
	if res.Duration != time.Second || !strings.HasSuffix(res.Report(), "\tStatus: timeout") {
		t.Errorf("duration %v, report %q", res.Duration, res.Report())
	}
	var doc FunctionError
	if err := json.Unmarshal(res.Payload, &doc); err != nil || doc != *res.Error {
		t.Errorf("payload %s", res.Payload)
	}
	if !strings.Contains(logs.String(), "Task timed out after 1.00 seconds\n") {
		t.Errorf("logs:\n%s", logs)
	}
	coldAgain(t, e, pid)
}

func TestExitAndPanicEndTheEnvironment(t *testing.T) {
	e, _ := newTestEmulator(t, Function{})
	pid := seenBy(t, invoke(t, e, `{}`)).PID
	res := invoke(t, e, `{"exit": 3}`)
	if res.Error == nil || res.Error.Type != ErrorExit || !strings.HasSuffix(res.Error.Message, "Runtime exited with error: exit status 3") ||
		!strings.HasSuffix(res.Report(), "\tStatus: error\tError Type: Runtime.ExitError") {
		t.Fatalf("exit: %+v, %q", res.Error, res.Report())
	}
	coldAgain(t, e, pid)

	// A panic is the function's error; aws-lambda-go then exits.
	pid = seenBy(t, invoke(t, e, `{}`)).PID
	res = invoke(t, e, `{"panic": "boom"}`)
	if res.Error == nil || res.Error.Message != "boom" || res.Platform {
		t.Fatalf("panic: %+v", res.Error)
	}
	coldAgain(t, e, pid)
}

func TestFunctionErrorKeepsTheEnvironment(t *testing.T) {
	e, _ := newTestEmulator(t, Function{})
	res := invoke(t, e, `{"error": "bad input"}`)
	if res.Error == nil || res.Error.Message != "bad input" || res.Error.Type != "errorString" || res.Platform {
		t.Fatalf("error %+v", res.Error)
	}
	var doc map[string]any
	if err := json.Unmarshal(res.Payload, &doc); err != nil || doc["errorMessage"] != "bad input" {
		t.Errorf("payload %s", res.Payload)
	}
	if strings.Contains(res.Report(), "Status:") {
		t.Errorf("report %q", res.Report())
	}
	if next := invoke(t, e, `{}`); next.Cold || seenBy(t, next).Invocation != 2 {
		t.Errorf("the environment was not reused after a function error")
	}
}

func TestMemorySizeIsEnforced(t *testing.T) {
	e, _ := newTestEmulator(t, Function{MemoryMB: 64})
	pid := seenBy(t, invoke(t, e, `{"allocMB": 8}`)).PID // within the limit
	res := invoke(t, e, `{"allocMB": 256}`)
	if res.Error == nil || res.Error.Type != ErrorOutOfMemory || !strings.Contains(res.Error.Message, "Runtime exited with error: signal: killed") {
		t.Fatalf("error %+v", res.Error)
	}
	if res.MaxMemoryMB() <= 64 || !strings.HasSuffix(res.Report(), "\tStatus: error\tError Type: Runtime.OutOfMemory") {
		t.Errorf("max memory %d MB, report %q", res.MaxMemoryMB(), res.Report())
	}
	coldAgain(t, e, pid)
}

func TestResponsesOver6MBAreRefused(t *testing.T) {
	e, _ := newTestEmulator(t, Function{})
	if res := invoke(t, e, `{"respondBytes": 1000000}`); res.Error != nil || len(res.Payload) < 1000000 {
		t.Fatalf("1 MB response: %v, %d bytes", res.Error, len(res.Payload))
	}
	res := invoke(t, e, `{"respondBytes": 7000000}`)
	if res.Error == nil || res.Error.Type != ErrorResponseSize || !strings.Contains(res.Error.Message, "exceeded maximum allowed payload size (6291556 bytes)") {
		t.Fatalf("error %+v", res.Error)
	}
	if len(res.Payload) > 1000 {
		t.Errorf("the refused response came back (%d bytes)", len(res.Payload))
	}
	if next := invoke(t, e, `{}`); next.Error != nil {
		t.Errorf("after the refusal: %v", next.Error)
	}
}

func TestEventsThatAreNotJSONAreRefused(t *testing.T) {
	e, logs := newTestEmulator(t, Function{})
	for _, ev := range []string{"", "not json", `{"a":`, "{}\n{}"} {
		if res, err := e.Invoke(context.Background(), []byte(ev)); !errors.Is(err, ErrInvalidEvent) || res != nil {
			t.Errorf("Invoke(%q) = %v, %v; want ErrInvalidEvent", ev, res, err)
		}
	}
	big := append(append([]byte(`"`), bytes.Repeat([]byte("x"), MaxEventBytes)...), '"')
	if _, err := e.Invoke(context.Background(), big); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("a 6 MB event: %v", err)
	}
	if e.sb != nil || logs.String() != "" {
		t.Errorf("a refused event started the function: %q", logs)
	}
}

func TestInitFailures(t *testing.T) {
	for _, c := range []struct{ init, typ, msg string }{
		{"error", "InitFailed", "no configuration"},
		{"exit", ErrorExit, "Error: Runtime exited with error: exit status 4"},
	} {
		t.Run(c.init, func(t *testing.T) {
			e, _ := newTestEmulator(t, Function{Env: map[string]string{"TESTFN_INIT": c.init}})
			res := invoke(t, e, `{}`)
			if res.Error == nil || res.Error.Type != c.typ || res.Error.Message != c.msg || !res.Cold || res.InitDuration <= 0 {
				t.Errorf("result %+v, error %+v", res, res.Error)
			}
			if e.sb != nil {
				t.Error("the failed environment was kept")
			}
		})
	}
}

func TestContextEndsTheInvocation(t *testing.T) {
	e, logs := newTestEmulator(t, Function{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.Invoke(ctx, []byte(`{"sleep": "1m"}`))
		done <- err
	}()
	// Cancel once the invocation has started (its START line is written).
	for !strings.Contains(logs.String(), "START RequestId: ") {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

// The Runtime API refuses answers to invocations that are not in progress.
func TestRuntimeAPIRefusesStrayAnswers(t *testing.T) {
	sb := &sandbox{next: make(chan *invocation), polling: make(chan struct{}, 1), initErr: make(chan *outcome, 1), exited: make(chan struct{})}
	srv := httptest.NewServer(sb.routes())
	defer srv.Close()
	post := func(path, body string) int {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/2018-06-01/runtime/invocation/nope/response", "{}"); code != http.StatusBadRequest {
		t.Errorf("unknown id: %d", code)
	}
	inv := newInvocation("id-1", []byte(`{}`), time.Now().Add(time.Minute), "arn")
	sb.current = inv
	if code := post("/2018-06-01/runtime/invocation/id-1/response", `"ok"`); code != http.StatusAccepted {
		t.Errorf("answer: %d", code)
	}
	if code := post("/2018-06-01/runtime/invocation/id-1/error", `{"errorType":"X","errorMessage":"late"}`); code != http.StatusForbidden {
		t.Errorf("second answer: %d", code)
	}
	if out := <-inv.done; string(out.payload) != `"ok"` || out.err != nil {
		t.Errorf("outcome %+v", out)
	}
	if code := post("/2018-06-01/runtime/unknown", ""); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
	if !slices.Contains(reserved, "AWS_LAMBDA_RUNTIME_API") {
		t.Error("AWS_LAMBDA_RUNTIME_API is not reserved")
	}
}
