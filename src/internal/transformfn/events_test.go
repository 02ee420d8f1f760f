package transformfn

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func TestS3EventDecodesAndReachesTheHandler(t *testing.T) {
	b, err := os.ReadFile("../../../events/transform-s3-put.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.S3Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if got, want := ev.Records[0].S3.Object.URLDecodedKey, "raw/manual/rick and morty characters page 1.json"; got != want {
		t.Errorf("URLDecodedKey = %q, want %q", got, want)
	}
	h := New(Config{Bucket: "b"}, nil, slog.New(slog.DiscardHandler))
	if err := h.Handle(context.Background(), ev); !errors.Is(err, ErrNotImplemented) {
		t.Errorf("Handle = %v, want ErrNotImplemented until issue 4 lands", err)
	}
}
