// Package localrun runs the pipeline's event-driven chain on one machine: S3
// notifications from the local stack invoke Transform, and a local queue
// with SQS semantics feeds Load, exactly as the deployed stack wires them.
package localrun

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// QueueConfig mirrors the settings of the deployed load queue.
type QueueConfig struct {
	Name              string
	VisibilityTimeout time.Duration // a received message reappears after this unless deleted
	MaxReceiveCount   int           // after this many receives a failing message moves to the dead-letter queue
	Now               func() time.Time
}

// Queue is an in-memory queue with the SQS behaviours the Load function
// relies on: at-least-once delivery in batches, a visibility timeout,
// redelivery of failed messages and a dead-letter queue after
// MaxReceiveCount receives.
type Queue struct {
	cfg QueueConfig

	mu      sync.Mutex
	seq     int
	msgs    []*message // in send order
	dead    []events.SQSMessage
	changed chan struct{}
}

type message struct {
	id        string
	body      string
	sent      time.Time
	receives  int
	invisible time.Time // zero: visible
	handle    string
}

// NewQueue returns an empty queue.
func NewQueue(cfg QueueConfig) *Queue {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxReceiveCount <= 0 {
		cfg.MaxReceiveCount = 5
	}
	if cfg.VisibilityTimeout <= 0 {
		cfg.VisibilityTimeout = 30 * time.Second
	}
	if cfg.Name == "" {
		cfg.Name = "load"
	}
	return &Queue{cfg: cfg, changed: make(chan struct{})}
}

// Send enqueues body and returns its message id.
func (q *Queue) Send(body string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	m := &message{id: fmt.Sprintf("%08d-local-%s", q.seq, q.cfg.Name), body: body, sent: q.cfg.Now()}
	q.msgs = append(q.msgs, m)
	q.signal()
	return m.id
}

func (q *Queue) signal() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Receive returns up to max visible messages as an SQS event (the shape the
// Lambda event source mapping delivers), waiting up to wait for the first.
// Messages received more than MaxReceiveCount times are moved to the
// dead-letter queue instead of being delivered again.
func (q *Queue) Receive(ctx context.Context, max int, wait time.Duration) events.SQSEvent {
	deadline := time.Now().Add(wait)
	for {
		q.mu.Lock()
		ev := q.take(max)
		changed := q.changed
		next := q.nextVisible()
		q.mu.Unlock()
		if len(ev.Records) > 0 {
			return ev
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ev
		}
		if !next.IsZero() {
			if d := time.Until(next); d < left {
				left = max64(d, time.Millisecond)
			}
		}
		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			return events.SQSEvent{}
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

func max64(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// take must be called with q.mu held.
func (q *Queue) take(max int) events.SQSEvent {
	now := q.cfg.Now()
	var ev events.SQSEvent
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		if len(ev.Records) >= max || (!m.invisible.IsZero() && now.Before(m.invisible)) {
			kept = append(kept, m)
			continue
		}
		if m.receives >= q.cfg.MaxReceiveCount {
			q.dead = append(q.dead, q.record(m)) // redrive: the message goes to the DLQ
			continue
		}
		m.receives++
		m.invisible = now.Add(q.cfg.VisibilityTimeout)
		m.handle = m.id + "#" + strconv.Itoa(m.receives)
		ev.Records = append(ev.Records, q.record(m))
		kept = append(kept, m)
	}
	q.msgs = kept
	return ev
}

func (q *Queue) nextVisible() time.Time {
	var next time.Time
	for _, m := range q.msgs {
		if !m.invisible.IsZero() && (next.IsZero() || m.invisible.Before(next)) {
			next = m.invisible
		}
	}
	return next
}

func (q *Queue) record(m *message) events.SQSMessage {
	sum := md5.Sum([]byte(m.body))
	return events.SQSMessage{
		MessageId:     m.id,
		ReceiptHandle: m.handle,
		Body:          m.body,
		Md5OfBody:     hex.EncodeToString(sum[:]),
		Attributes: map[string]string{
			"ApproximateReceiveCount":          strconv.Itoa(m.receives),
			"SentTimestamp":                    strconv.FormatInt(m.sent.UnixMilli(), 10),
			"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.sent.UnixMilli(), 10),
		},
		EventSource:    "aws:sqs",
		EventSourceARN: "arn:aws:sqs:local:000000000000:" + q.cfg.Name,
		AWSRegion:      "local",
	}
}

// Settle applies a Load response to the batch it answered, as the event
// source mapping does with ReportBatchItemFailures: messages not listed as
// failed are deleted; failed ones stay invisible until their visibility
// timeout ends and are then received again. When the handler itself
// returned an error, every message of the batch counts as failed.
func (q *Queue) Settle(batch events.SQSEvent, resp events.SQSEventResponse, handlerErr error) {
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	done := map[string]bool{}
	for _, r := range batch.Records {
		if handlerErr == nil && !failed[r.MessageId] {
			done[r.ReceiptHandle] = true
		}
	}
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		if !done[m.handle] {
			kept = append(kept, m)
		}
	}
	q.msgs = kept
	q.signal()
}

// Depth is the number of messages waiting or in flight.
func (q *Queue) Depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

// Counts returns the messages waiting to be received (visible) and those
// received and not yet deleted (in flight: being handled, or failed and
// waiting for their visibility timeout to end).
func (q *Queue) Counts() (visible, inFlight int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.cfg.Now()
	for _, m := range q.msgs {
		if !m.invisible.IsZero() && now.Before(m.invisible) {
			inFlight++
		} else {
			visible++
		}
	}
	return visible, inFlight
}

// DeadLetters returns the messages moved to the dead-letter queue.
func (q *Queue) DeadLetters() []events.SQSMessage {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]events.SQSMessage(nil), q.dead...)
}
