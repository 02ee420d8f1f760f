package exportfn

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"
)

func TestScheduleEventDecodesAndReachesTheHandler(t *testing.T) {
	b, err := os.ReadFile("../../../events/export-schedule.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.DetailType != "Scheduled Event" {
		t.Errorf("detail-type = %q", ev.DetailType)
	}
	h := New(Config{Bucket: "b"}, nil, nil, slog.New(slog.DiscardHandler))
	if _, err := h.Handle(context.Background(), ev); !errors.Is(err, ErrNotImplemented) {
		t.Errorf("Handle = %v, want ErrNotImplemented until issue 5 lands", err)
	}
}
