package localrun

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestQueueBatchesRedeliversAndDeadLetters(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q := NewQueue(QueueConfig{VisibilityTimeout: time.Minute, MaxReceiveCount: 3, Now: c.now})
	for i := range 5 {
		q.Send(fmt.Sprintf("body-%d", i))
	}
	ctx := context.Background()

	b1 := q.Receive(ctx, 3, 0)
	if len(b1.Records) != 3 || b1.Records[0].Body != "body-0" {
		t.Fatalf("first batch = %d records", len(b1.Records))
	}
	// The handler reports body-1 failed: the others of the batch are deleted.
	q.Settle(b1, events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: b1.Records[1].MessageId}}}, nil)
	if got := q.Depth(); got != 3 {
		t.Errorf("depth after settle = %d, want 3 (body-1 invisible, body-3, body-4)", got)
	}
	if v, f := q.Counts(); v != 2 || f != 1 {
		t.Errorf("counts after settle = %d visible, %d in flight; want 2 (body-3, body-4) and 1 (body-1)", v, f)
	}
	b2 := q.Receive(ctx, 10, 0)
	if len(b2.Records) != 2 || b2.Records[0].Body != "body-3" {
		t.Fatalf("second batch = %+v, want body-3 and body-4 only (body-1 is invisible)", b2.Records)
	}
	q.Settle(b2, events.SQSEventResponse{}, nil)

	// body-1 keeps failing: received 3 times in all, then dead-lettered.
	for receive := 2; receive <= 3; receive++ {
		c.t = c.t.Add(time.Minute)
		b := q.Receive(ctx, 10, 0)
		if len(b.Records) != 1 || b.Records[0].Body != "body-1" {
			t.Fatalf("receive %d = %+v", receive, b.Records)
		}
		if got := b.Records[0].Attributes["ApproximateReceiveCount"]; got != fmt.Sprint(receive) {
			t.Errorf("ApproximateReceiveCount = %s, want %d", got, receive)
		}
		q.Settle(b, events.SQSEventResponse{}, fmt.Errorf("handler crashed"))
	}
	c.t = c.t.Add(time.Minute)
	if b := q.Receive(ctx, 10, 0); len(b.Records) != 0 {
		t.Errorf("a message past MaxReceiveCount was delivered again: %+v", b.Records)
	}
	dead := q.DeadLetters()
	if len(dead) != 1 || dead[0].Body != "body-1" || q.Depth() != 0 {
		t.Errorf("dead letters = %+v, depth %d", dead, q.Depth())
	}
}

func TestReceiveWaitsForASend(t *testing.T) {
	q := NewQueue(QueueConfig{})
	go func() {
		time.Sleep(10 * time.Millisecond)
		q.Send("late")
	}()
	b := q.Receive(context.Background(), 10, 10*time.Second)
	if len(b.Records) != 1 || b.Records[0].Body != "late" {
		t.Errorf("got %+v", b.Records)
	}
}
