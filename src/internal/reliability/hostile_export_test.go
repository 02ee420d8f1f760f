package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/parquet-go/parquet-go"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extractfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// TestReliabilityHostileInjectionText takes SQL and CSV-formula text through
// the whole chain: raw page, Transform, Load, Export.
func TestReliabilityHostileInjectionText(t *testing.T) {
	row := Case(t, "SQL text ('; DROP TABLE, DELETE ... WHERE '1'='1), CSV formulas (=HYPERLINK, +SUM, -2+3, @SUM, tab-=), \\N, NULL, quotes, newlines, %s, ${jndi:...} in name/type/species, through Transform, Load and Export",
		"MySQL holds each value byte for byte, the export's CSV and Parquet hold the same bytes (no escaping, no formula prefix), every table still there")
	w := newHostileWorld(t)
	src := hostileFile(t, "raw/injection.json")
	var page struct {
		Results []struct {
			ID      int64  `json:"id"`
			Name    string `json:"name"`
			Type    string `json:"type"`
			Species string `json:"species"`
		} `json:"results"`
	}
	if err := json.Unmarshal(src, &page); err != nil { // encoding/json is the reference for the exact text
		t.Fatal(err)
	}
	key := "raw/character/injection.json"
	w.put(key, src)
	if err := w.transform.Handle(context.Background(), w.s3Event(key)); err != nil {
		t.Fatal(err)
	}
	if d := w.deliver(w.processedMessages()); len(d.dead) > 0 {
		t.Fatalf("dead-lettered: %v", d.dead)
	}
	for _, r := range page.Results {
		for col, want := range map[string]string{"name": r.Name, "type": r.Type, "species": r.Species} {
			if got, ok := w.text(warehouse.Characters, col, r.ID); !ok || got != want {
				t.Errorf("MySQL character %d %s = %q (%v), want %q", r.ID, col, got, ok, want)
			}
		}
	}
	for _, tb := range warehouse.Tables() {
		var n int
		if err := w.db.QueryRow("SELECT COUNT(*) FROM `" + tb.Name + "`").Scan(&n); err != nil {
			t.Errorf("table %s: %v", tb.Name, err)
		}
	}

	res, err := w.exporter().Handle(context.Background(), exportfn.Event{DetailType: "Scheduled Event"})
	if err != nil {
		t.Fatalf("Export: %v (%+v)", err, res)
	}
	var csvKey, pqKey string
	for _, k := range w.keys("exports/characters/") {
		switch {
		case strings.HasSuffix(k, ".csv"):
			csvKey = k
		case strings.HasSuffix(k, ".parquet"):
			pqKey = k
		}
	}
	if csvKey == "" || pqKey == "" {
		t.Fatalf("no characters export: %v", w.keys("exports/"))
	}
	csvBody, _ := w.get(csvKey)
	exported := hostileExportedCSV(t, csvBody)
	pqBody, _ := w.get(pqKey)
	parquetRows := hostileExportedParquet(t, pqBody)
	for _, r := range page.Results {
		for col, want := range map[string]string{"name": r.Name, "type": r.Type, "species": r.Species} {
			if got := exported[r.ID][col]; got != want {
				t.Errorf("CSV export of character %d %s = %q, want %q", r.ID, col, got, want)
			}
			if got := parquetRows[r.ID][col]; got != want {
				t.Errorf("Parquet export of character %d %s = %q, want %q", r.ID, col, got, want)
			}
		}
	}
	row.Notef("%d hostile values x 3 columns compared in MySQL, CSV and Parquet", len(page.Results))
}

// hostileExportedCSV reads an exported CSV: per id, the text of every
// column (NULL as tablecsv.NullToken).
func hostileExportedCSV(t *testing.T, body []byte) map[int64]map[string]string {
	t.Helper()
	r := tablecsv.NewReader(bytes.NewReader(body))
	head, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(head))
	for i, f := range head {
		names[i] = f.Value
	}
	id := slices.Index(names, "id")
	out := map[int64]map[string]string{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("exported CSV: %v", err)
		}
		m := map[string]string{}
		for i, f := range rec {
			m[names[i]] = f.Value
			if f.Null {
				m[names[i]] = tablecsv.NullToken
			}
		}
		var n int64
		if err := json.Unmarshal([]byte(rec[id].Value), &n); err != nil {
			t.Fatalf("id %q: %v", rec[id].Value, err)
		}
		out[n] = m
	}
}

// hostileExportedParquet reads the string and integer columns of an
// exported Parquet file, per id.
func hostileExportedParquet(t *testing.T, body []byte) map[int64]map[string]string {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("opening Parquet: %v", err)
	}
	fields := f.Schema().Fields()
	r := parquet.NewReader(f)
	defer r.Close()
	out := map[int64]map[string]string{}
	rows := make([]parquet.Row, 1)
	for {
		n, _ := r.ReadRows(rows)
		if n == 0 {
			return out
		}
		m := map[string]string{}
		var id int64
		for j, fl := range fields {
			v := rows[0][j]
			switch {
			case fl.Name() == "id":
				id = v.Int64()
			case !v.IsNull() && fl.Type().Kind() == parquet.ByteArray:
				m[fl.Name()] = string(v.ByteArray())
			}
		}
		out[id] = m
	}
}

// TestReliabilityHostileScheduleEvents sends hostile schedule events to
// Export and Extract through the Lambda runtime's decoding.
func TestReliabilityHostileScheduleEvents(t *testing.T) {
	row := Case(t, "Export events naming unknown, injected ('; DROP TABLE), path-like, case-changed and empty tables beside real ones; events of the wrong shape or not JSON; Extract events with a string force or detail, and with unknown fields",
		"each bad table fails with an error naming it while the real tables in the same event are exported; mis-shaped events fail to decode and write nothing; unknown fields ignored; every table still there")
	w := newHostileWorld(t)
	if d := w.deliver(w.hostileGood()); len(d.dead) > 0 {
		t.Fatalf("dead-lettered: %v", d.dead)
	}
	exp := lambda.NewHandler(w.exporter().Handle)
	ctx := context.Background()

	for _, f := range []string{"export-tables-string.json", "export-tables-numbers.json", "not-json.txt", "array.json"} {
		if out, err := exp.Invoke(ctx, hostileFile(t, "events/"+f)); err == nil {
			t.Errorf("%s: accepted, answered %s", f, out)
		}
		if keys := w.keys("exports/"); len(keys) > 0 {
			t.Errorf("%s: wrote %v", f, keys)
		}
	}
	_, err := exp.Invoke(ctx, hostileFile(t, "events/export-hostile-tables.json"))
	bad := []string{`"no_such_table" not found`, "\"locations`; DROP TABLE episodes; --\" not found", `table name "../../etc/passwd" cannot be part of an object key`,
		`"LOCATIONS" not found in database`, `did you mean "locations"`, `table name "" cannot be part of an object key`}
	for _, want := range bad {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("export error %v does not say %s", err, want)
		}
	}
	if err != nil && !strings.Contains(err.Error(), "5 of 7 tables failed") {
		t.Errorf("export error %v: want 5 of 7 tables failed", err)
	}
	for _, k := range w.keys("") {
		if strings.HasPrefix(k, "exports/") && !strings.HasPrefix(k, "exports/locations/") && !strings.HasPrefix(k, "exports/episodes/") || strings.Contains(k, "..") {
			t.Errorf("export wrote %s", k)
		}
	}
	for _, table := range []string{warehouse.Locations, warehouse.Episodes} {
		if _, ok := w.get(bucket.WatermarkKey(bucket.DefaultExportPrefix, table)); !ok {
			t.Errorf("%s: not exported beside the bad tables (no watermark)", table)
		}
	}
	for _, tb := range warehouse.Tables() {
		var n int
		if err := w.db.QueryRow("SELECT COUNT(*) FROM `" + tb.Name + "`").Scan(&n); err != nil || n == 0 {
			t.Errorf("table %s: %d rows, %v", tb.Name, n, err)
		}
	}

	// Extract, against a small fake API of the API.
	ds, err := fakeapi.Generate(fakeapi.Sizes{Characters: 30, Locations: 5, Episodes: 3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	api := fakeapi.New(ds, fakeapi.Options{})
	srv := httptest.NewServer(api)
	defer srv.Close()
	cfg, err := extractfn.ConfigFromEnv(func(k string) string {
		return map[string]string{"BUCKET": w.bucket, "API_BASE_URL": srv.URL + "/api", "S3_FORCE_PATH_STYLE": "true"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ext := lambda.NewHandler(extractfn.New(cfg, w.s3, nil, time.Now, logging.New(w.log, "debug")).Handle)
	for _, f := range []string{"extract-force-string.json", "extract-detail-string.json", "not-json.txt", "array.json"} {
		if out, err := ext.Invoke(ctx, hostileFile(t, "events/"+f)); err == nil {
			t.Errorf("%s: accepted, answered %s", f, out)
		}
	}
	if n := api.Stats().Requests; n != 0 || len(w.keys("raw/")) != 0 {
		t.Errorf("mis-shaped Extract events crawled: %d requests, raw/ %v", n, w.keys("raw/"))
	}
	out, err := ext.Invoke(ctx, hostileFile(t, "events/extract-unknown-fields.json"))
	var res struct {
		Complete bool
		Pages    int
		Written  int
	}
	if err != nil || json.Unmarshal(out, &res) != nil || !res.Complete || res.Written != res.Pages || res.Pages != 4 {
		t.Errorf("Extract with unknown fields: %s, %v; want a complete crawl of 4 pages", out, err)
	}
	row.Notef("8 mis-shaped events refused, 5 bad tables named, 2 real tables exported, 1 crawl of %d pages", res.Pages)
}

// hostileGood puts the good crawl's processed files and returns their
// notifications.
func (w *hostileWorld) hostileGood() []events.SQSMessage {
	w.t.Helper()
	for _, f := range hostileGoodCrawl.Files() {
		w.put(f.Key, f.Body)
	}
	return w.processedMessages()
}
