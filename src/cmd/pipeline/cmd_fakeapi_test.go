package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startFakeAPI runs `pipeline fakeapi args...` until the test ends and
// returns the API root it prints.
func startFakeAPI(t *testing.T, args ...string) (api string, stop func() (code int, stdout string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"fakeapi", "--addr", "127.0.0.1:0"}, args...), &stdout, &stderr)
	}()
	re := regexp.MustCompile(`http://127\.0\.0\.1:\d+/api`)
	for api == "" {
		select {
		case code := <-done:
			t.Fatalf("fakeapi exited with %d: %s%s", code, stdout.String(), stderr.String())
		case <-time.After(5 * time.Millisecond):
			api = re.FindString(stdout.String() + stderr.String())
		}
	}
	var once sync.Once
	var code int
	stop = func() (int, string) {
		once.Do(func() { cancel(); code = <-done })
		return code, stdout.String()
	}
	t.Cleanup(func() { stop() })
	return api, stop
}

func TestFakeAPICommand(t *testing.T) {
	api, stop := startFakeAPI(t, "--characters", "45", "--locations", "3", "--episodes", "2", "--json")
	resp, err := http.Get(api + "/character?page=3")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"info":{"count":45,"pages":3,"next":null,"prev":"` + api + `/character?page=2"},"results":[{"id":41,`
	if resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte(want)) {
		t.Errorf("page 3: %d %.200s", resp.StatusCode, body)
	}
	code, out := stop()
	var res fakeAPIResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("exit %d, output %q: %v", code, out, err)
	}
	if res.URL != api || res.Stats.Requests != 1 {
		t.Errorf("result %+v", res)
	}
}

func TestFakeAPICommandRejectsBadFaults(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"fakeapi", "--fail", "0.7", "--cut", "0.5"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, stderr %s", code, stderr.String())
	}
}

func TestScheduledEvent(t *testing.T) {
	for _, force := range []bool{false, true} {
		ev, err := scheduledEvent(force, time.Now())
		if err != nil || ev.DetailType != "Scheduled Event" || ev.Detail.Force != force || ev.Force {
			t.Errorf("scheduledEvent(%v) = %+v, %v", force, ev, err)
		}
	}
}
