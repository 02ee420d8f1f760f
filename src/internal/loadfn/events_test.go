package loadfn

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func TestSQSBatchDecodesAndReachesTheHandler(t *testing.T) {
	b, err := os.ReadFile("../../../events/load-sqs-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Records) != 3 {
		t.Fatalf("records = %d, want 3", len(ev.Records))
	}
	var n events.S3Event
	if err := json.Unmarshal([]byte(ev.Records[0].Body), &n); err != nil || n.Records[0].S3.Object.Key != "processed/characters/character/page-0001.csv" {
		t.Errorf("first body is not the expected S3 notification: %v %+v", err, n)
	}
	h := New(Config{Bucket: "b"}, nil, nil, slog.New(slog.DiscardHandler))
	if _, err := h.Handle(context.Background(), ev); !errors.Is(err, ErrNotImplemented) {
		t.Errorf("Handle = %v, want ErrNotImplemented until issue 4 lands", err)
	}
}
