// Command testfn is a tiny Lambda function for the emulator's tests: the
// event says what it does (sleep, exit, panic, allocate, answer big, fail,
// or tell what it sees). With TESTFN_INIT=error it reports an init error
// through the Runtime API and exits; with TESTFN_INIT=exit it exits at once.
package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Sleep        string `json:"sleep"`
	Exit         *int   `json:"exit"`
	Panic        string `json:"panic"`
	AllocMB      int    `json:"allocMB"`
	RespondBytes int    `json:"respondBytes"`
	Error        string `json:"error"`
}

type seen struct {
	Invocation int      `json:"invocation"`
	PID        int      `json:"pid"`
	RequestID  string   `json:"requestId"`
	ARN        string   `json:"arn"`
	DeadlineMS int64    `json:"deadlineMs"`
	TraceID    string   `json:"traceId"`
	Env        []string `json:"env"`
	Padding    string   `json:"padding,omitempty"`
}

var invocations int

func handle(ctx context.Context, ev event) (*seen, error) {
	invocations++
	if ev.Sleep != "" {
		d, err := time.ParseDuration(ev.Sleep)
		if err != nil {
			return nil, err
		}
		time.Sleep(d)
	}
	if ev.Exit != nil {
		os.Exit(*ev.Exit)
	}
	if ev.Panic != "" {
		panic(ev.Panic)
	}
	if ev.Error != "" {
		return nil, errors.New(ev.Error)
	}
	var hold [][]byte
	for range ev.AllocMB {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		hold = append(hold, b)
	}
	runtime.KeepAlive(hold)
	lc, _ := lambdacontext.FromContext(ctx)
	dl, _ := ctx.Deadline()
	env := os.Environ()
	slices.Sort(env)
	return &seen{Invocation: invocations, PID: os.Getpid(), RequestID: lc.AwsRequestID, ARN: lc.InvokedFunctionArn,
		DeadlineMS: dl.UnixMilli(), TraceID: os.Getenv("_X_AMZN_TRACE_ID"), Env: env, Padding: strings.Repeat("x", ev.RespondBytes)}, nil
}

func main() {
	switch os.Getenv("TESTFN_INIT") {
	case "exit":
		os.Exit(4)
	case "error":
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"errorMessage":"no configuration","errorType":"InitFailed"}`))
		req.Header.Set("Lambda-Runtime-Function-Error-Type", "InitFailed")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		os.Exit(1)
	}
	lambda.Start(handle)
}
