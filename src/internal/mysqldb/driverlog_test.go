package mysqldb

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestDriverLogsAreJSON(t *testing.T) {
	var buf bytes.Buffer
	driverLogger{slog.New(slog.NewJSONHandler(&buf, nil))}.Print("packets.go:58: ", "unexpected EOF\n")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["level"] != "WARN" || rec["message"] != "packets.go:58: unexpected EOF" {
		t.Errorf("driver log line %q (%v)", buf.String(), err)
	}
}
