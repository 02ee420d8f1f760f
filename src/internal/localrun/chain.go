package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
)

// AsyncHandler is a function S3 invokes asynchronously with an event.
type AsyncHandler func(ctx context.Context, ev events.S3Event) error

// BatchHandler is a function an SQS event source mapping feeds with batches.
type BatchHandler func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// ChainConfig configures a Chain.
type ChainConfig struct {
	Wiring Wiring
	Bucket string // the bucket's name, as events carry it
	Region string // events' awsRegion; default "us-east-1"

	Async map[string]AsyncHandler // by function logical id: the targets of notifications
	Batch map[string]BatchHandler // by function logical id: the consumers of queues

	// RetryDelay is how long a failed asynchronous invocation waits before its
	// retry. Lambda waits about one minute, then two; locally the default is
	// one second, so a run does not stall.
	RetryDelay time.Duration
	// VisibilityTimeout, when positive, replaces the queues' own: it is how
	// long a message whose batch failed stays hidden before it is delivered
	// again. The template's 750 s suits Lambda; locally the default is 5 s.
	VisibilityTimeout time.Duration
	// BatchWindow, when not negative, replaces the mappings' batching window
	// (how long a poller waits to fill a batch); default 200 ms locally.
	BatchWindow time.Duration
	// AsyncConcurrency is the number of invocations of each asynchronous
	// function at once; default 4.
	AsyncConcurrency int
	// QueueConcurrency, when positive, is the number of concurrent batches of
	// each queue; default the mapping's MaximumConcurrency (else 2).
	QueueConcurrency int

	// Log receives the chain's own events (retries, dead letters); nil
	// discards them.
	Log *slog.Logger

	// OnInvocation, when set, is told of every invocation once it ended
	// and its event or batch was settled. It is called from the invoking
	// goroutine: it must return quickly.
	OnInvocation func(Invocation)
}

// Invocation is one invocation of a function by the chain: what it was
// given, when it ran and how it ended.
type Invocation struct {
	Function string    `json:"function"`        // logical id of the function
	Queue    string    `json:"queue,omitempty"` // logical id of the queue it read; empty: invoked asynchronously
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Keys     []string  `json:"keys"` // object keys of the event's records (of every message of a batch)
	Messages int       `json:"messages"`
	// Attempt is 1 for a first try. Asynchronously, 2 and more are Lambda's
	// retries of a failed event; from a queue, it is the highest receive
	// count in the batch.
	Attempt int `json:"attempt"`
	// Redelivered is the number of messages of the batch (or the event)
	// received before: retried or redelivered.
	Redelivered int    `json:"redelivered"`
	Failed      int    `json:"failed"` // failed messages of the batch (1: the event failed)
	Error       string `json:"error,omitempty"`
}

// Chain delivers a bucket's ObjectCreated events as template.yaml wires
// them: a function target is invoked asynchronously (retried, then recorded
// in its on-failure list, as Lambda's EventInvokeConfig does), a queue target
// receives the notification as a message, and the queue's consumer gets it in
// batches with a visibility timeout, redelivery and a dead-letter queue.
type Chain struct {
	cfg     ChainConfig
	log     *slog.Logger
	targets []target
	async   map[string]*Queue // function id → its asynchronous invocation queue
	queues  map[string]*Queue // queue id → queue
	stats   map[string]*counters

	cancel   context.CancelFunc // stops the pollers
	stopping atomic.Bool
	running  sync.WaitGroup
	inflight sync.WaitGroup
	hardStop context.CancelFunc // cancels invocations in flight
	invokeCt context.Context
}

type target struct {
	n     samtemplate.Notification
	queue *Queue
	stats *counters
}

// counters of one function or queue.
type counters struct {
	sent, deliveries, redeliveries, succeeded, failed atomic.Int64
}

// Stats describes what the chain delivered to one function or queue.
type Stats struct {
	Target       string `json:"target"`       // logical id
	Kind         string `json:"kind"`         // "function" (asynchronous) or "queue"
	Sent         int64  `json:"sent"`         // events or messages accepted
	Deliveries   int64  `json:"deliveries"`   // invocations (function) or messages delivered (queue)
	Redeliveries int64  `json:"redeliveries"` // retries of failed invocations, or messages delivered again
	Succeeded    int64  `json:"succeeded"`
	Failed       int64  `json:"failed"`      // failed invocations or batch items (each may succeed later)
	DeadLetters  int    `json:"deadLetters"` // on-failure records (function) or dead-letter messages (queue)
	Waiting      int    `json:"waiting"`     // not settled yet: Visible + InFlight
	Visible      int    `json:"visible"`     // waiting to be received (or retried)
	InFlight     int    `json:"inFlight"`    // received: being handled, or failed and hidden until redelivered
}

// NewChain checks that every target of the wiring has a handler.
func NewChain(cfg ChainConfig) (*Chain, error) {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.VisibilityTimeout <= 0 {
		cfg.VisibilityTimeout = 5 * time.Second
	}
	if cfg.BatchWindow < 0 {
		cfg.BatchWindow = -1
	} else if cfg.BatchWindow == 0 {
		cfg.BatchWindow = 200 * time.Millisecond
	}
	if cfg.BatchWindow > cfg.VisibilityTimeout/2 {
		// A message received early in a long window would become visible
		// again, and be received twice, before its batch is even invoked.
		cfg.BatchWindow = cfg.VisibilityTimeout / 2
	}
	if cfg.AsyncConcurrency <= 0 {
		cfg.AsyncConcurrency = 4
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Chain{cfg: cfg, log: log, async: map[string]*Queue{}, queues: map[string]*Queue{}, stats: map[string]*counters{}}
	for _, n := range cfg.Wiring.Notifications {
		t := target{n: n}
		switch n.TargetType {
		case samtemplate.FunctionType:
			if cfg.Async[n.Target] == nil {
				return nil, fmt.Errorf("no handler for %s, the target of %s's notifications", n.Target, cfg.Wiring.Bucket)
			}
			q := c.async[n.Target]
			if q == nil {
				fs := cfg.Wiring.Functions[n.Target]
				// Lambda's asynchronous queue: each event is tried once plus
				// Retries times, then recorded as an on-failure record.
				q = NewQueue(QueueConfig{Name: n.Target, VisibilityTimeout: cfg.RetryDelay, MaxReceiveCount: fs.Retries + 1})
				c.async[n.Target] = q
				c.stats[n.Target] = &counters{}
			}
			t.queue, t.stats = q, c.stats[n.Target]
		case queueType:
			qs := cfg.Wiring.Queues[n.Target]
			if cfg.Batch[qs.Consumer] == nil {
				return nil, fmt.Errorf("no handler for %s, the consumer of %s", qs.Consumer, n.Target)
			}
			q := c.queues[n.Target]
			if q == nil {
				max := qs.MaxReceiveCount
				if max == 0 {
					max = 1 << 30 // no redrive policy: redelivered until it succeeds
				}
				q = NewQueue(QueueConfig{Name: n.Target, VisibilityTimeout: cfg.VisibilityTimeout, MaxReceiveCount: max})
				c.queues[n.Target] = q
				c.stats[n.Target] = &counters{}
			}
			t.queue, t.stats = q, c.stats[n.Target]
		default:
			return nil, fmt.Errorf("%s: unsupported target type %s", n.Target, n.TargetType)
		}
		c.targets = append(c.targets, t)
	}
	return c, nil
}

// Start starts the invokers and pollers. They run until Stop.
func (c *Chain) Start(ctx context.Context) {
	pctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	c.invokeCt, c.hardStop = context.WithCancel(context.WithoutCancel(ctx))
	for id, q := range c.async {
		for range c.cfg.AsyncConcurrency {
			c.running.Add(1)
			go c.invoker(pctx, id, q)
		}
	}
	for id, q := range c.queues {
		qs := c.cfg.Wiring.Queues[id]
		n := c.cfg.QueueConcurrency
		if n <= 0 {
			n = max(qs.MaxConcurrency, 2)
		}
		for range n {
			c.running.Add(1)
			go c.poller(pctx, id, qs, q)
		}
	}
}

// Notify routes one object event to every target whose filter matches, and
// reports how many matched. It returns at once (the locals3 hook contract).
func (c *Chain) Notify(ev locals3.ObjectCreated) int {
	if ev.Bucket != c.cfg.Bucket || c.stopping.Load() {
		return 0
	}
	matched := 0
	for _, t := range c.targets {
		if !t.n.Matches(ev.EventName, ev.Key) {
			continue
		}
		body, err := json.Marshal(events.S3Event{Records: []events.S3EventRecord{c.record(ev, t.n.Target)}})
		if err != nil { // cannot happen: plain strings and numbers
			c.log.Error("encoding an S3 notification", "key", ev.Key, "error", err)
			continue
		}
		t.queue.Send(string(body))
		t.stats.sent.Add(1)
		matched++
	}
	return matched
}

// record is the S3 event record of ev, as S3 sends it.
func (c *Chain) record(ev locals3.ObjectCreated, configID string) events.S3EventRecord {
	return bucket.EventRecord(bucket.Created{Bucket: ev.Bucket, Key: ev.Key, Size: ev.Size, ETag: ev.ETag, Sequencer: ev.Sequencer,
		EventName: ev.EventName, ConfigID: configID, Region: c.cfg.Region, Time: ev.Time})
}

// invoker runs asynchronous invocations of function id, one at a time.
func (c *Chain) invoker(ctx context.Context, id string, q *Queue) {
	defer c.running.Done()
	h, fs, st := c.cfg.Async[id], c.cfg.Wiring.Functions[id], c.stats[id]
	for ctx.Err() == nil && !c.stopping.Load() {
		batch := q.Receive(ctx, 1, time.Second)
		if len(batch.Records) == 0 {
			continue
		}
		m := batch.Records[0]
		c.inflight.Add(1)
		st.deliveries.Add(1)
		if m.Attributes["ApproximateReceiveCount"] != "1" {
			st.redeliveries.Add(1)
		}
		var ev events.S3Event
		inv := Invocation{Function: id, Start: time.Now(), Messages: 1}
		inv.Attempt, _ = strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
		if inv.Attempt > 1 {
			inv.Redelivered = 1
		}
		err := json.Unmarshal([]byte(m.Body), &ev)
		if err == nil {
			inv.Keys = recordKeys(ev)
			err = c.invoke(fs.Timeout, func(ictx context.Context) error { return h(ictx, ev) })
		}
		if err != nil {
			st.failed.Add(1)
			n, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
			if n > fs.Retries {
				c.log.Error("asynchronous invocation failed after its retries: recorded as an on-failure record", "function", id, "attempts", n, "error", err.Error())
			} else {
				c.log.Warn("asynchronous invocation failed: it will be retried", "function", id, "attempt", n, "retryIn", c.cfg.RetryDelay.String(), "error", err.Error())
			}
			q.Settle(batch, events.SQSEventResponse{}, err)
			inv.Failed, inv.Error = 1, err.Error()
		} else {
			st.succeeded.Add(1)
			q.Settle(batch, events.SQSEventResponse{}, nil)
		}
		c.observe(inv)
		c.inflight.Done()
	}
}

// poller is one concurrent batch of the event source mapping of queue id.
func (c *Chain) poller(ctx context.Context, id string, qs QueueSettings, q *Queue) {
	defer c.running.Done()
	h, fs, st := c.cfg.Batch[qs.Consumer], c.cfg.Wiring.Functions[qs.Consumer], c.stats[id]
	window := qs.BatchWindow
	if c.cfg.BatchWindow >= 0 {
		window = c.cfg.BatchWindow
	}
	window = min(window, c.cfg.VisibilityTimeout/2)
	for ctx.Err() == nil && !c.stopping.Load() {
		batch := q.Receive(ctx, qs.BatchSize, time.Second)
		if len(batch.Records) == 0 {
			continue
		}
		// Fill the batch for up to the batching window, as the mapping does.
		until := time.Now().Add(window)
		for len(batch.Records) < qs.BatchSize && time.Now().Before(until) && ctx.Err() == nil {
			more := q.Receive(ctx, qs.BatchSize-len(batch.Records), time.Until(until))
			batch.Records = append(batch.Records, more.Records...)
		}
		c.inflight.Add(1)
		inv := Invocation{Function: qs.Consumer, Queue: id, Start: time.Now(), Messages: len(batch.Records)}
		for _, m := range batch.Records {
			st.deliveries.Add(1)
			n, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
			inv.Attempt = max(inv.Attempt, n)
			if n != 1 {
				st.redeliveries.Add(1)
				inv.Redelivered++
			}
			var ev events.S3Event
			if json.Unmarshal([]byte(m.Body), &ev) == nil {
				inv.Keys = append(inv.Keys, recordKeys(ev)...)
			}
		}
		var resp events.SQSEventResponse
		err := c.invoke(fs.Timeout, func(ictx context.Context) error {
			var herr error
			resp, herr = h(ictx, batch)
			return herr
		})
		if !qs.ReportItemFailures && len(resp.BatchItemFailures) > 0 {
			// Without ReportBatchItemFailures the response is ignored and
			// the batch is deleted: what the deployed mapping would do.
			resp = events.SQSEventResponse{}
		}
		failed := len(resp.BatchItemFailures)
		if err != nil {
			failed = len(batch.Records)
			c.log.Warn("batch failed: every message will be delivered again", "function", qs.Consumer, "queue", id, "messages", failed, "error", err.Error())
		} else if failed > 0 {
			c.log.Warn("batch items failed: they will be delivered again", "function", qs.Consumer, "queue", id, "failed", failed, "of", len(batch.Records))
		}
		st.failed.Add(int64(failed))
		st.succeeded.Add(int64(len(batch.Records) - failed))
		q.Settle(batch, resp, err)
		inv.Failed = failed
		if err != nil {
			inv.Error = err.Error()
		}
		c.observe(inv)
		c.inflight.Done()
	}
}

// recordKeys returns the object keys of an S3 event, decoded.
func recordKeys(ev events.S3Event) []string {
	keys := make([]string, 0, len(ev.Records))
	for _, r := range ev.Records {
		k := r.S3.Object.URLDecodedKey
		if k == "" {
			k = r.S3.Object.Key
		}
		keys = append(keys, k)
	}
	return keys
}

// observe ends inv and hands it to OnInvocation.
func (c *Chain) observe(inv Invocation) {
	if c.cfg.OnInvocation == nil {
		return
	}
	inv.End = time.Now()
	if inv.Keys == nil {
		inv.Keys = []string{}
	}
	c.cfg.OnInvocation(inv)
}

// invoke runs fn with the function's deadline, turning a panic into an
// error as the Lambda runtime does.
func (c *Chain) invoke(timeout time.Duration, fn func(context.Context) error) (err error) {
	ctx, cancel := context.WithTimeout(c.invokeCt, timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return fn(ctx)
}

// Pending is the number of events and messages not settled yet (waiting,
// being handled, or waiting for a retry).
func (c *Chain) Pending() int {
	n := 0
	for _, q := range c.async {
		n += q.Depth()
	}
	for _, q := range c.queues {
		n += q.Depth()
	}
	return n
}

// WaitIdle returns when every event and message has been settled (handled,
// or moved to an on-failure list or dead-letter queue), or when ctx ends.
// Events emitted by a handler's writes are queued before its invocation
// ends, so an idle chain has no work left that it knows of.
func (c *Chain) WaitIdle(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for c.Pending() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Stop stops accepting events and starting invocations, waits up to grace
// for the invocations in flight (they then see their context cancelled) and
// returns the number of events and messages left unsettled.
func (c *Chain) Stop(grace time.Duration) int {
	c.stopping.Store(true)
	if c.cancel == nil {
		return c.Pending()
	}
	c.cancel()
	done := make(chan struct{})
	go func() { c.running.Wait(); c.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		c.hardStop()
		<-done
	}
	c.hardStop()
	return c.Pending()
}

// Stats reports per target what was delivered, in wiring order.
func (c *Chain) Stats() []Stats {
	var out []Stats
	seen := map[string]bool{}
	for _, t := range c.targets {
		id := t.n.Target
		if seen[id] {
			continue
		}
		seen[id] = true
		s := Stats{Target: id, Kind: "queue", Sent: t.stats.sent.Load(), Deliveries: t.stats.deliveries.Load(),
			Redeliveries: t.stats.redeliveries.Load(), Succeeded: t.stats.succeeded.Load(), Failed: t.stats.failed.Load(),
			DeadLetters: len(t.queue.DeadLetters())}
		s.Visible, s.InFlight = t.queue.Counts()
		s.Waiting = s.Visible + s.InFlight
		if t.n.TargetType == samtemplate.FunctionType {
			s.Kind = "function"
		}
		out = append(out, s)
	}
	return out
}

// DeadLetters returns the on-failure records and dead-letter messages of
// every target: the S3 notifications that could not be handled.
func (c *Chain) DeadLetters() map[string][]events.SQSMessage {
	out := map[string][]events.SQSMessage{}
	for _, t := range c.targets {
		if d := t.queue.DeadLetters(); len(d) > 0 {
			out[t.n.Target] = d
		}
	}
	return out
}
