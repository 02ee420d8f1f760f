package localrun

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

func repoWiring(t *testing.T) Wiring {
	t.Helper()
	tpl, err := samtemplate.Load(filepath.Join(testenv.RepoRoot(), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := ReadWiring(tpl, "DataBucket", samtemplate.Stack{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestReadWiringFromTheTemplate(t *testing.T) {
	w := repoWiring(t)
	tr, ok := w.Functions["TransformFunction"]
	if !ok || tr.Retries != 2 || tr.Timeout != 120*time.Second {
		t.Errorf("TransformFunction = %+v (present %v), want 2 retries and 120s", tr, ok)
	}
	q, ok := w.Queues["LoadQueue"]
	if !ok {
		t.Fatalf("LoadQueue not wired: %+v", w)
	}
	want := QueueSettings{VisibilityTimeout: 750 * time.Second, MaxReceiveCount: 5, Consumer: "LoadFunction",
		BatchSize: 10, BatchWindow: 5 * time.Second, MaxConcurrency: 2, ReportItemFailures: true}
	if q != want {
		t.Errorf("LoadQueue = %+v\nwant        %+v", q, want)
	}
	routes := map[string]string{}
	for _, n := range w.Notifications {
		for _, key := range []string{"raw/character/page-0001.json", "processed/character/characters/page-0001.csv", "raw/x.txt", "quarantine/raw/a.json", "manifests/extract/r.json"} {
			if n.Matches("ObjectCreated:Put", key) {
				routes[key] += n.Target
			}
		}
	}
	wantRoutes := map[string]string{"raw/character/page-0001.json": "TransformFunction", "processed/character/characters/page-0001.csv": "LoadQueue"}
	if len(routes) != len(wantRoutes) || routes["raw/character/page-0001.json"] != "TransformFunction" || routes["processed/character/characters/page-0001.csv"] != "LoadQueue" {
		t.Errorf("routes = %v, want %v", routes, wantRoutes)
	}
}

func TestReadWiringFollowsTheTemplate(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "maxReceiveCount: 5", "maxReceiveCount: 3", 1)
	text = strings.Replace(text, "Value: processed/", "Value: staged/", 1)
	tpl, err := samtemplate.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	w, err := ReadWiring(tpl, "DataBucket", samtemplate.Stack{Parameters: map[string]string{"LoadMaxConcurrency": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	if q := w.Queues["LoadQueue"]; q.MaxReceiveCount != 3 || q.MaxConcurrency != 7 {
		t.Errorf("LoadQueue = %+v, want maxReceiveCount 3 and concurrency 7 from the edited template", q)
	}
	for _, n := range w.Notifications {
		if n.Target == "LoadQueue" && (n.Matches("ObjectCreated:Put", "processed/a.csv") || !n.Matches("ObjectCreated:Put", "staged/a.csv")) {
			t.Errorf("LoadQueue filter = %q, want the edited staged/", n.Prefix)
		}
	}
}

// fakeStore stands in for the bucket: a handler's writes emit events
// through the chain, as the local S3 endpoint's hook does.
type fakeStore struct {
	chain *Chain
	mu    sync.Mutex
	loads map[string]int // processed key → successful loads
	tries map[string]int // key → invocations
}

func (f *fakeStore) put(key string) {
	f.chain.Notify(locals3.ObjectCreated{EventName: locals3.EventPut, Bucket: "b", Key: key, Size: 1, ETag: "e", Sequencer: "01", Time: time.Now()})
}

func TestChainDeliversRetriesAndDeadLetters(t *testing.T) {
	w := repoWiring(t)
	f := &fakeStore{loads: map[string]int{}, tries: map[string]int{}}
	transform := func(ctx context.Context, ev events.S3Event) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("transform invoked without a deadline")
		}
		key := ev.Records[0].S3.Object.URLDecodedKey
		f.mu.Lock()
		f.tries[key]++
		n := f.tries[key]
		f.mu.Unlock()
		switch {
		case strings.Contains(key, "flaky") && n == 1:
			return errors.New("transient")
		case strings.Contains(key, "broken"):
			return errors.New("always failing")
		}
		base := strings.TrimSuffix(strings.TrimPrefix(key, "raw/"), ".json")
		f.put("processed/" + base + "/a.csv")
		f.put("processed/" + base + "/b.csv")
		return nil
	}
	load := func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		for _, m := range ev.Records {
			key := strings.Split(strings.Split(m.Body, `"key":"`)[1], `"`)[0]
			f.mu.Lock()
			f.tries[key]++
			n := f.tries[key]
			if strings.Contains(key, "poison") || (strings.Contains(key, "slow+load") && n == 1) {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			} else {
				f.loads[key]++
			}
			f.mu.Unlock()
		}
		return resp, nil
	}
	var invMu sync.Mutex
	var invs []Invocation
	c, err := NewChain(ChainConfig{Wiring: w, Bucket: "b", RetryDelay: 10 * time.Millisecond, VisibilityTimeout: 100 * time.Millisecond, BatchWindow: 20 * time.Millisecond,
		Async: map[string]AsyncHandler{"TransformFunction": transform}, Batch: map[string]BatchHandler{"LoadFunction": load},
		OnInvocation: func(inv Invocation) { invMu.Lock(); invs = append(invs, inv); invMu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	f.chain = c
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.Start(ctx)
	for _, k := range []string{"raw/p1.json", "raw/flaky.json", "raw/broken.json", "raw/slow load.json", "raw/poison.json", "raw/ignored.txt", "manifests/x.json"} {
		f.put(k)
	}
	f.chain.Notify(locals3.ObjectCreated{EventName: locals3.EventPut, Bucket: "other", Key: "raw/p2.json"})
	if err := c.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if left := c.Stop(time.Second); left != 0 {
		t.Errorf("%d left after idle", left)
	}
	for _, base := range []string{"p1", "flaky", "slow+load"} {
		for _, tbl := range []string{"a", "b"} {
			if n := f.loads["processed/"+base+"/"+tbl+".csv"]; n != 1 {
				t.Errorf("processed/%s/%s.csv loaded %d times, want 1", base, tbl, n)
			}
		}
	}
	if n := f.tries["raw/broken.json"]; n != 3 {
		t.Errorf("broken transform tried %d times, want 1 + 2 retries", n)
	}
	if n := f.tries["processed/poison/a.csv"]; n != 5 {
		t.Errorf("poison message received %d times, want maxReceiveCount 5", n)
	}
	dead := c.DeadLetters()
	if len(dead["TransformFunction"]) != 1 || !strings.Contains(dead["TransformFunction"][0].Body, "broken.json") {
		t.Errorf("transform on-failure records = %v, want broken.json only", dead["TransformFunction"])
	}
	if len(dead["LoadQueue"]) != 2 {
		t.Errorf("dead letters = %d, want the two poison files", len(dead["LoadQueue"]))
	}
	for _, s := range c.Stats() {
		switch s.Target {
		case "TransformFunction":
			if s.Sent != 5 || s.Deliveries != 8 || s.Redeliveries != 3 || s.DeadLetters != 1 {
				t.Errorf("transform stats %+v: want 5 sent, 8 invocations, 3 retries, 1 on-failure record", s)
			}
		case "LoadQueue":
			if s.Sent != 8 || s.DeadLetters != 2 || s.Waiting != 0 || s.Visible != 0 || s.InFlight != 0 {
				t.Errorf("queue stats %+v: want 8 sent, 2 dead letters, none waiting", s)
			}
		}
	}

	// Every invocation was recorded: the transform retries marked as
	// attempts after the first, the load redeliveries counted.
	invMu.Lock()
	defer invMu.Unlock()
	perKey := map[string][]Invocation{}
	var loads, redelivered int
	for _, inv := range invs {
		if inv.End.Before(inv.Start) {
			t.Errorf("invocation %+v ends before it starts", inv)
		}
		switch inv.Function {
		case "TransformFunction":
			if len(inv.Keys) != 1 || inv.Queue != "" || inv.Messages != 1 {
				t.Errorf("transform invocation %+v: want one key, no queue", inv)
				continue
			}
			perKey[inv.Keys[0]] = append(perKey[inv.Keys[0]], inv)
		case "LoadFunction":
			loads += inv.Messages
			redelivered += inv.Redelivered
			if inv.Queue != "LoadQueue" || len(inv.Keys) != inv.Messages {
				t.Errorf("load invocation %+v: want LoadQueue and one key per message", inv)
			}
		}
	}
	if b := perKey["raw/broken.json"]; len(b) != 3 || b[0].Attempt != 1 || b[2].Attempt != 3 || b[2].Redelivered != 1 || b[2].Failed != 1 || b[2].Error != "always failing" {
		t.Errorf("broken.json invocations = %+v, want attempts 1, 2, 3, each failed", b)
	}
	if f := perKey["raw/flaky.json"]; len(f) != 2 || f[0].Failed != 1 || f[1].Failed != 0 || f[1].Attempt != 2 {
		t.Errorf("flaky.json invocations = %+v, want a failure then a retry that succeeds", f)
	}
	if k := perKey["raw/slow load.json"]; len(k) != 1 {
		t.Errorf("invocations of the key with a space = %+v, want its decoded key once", k)
	}
	for _, s := range c.Stats() {
		if s.Target == "LoadQueue" && (int64(loads) != s.Deliveries || int64(redelivered) != s.Redeliveries) {
			t.Errorf("load invocations hold %d messages, %d redelivered; stats say %d and %d", loads, redelivered, s.Deliveries, s.Redeliveries)
		}
	}
}

func TestChainStopsInvocationsAfterGrace(t *testing.T) {
	w := repoWiring(t)
	started := make(chan struct{})
	var sawCancel bool
	block := func(ctx context.Context, ev events.S3Event) error {
		close(started)
		<-ctx.Done()
		sawCancel = true
		return ctx.Err()
	}
	c, err := NewChain(ChainConfig{Wiring: w, Bucket: "b",
		Async: map[string]AsyncHandler{"TransformFunction": block}, Batch: map[string]BatchHandler{"LoadFunction": func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
			return events.SQSEventResponse{}, nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())
	c.Notify(locals3.ObjectCreated{EventName: locals3.EventPut, Bucket: "b", Key: "raw/a.json"})
	<-started
	if left := c.Stop(50 * time.Millisecond); left != 1 || !sawCancel {
		t.Errorf("Stop left %d (want the 1 unfinished event), handler saw cancel: %v", left, sawCancel)
	}
	if n := c.Notify(locals3.ObjectCreated{EventName: locals3.EventPut, Bucket: "b", Key: "raw/b.json"}); n != 0 {
		t.Errorf("a stopped chain accepted an event")
	}
}
