package extractfn

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"
)

func TestScheduleEventsDecodeAndReachTheHandler(t *testing.T) {
	for _, tt := range []struct {
		file  string
		force bool
	}{{"extract-schedule.json", false}, {"extract-force.json", true}} {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile("../../../events/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			var ev Event
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatal(err)
			}
			if got := ev.Force || ev.Detail.Force; got != tt.force {
				t.Errorf("force = %v, want %v", got, tt.force)
			}
			h := New(Config{Bucket: "b"}, nil, nil, slog.New(slog.DiscardHandler))
			if _, err := h.Handle(context.Background(), ev); !errors.Is(err, ErrNotImplemented) {
				t.Errorf("Handle = %v, want ErrNotImplemented until issue 3 lands", err)
			}
		})
	}
}
