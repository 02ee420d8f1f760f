package lambdaemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Lambda's limits and defaults.
const (
	// MaxEventBytes is the largest event a synchronous invocation takes.
	MaxEventBytes = 6 << 20
	// MaxResponseBytes is the largest response a function may return (the
	// figure Lambda's Runtime API names when it refuses one).
	MaxResponseBytes = 6<<20 + 100
	// DefaultTimeout and DefaultMemoryMB are what a function without Timeout
	// or MemorySize gets.
	DefaultTimeout  = 3 * time.Second
	DefaultMemoryMB = 128
	// InitTimeout bounds the init phase.
	InitTimeout = 10 * time.Second
)

// Error types of the failures Lambda itself reports (the function's own
// errors carry the type the function gives).
const (
	ErrorTimeout      = "Sandbox.Timedout"
	ErrorExit         = "Runtime.ExitError"
	ErrorOutOfMemory  = "Runtime.OutOfMemory"
	ErrorResponseSize = "Function.ResponseSizeTooLarge"
	ErrorInit         = "Runtime.InitError"
)

// ErrInvalidEvent is returned for an event Lambda would refuse before
// invoking anything: one that is not JSON, or too large.
var ErrInvalidEvent = errors.New("invalid event")

// Credentials are the AWS credentials the function gets, as Lambda gives it
// its execution role's.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// Function is a function as Lambda would run it.
type Function struct {
	Name        string            // the function's name: AWS_LAMBDA_FUNCTION_NAME and its ARN
	Bootstrap   string            // the executable, built for this machine
	Handler     string            // _HANDLER; "bootstrap" when empty
	Env         map[string]string // the function's Environment.Variables
	Timeout     time.Duration     // each invocation's deadline; DefaultTimeout when zero
	MemoryMB    int               // the memory limit; DefaultMemoryMB when zero
	Region      string            // AWS_REGION and AWS_DEFAULT_REGION; us-east-1 when empty
	AccountID   string            // the account in the function's ARN; 123456789012 when empty
	Credentials Credentials       // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
	LogFormat   string            // LoggingConfig.LogFormat: "JSON" sets AWS_LAMBDA_LOG_FORMAT and AWS_LAMBDA_LOG_LEVEL
	LogLevel    string            // LoggingConfig.ApplicationLogLevel (with LogFormat JSON)
	LogGroup    string            // AWS_LAMBDA_LOG_GROUP_NAME; /aws/lambda/<Name> when empty
	// Logs receives the function's standard output and error, and the
	// START, END and REPORT lines; nil discards them. An *os.File is handed
	// to the process as it is, so its lines and the emulator's keep their
	// order; any other writer gets the process's output through a pipe, and
	// its last lines may then trail the END and REPORT lines.
	Logs io.Writer
}

// reserved are the variables Lambda sets itself and refuses in a function's
// configuration.
var reserved = []string{
	"_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
	"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
	"AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
	"AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
}

// FunctionError is a failed invocation: the error the function returned, or
// one Lambda reports itself (ErrorTimeout, ErrorExit, ...).
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// Result is one invocation.
type Result struct {
	RequestID string
	// Payload is the function's response, or the error document (JSON with
	// errorType and errorMessage) when Error is set.
	Payload []byte
	Error   *FunctionError
	// Platform is set when Lambda itself ended the invocation (a timeout, an
	// exit, memory, an oversized response): REPORT then carries its status.
	Platform     bool
	Cold         bool          // a new execution environment served it
	InitDuration time.Duration // its init phase (cold starts only)
	Duration     time.Duration // from the event's delivery to the response
	MemoryMB     int           // the limit
	MaxMemoryKB  int64         // the process's peak resident memory so far
}

// MaxMemoryMB is the peak memory in MB as REPORT gives it (rounded up).
func (r *Result) MaxMemoryMB() int64 { return (r.MaxMemoryKB + 1023) / 1024 }

// BilledDuration is what Lambda bills: Duration, plus the init phase on a
// cold start (provided runtimes are billed for it), rounded up to the
// millisecond.
func (r *Result) BilledDuration() time.Duration {
	ms := math.Ceil(float64(r.Duration+r.InitDuration) / float64(time.Millisecond))
	return time.Duration(ms) * time.Millisecond
}

// Report is the invocation's REPORT line, as Lambda writes it.
func (r *Result) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB",
		r.RequestID, ms(r.Duration), r.BilledDuration().Milliseconds(), r.MemoryMB, r.MaxMemoryMB())
	if r.Cold {
		fmt.Fprintf(&b, "\tInit Duration: %.2f ms", ms(r.InitDuration))
	}
	if r.Platform && r.Error != nil {
		if r.Error.Type == ErrorTimeout {
			b.WriteString("\tStatus: timeout")
		} else {
			fmt.Fprintf(&b, "\tStatus: error\tError Type: %s", r.Error.Type)
		}
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Emulator is one function's execution environment: the process and its
// Runtime API, started by the first invocation and reused by the next ones
// until Close, a timeout, a crash or memory ends it.
type Emulator struct {
	fn   Function
	logs *lockedWriter

	mu     sync.Mutex // one invocation at a time
	sb     *sandbox
	closed bool
}

// New checks fn and returns its emulator; no process starts before the
// first Invoke.
func New(fn Function) (*Emulator, error) {
	if fn.Name == "" {
		return nil, errors.New("the function has no name")
	}
	if fn.Bootstrap == "" {
		return nil, fmt.Errorf("%s: no bootstrap", fn.Name)
	}
	abs, err := filepath.Abs(fn.Bootstrap)
	if err != nil {
		return nil, err
	}
	fn.Bootstrap = abs
	if st, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("%s: bootstrap: %w", fn.Name, err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%s: bootstrap %s is not an executable file", fn.Name, abs)
	}
	var bad []string
	for name := range fn.Env {
		if slices.Contains(reserved, name) {
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return nil, fmt.Errorf("%s: the environment sets %s, which Lambda reserves", fn.Name, strings.Join(bad, ", "))
	}
	if fn.Handler == "" {
		fn.Handler = "bootstrap"
	}
	if fn.Timeout <= 0 {
		fn.Timeout = DefaultTimeout
	}
	if fn.MemoryMB <= 0 {
		fn.MemoryMB = DefaultMemoryMB
	}
	if fn.Region == "" {
		fn.Region = "us-east-1"
	}
	if fn.AccountID == "" {
		fn.AccountID = "123456789012"
	}
	if fn.LogGroup == "" {
		fn.LogGroup = "/aws/lambda/" + fn.Name
	}
	if fn.Logs == nil {
		fn.Logs = io.Discard
	}
	return &Emulator{fn: fn, logs: &lockedWriter{w: fn.Logs}}, nil
}

// ARN is the function's ARN, as the Runtime API announces it.
func (e *Emulator) ARN() string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", e.fn.Region, e.fn.AccountID, e.fn.Name)
}

// Invoke runs one invocation with event and returns its result. A function
// that failed gives a Result with Error set and a nil error; the error is
// for what Lambda would refuse (ErrInvalidEvent), a process that cannot
// start, ctx ending, or a closed emulator.
func (e *Emulator) Invoke(ctx context.Context, event []byte) (*Result, error) {
	if len(event) > MaxEventBytes {
		return nil, fmt.Errorf("%w: %d bytes, over the %d bytes of a synchronous invocation", ErrInvalidEvent, len(event), MaxEventBytes)
	}
	if !json.Valid(event) {
		return nil, fmt.Errorf("%w: could not parse the request body into JSON", ErrInvalidEvent)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("the emulator is closed")
	}
	res := &Result{RequestID: uuid.NewString(), MemoryMB: e.fn.MemoryMB}
	if e.sb != nil && e.sb.gone() {
		e.reset()
	}
	if e.sb == nil {
		sb, err := startSandbox(e.fn, e.logs)
		if err != nil {
			return nil, err
		}
		e.sb = sb
		res.Cold = true
		ferr, err := sb.awaitInit(ctx, InitTimeout)
		res.InitDuration = sb.initDuration()
		if err != nil {
			e.reset()
			return nil, err
		}
		if ferr != nil {
			e.logf("START RequestId: %s Version: $LATEST", res.RequestID)
			res.MaxMemoryKB = sb.mem.peakKB()
			e.fail(res, ferr)
			return res, nil
		}
	} else {
		e.sb.thaw()
	}
	sb := e.sb

	inv := newInvocation(res.RequestID, event, time.Now().Add(e.fn.Timeout), e.ARN())
	e.logf("START RequestId: %s Version: $LATEST", res.RequestID)
	start := time.Now()
	timer := time.NewTimer(time.Until(inv.deadline))
	defer timer.Stop()
	timedOut := func() (*Result, error) {
		sb.kill(killTimeout)
		res.Duration = e.fn.Timeout
		res.MaxMemoryKB = sb.mem.peakKB()
		e.fail(res, &FunctionError{Type: ErrorTimeout,
			Message: fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", res.RequestID, e.fn.Timeout.Seconds())})
		return res, nil
	}
	exited := func() (*Result, error) {
		res.Duration = time.Since(start)
		res.MaxMemoryKB = sb.mem.peakKB()
		e.fail(res, sb.exitError(res.RequestID))
		return res, nil
	}
	select {
	case sb.next <- inv:
	case <-sb.exited:
		return exited()
	case <-timer.C:
		return timedOut()
	case <-ctx.Done():
		e.reset()
		return nil, ctx.Err()
	}
	select {
	case out := <-inv.done:
		res.Duration = out.at.Sub(start)
		res.Payload, res.Error, res.Platform = out.payload, out.err, out.platform
	case <-sb.exited:
		return exited()
	case <-timer.C:
		return timedOut()
	case <-ctx.Done():
		e.reset()
		return nil, ctx.Err()
	}

	// The invocation ends when the runtime asks for the next event; the
	// environment is then frozen until the next invocation.
	select {
	case <-sb.polling:
	case <-sb.exited:
	case <-timer.C:
		sb.kill(killTimeout)
	case <-ctx.Done():
		e.reset()
		return nil, ctx.Err()
	}
	res.MaxMemoryKB = sb.mem.peakKB()
	if sb.mem.over() && !sb.gone() {
		sb.kill(killMemory)
	}
	if sb.killedFor() == killMemory {
		// The kernel of a Lambda sandbox would have ended the process the
		// moment it went over, whatever it answered.
		e.fail(res, sb.exitError(res.RequestID))
		return res, nil
	}
	if res.Platform {
		e.fail(res, res.Error)
		return res, nil
	}
	if sb.gone() {
		e.reset()
	} else {
		sb.freeze()
	}
	e.finish(res)
	return res, nil
}

// fail ends an invocation that Lambda failed itself: the environment is
// discarded, so the next invocation starts a new one.
func (e *Emulator) fail(res *Result, ferr *FunctionError) {
	res.Error, res.Platform = ferr, true
	res.Payload, _ = json.Marshal(ferr)
	e.logf("%s", ferr.Message)
	e.reset()
	e.finish(res)
}

func (e *Emulator) finish(res *Result) {
	e.logf("END RequestId: %s", res.RequestID)
	e.logf("%s", res.Report())
}

func (e *Emulator) logf(format string, args ...any) {
	fmt.Fprintf(e.logs, format+"\n", args...)
}

// reset stops the execution environment, if any.
func (e *Emulator) reset() {
	if e.sb != nil {
		e.sb.stop()
		e.sb = nil
	}
}

// Close stops the execution environment. The emulator takes no more
// invocations.
func (e *Emulator) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	e.reset()
	return nil
}

// lockedWriter serializes the writes of the process's output copier and of
// the emulator's own lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// traceID is an X-Ray trace header for a new, unsampled trace.
func traceID(now time.Time) string {
	return "Root=1-" + strconv.FormatInt(now.Unix(), 16) + "-" + randomHex(24) + ";Parent=" + randomHex(16) + ";Sampled=0"
}
