package lambdaemu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Why the emulator killed a process.
const (
	killTimeout = "timeout"
	killMemory  = "memory"
	killStop    = "stop"
)

// sandbox is one execution environment: the bootstrap's process and the
// Runtime API it talks to.
type sandbox struct {
	cmd     *exec.Cmd
	srv     *http.Server
	mem     *memoryWatch
	started time.Time

	next    chan *invocation // Invoke hands an event to the runtime's waiting invocation/next
	polling chan struct{}    // a signal each time the runtime calls invocation/next idle
	initErr chan *outcome    // what the runtime posted to init/error
	exited  chan struct{}    // closed once the process has exited
	waitErr error            // the process's exit, set before exited closes

	mu        sync.Mutex
	current   *invocation // the invocation in progress
	readyAt   time.Time   // first invocation/next: the end of the init phase
	killed    string      // why the emulator killed the process
	frozen    bool
	stopOnce  sync.Once
	waitGroup sync.WaitGroup
}

// invocation is one event handed to the runtime.
type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	arn      string
	trace    string
	done     chan *outcome // the first answer (buffered)
	answered atomic.Bool
}

// outcome is the runtime's answer to an invocation (or init/error).
type outcome struct {
	payload  []byte
	err      *FunctionError
	platform bool
	at       time.Time
}

func newInvocation(id string, payload []byte, deadline time.Time, arn string) *invocation {
	return &invocation{id: id, payload: payload, deadline: deadline, arn: arn, trace: traceID(time.Now()), done: make(chan *outcome, 1)}
}

// startSandbox starts the Runtime API on a free local port and the
// bootstrap in a clean environment pointed at it.
func startSandbox(fn Function, logs *lockedWriter) (*sandbox, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the Runtime API: %w", err)
	}
	sb := &sandbox{next: make(chan *invocation), polling: make(chan struct{}, 1), initErr: make(chan *outcome, 1), exited: make(chan struct{})}
	sb.srv = &http.Server{Handler: sb.routes(), ReadHeaderTimeout: 10 * time.Second}
	sb.waitGroup.Add(1)
	go func() {
		defer sb.waitGroup.Done()
		_ = sb.srv.Serve(ln)
	}()

	dir := filepath.Dir(fn.Bootstrap)
	cmd := exec.Command(fn.Bootstrap)
	cmd.Dir = dir
	cmd.Env = environment(fn, ln.Addr().String(), dir)
	if f, ok := fn.Logs.(*os.File); ok {
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		cmd.Stdout, cmd.Stderr = logs, logs
	}
	// Its own process group, so that a kill reaches whatever it started;
	// killed with this process, so that none outlives the emulator.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	sb.started = time.Now()
	if err := cmd.Start(); err != nil {
		sb.srv.Close()
		sb.waitGroup.Wait()
		return nil, fmt.Errorf("starting %s: %w", fn.Bootstrap, err)
	}
	sb.cmd = cmd
	sb.mem = watchMemory(cmd.Process.Pid, int64(fn.MemoryMB)*1024, func() { sb.kill(killMemory) })
	sb.waitGroup.Add(1)
	go func() {
		defer sb.waitGroup.Done()
		err := cmd.Wait()
		sb.mem.stop()
		sb.waitErr = err
		close(sb.exited)
	}()
	return sb, nil
}

// environment is the process's whole environment: the function's variables
// and the ones Lambda sets, nothing of the caller's.
func environment(fn Function, api, taskRoot string) []string {
	env := map[string]string{
		"PATH":            "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LANG":            "en_US.UTF-8",
		"TZ":              ":UTC",
		"LD_LIBRARY_PATH": "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:" + taskRoot + ":" + taskRoot + "/lib:/opt/lib",
	}
	for k, v := range fn.Env {
		env[k] = v
	}
	for k, v := range map[string]string{
		"_HANDLER":                        fn.Handler,
		"AWS_REGION":                      fn.Region,
		"AWS_DEFAULT_REGION":              fn.Region,
		"AWS_LAMBDA_FUNCTION_NAME":        fn.Name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(fn.MemoryMB),
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_LAMBDA_LOG_GROUP_NAME":       fn.LogGroup,
		"AWS_LAMBDA_LOG_STREAM_NAME":      time.Now().UTC().Format("2006/01/02") + "/[$LATEST]" + randomHex(32),
		"AWS_LAMBDA_RUNTIME_API":          api,
		"LAMBDA_TASK_ROOT":                taskRoot,
		"LAMBDA_RUNTIME_DIR":              "/var/runtime",
		"AWS_XRAY_CONTEXT_MISSING":        "LOG_ERROR",
		"AWS_ACCESS_KEY_ID":               fn.Credentials.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":           fn.Credentials.SecretAccessKey,
		"AWS_SESSION_TOKEN":               fn.Credentials.SessionToken,
	} {
		env[k] = v
	}
	if fn.LogFormat == "JSON" {
		env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
		env["AWS_LAMBDA_LOG_LEVEL"] = fn.LogLevel
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		if env[k] == "" {
			delete(env, k)
		}
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// awaitInit waits for the end of the init phase: the runtime's first
// invocation/next. A runtime that reports an init error, exits or takes
// longer than limit fails the invocation (a FunctionError); ctx ending is an
// error.
func (sb *sandbox) awaitInit(ctx context.Context, limit time.Duration) (*FunctionError, error) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-sb.polling:
		return nil, nil
	case out := <-sb.initErr:
		sb.kill(killStop)
		return out.err, nil
	case <-sb.exited:
		return sb.exitError(""), nil
	case <-timer.C:
		sb.kill(killTimeout)
		return &FunctionError{Type: ErrorTimeout, Message: fmt.Sprintf("Error: the init phase did not end within %.2f seconds", limit.Seconds())}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// initDuration is the init phase's length (so far, when it has not ended).
func (sb *sandbox) initDuration() time.Duration {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.readyAt.IsZero() {
		return time.Since(sb.started)
	}
	return sb.readyAt.Sub(sb.started)
}

// exitError is the failure of an invocation whose process is gone.
func (sb *sandbox) exitError(requestID string) *FunctionError {
	<-sb.exited
	why := "exit status 0"
	if sb.waitErr != nil {
		why = sb.waitErr.Error()
	}
	prefix := ""
	if requestID != "" {
		prefix = "RequestId: " + requestID + " "
	}
	if sb.killedFor() == killMemory {
		return &FunctionError{Type: ErrorOutOfMemory, Message: prefix + "Error: Runtime exited with error: " + why}
	}
	return &FunctionError{Type: ErrorExit, Message: prefix + "Error: Runtime exited with error: " + why}
}

func (sb *sandbox) gone() bool {
	select {
	case <-sb.exited:
		return true
	default:
		return false
	}
}

func (sb *sandbox) killedFor() string {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.killed
}

// kill ends the process and whatever it started, once; why is kept.
func (sb *sandbox) kill(why string) {
	sb.mu.Lock()
	if sb.killed == "" && !sb.gone() {
		sb.killed = why
	}
	sb.mu.Unlock()
	if sb.cmd != nil && !sb.gone() {
		_ = syscall.Kill(-sb.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// freeze stops the process between invocations, as Lambda does; thaw
// resumes it.
func (sb *sandbox) freeze() {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if !sb.frozen && !sb.gone() {
		_ = syscall.Kill(-sb.cmd.Process.Pid, syscall.SIGSTOP)
		sb.frozen = true
	}
}

func (sb *sandbox) thaw() {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.frozen {
		_ = syscall.Kill(-sb.cmd.Process.Pid, syscall.SIGCONT)
		sb.frozen = false
	}
}

// stop kills the process, waits for it, and stops the Runtime API.
func (sb *sandbox) stop() {
	sb.stopOnce.Do(func() {
		sb.kill(killStop)
		<-sb.exited
		sb.srv.Close()
		sb.waitGroup.Wait()
	})
}

// The Runtime API, version 2018-06-01.
func (sb *sandbox) routes() http.Handler {
	mux := http.NewServeMux()
	const base = "/2018-06-01/runtime"
	mux.HandleFunc("GET "+base+"/invocation/next", sb.handleNext)
	mux.HandleFunc("POST "+base+"/invocation/{id}/response", sb.handleResponse)
	mux.HandleFunc("POST "+base+"/invocation/{id}/error", sb.handleError)
	mux.HandleFunc("POST "+base+"/init/error", sb.handleInitError)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "InvalidRequest", fmt.Sprintf("%s %s is not part of the Runtime API", r.Method, r.URL.Path))
	})
	return mux
}

func (sb *sandbox) handleNext(w http.ResponseWriter, r *http.Request) {
	sb.mu.Lock()
	if sb.readyAt.IsZero() {
		sb.readyAt = time.Now()
	}
	if cur := sb.current; cur != nil && !cur.answered.Load() {
		// Asking for the next event without answering this one: Lambda
		// reads it as the end of the invocation with no response.
		sb.finish(cur, &outcome{payload: []byte("null"), at: time.Now()})
	}
	sb.current = nil
	sb.mu.Unlock()
	select {
	case sb.polling <- struct{}{}:
	default:
	}
	select {
	case inv := <-sb.next:
		sb.mu.Lock()
		sb.current = inv
		sb.mu.Unlock()
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", inv.arn)
		h.Set("Lambda-Runtime-Trace-Id", inv.trace)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(inv.payload)
	case <-r.Context().Done():
	case <-sb.exited:
	}
}

// answering returns the invocation id names if it is in progress and not
// yet answered, or writes the Runtime API's error and returns nil.
func (sb *sandbox) answering(w http.ResponseWriter, id string) *invocation {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	inv := sb.current
	switch {
	case inv == nil || inv.id != id:
		apiError(w, http.StatusBadRequest, "InvalidRequestID", fmt.Sprintf("no invocation %q is in progress", id))
		return nil
	case inv.answered.Load():
		apiError(w, http.StatusForbidden, "InvalidStateTransition", fmt.Sprintf("invocation %s was already answered", id))
		return nil
	}
	return inv
}

func (sb *sandbox) handleResponse(w http.ResponseWriter, r *http.Request) {
	inv := sb.answering(w, r.PathValue("id"))
	if inv == nil {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxResponseBytes+1))
	if err != nil {
		apiError(w, http.StatusBadRequest, "InvalidRequest", "reading the response: "+err.Error())
		return
	}
	if len(body) > MaxResponseBytes {
		n := int64(len(body))
		if more, _ := io.Copy(io.Discard, r.Body); more > 0 {
			n += more
		}
		sb.finish(inv, &outcome{platform: true, at: time.Now(), err: &FunctionError{Type: ErrorResponseSize,
			Message: fmt.Sprintf("Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes).", n, MaxResponseBytes)}})
		apiError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("Exceeded maximum allowed payload size (%d bytes).", MaxResponseBytes))
		return
	}
	sb.finish(inv, &outcome{payload: body, at: time.Now()})
	accepted(w)
}

func (sb *sandbox) handleError(w http.ResponseWriter, r *http.Request) {
	inv := sb.answering(w, r.PathValue("id"))
	if inv == nil {
		return
	}
	out := errorOutcome(r)
	sb.finish(inv, out)
	accepted(w)
}

func (sb *sandbox) handleInitError(w http.ResponseWriter, r *http.Request) {
	out := errorOutcome(r)
	select {
	case sb.initErr <- out:
	default:
	}
	accepted(w)
}

// finish records the first answer to inv.
func (sb *sandbox) finish(inv *invocation, out *outcome) {
	if inv.answered.CompareAndSwap(false, true) {
		inv.done <- out
	}
}

// errorOutcome reads an error the runtime posts: JSON with errorType and
// errorMessage (the type may also come in Lambda-Runtime-Function-Error-Type).
func errorOutcome(r *http.Request) *outcome {
	body, _ := io.ReadAll(io.LimitReader(r.Body, MaxResponseBytes))
	fe := &FunctionError{}
	if err := json.Unmarshal(body, fe); err != nil || !json.Valid(body) {
		fe.Message = string(body)
	}
	if fe.Type == "" {
		fe.Type = r.Header.Get("Lambda-Runtime-Function-Error-Type")
	}
	if fe.Type == "" {
		fe.Type = "Unhandled"
	}
	if !json.Valid(body) {
		body, _ = json.Marshal(fe)
	}
	return &outcome{payload: body, err: fe, at: time.Now()}
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"OK"}`))
}

func apiError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(FunctionError{Type: typ, Message: msg})
}
