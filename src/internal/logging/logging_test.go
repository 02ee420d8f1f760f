package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

func TestRecordsCarryTheRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "info").With("function", "load")
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-123"})
	log.InfoContext(ctx, "loaded", "rows", 3)
	log.DebugContext(ctx, "hidden")
	log.InfoContext(context.Background(), "no request")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("got %d records, want 2 (debug filtered): %s", len(lines), buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &second); err != nil {
		t.Fatal(err)
	}
	if first["requestId"] != "req-123" || first["function"] != "load" || first["rows"] != float64(3) {
		t.Errorf("first record = %v", first)
	}
	if _, ok := second["requestId"]; ok {
		t.Errorf("record without a Lambda context has a requestId: %v", second)
	}
}
