package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load/loadtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// hostileCSV is one object of the processed/ corpus and what Load must make
// of it.
type hostileCSV struct {
	file   string // under testdata/hostile/processed/ ("" for an empty object)
	key    string
	status loadfn.Status // Loaded or Quarantined
	reason string        // in the outcome and the report (quarantined)
	line   int           // the report's line, when about one
	column string        // the report's column, when about one
}

var hostileCSVCorpus = []hostileCSV{
	{file: "planets.csv", key: "processed/planets/page-0001.csv", status: loadfn.Quarantined, reason: `unknown table "planets"`},
	{file: "loose.csv", key: "processed/loose.csv", status: loadfn.Quarantined, reason: `unknown table "loose.csv"`},
	{file: "missing-column.csv", key: "processed/characters/hostile/missing-column.csv", status: loadfn.Quarantined, reason: `missing column "gender"`, line: 1, column: "gender"},
	{file: "extra-column.csv", key: "processed/locations/hostile/extra-column.csv", status: loadfn.Quarantined, reason: `unexpected column "evil"`, line: 1, column: "evil"},
	{file: "reordered-header.csv", key: "processed/locations/hostile/reordered-header.csv", status: loadfn.Quarantined, reason: `column 1 is "name", want "id"`, line: 1, column: "name"},
	{file: "duplicate-column.csv", key: "processed/locations/hostile/duplicate-column.csv", status: loadfn.Quarantined, reason: `column "name" appears twice`, line: 1, column: "name"},
	{file: "empty.csv", key: "processed/locations/hostile/empty.csv", status: loadfn.Quarantined, reason: "empty object: no header row"},
	{file: "", key: "processed/characters/", status: loadfn.Quarantined, reason: "empty object: no header row"}, // a folder marker
	{file: "invalid-utf8.csv", key: "processed/locations/hostile/invalid-utf8.csv", status: loadfn.Quarantined, reason: "text is not valid UTF-8", line: 2},
	{file: "unterminated-quote.csv", key: "processed/locations/hostile/unterminated-quote.csv", status: loadfn.Quarantined, reason: "quoted field not terminated", line: 3},
	{file: "bare-quote.csv", key: "processed/locations/hostile/bare-quote.csv", status: loadfn.Quarantined, reason: `bare " in an unquoted field`, line: 2},
	{file: "field-count.csv", key: "processed/locations/hostile/field-count.csv", status: loadfn.Quarantined, reason: "wrong number of fields", line: 3},
	{file: "null-not-null.csv", key: "processed/locations/hostile/null-not-null.csv", status: loadfn.Quarantined, reason: "NULL in a NOT NULL column", line: 2, column: "name"},
	{file: "bad-id.csv", key: "processed/locations/hostile/bad-id.csv", status: loadfn.Quarantined, reason: `"abc" is not a 32-bit integer`, line: 2, column: "id"},
	{file: "id-overflow.csv", key: "processed/locations/hostile/id-overflow.csv", status: loadfn.Quarantined, reason: `"2147483648" is not a 32-bit integer`, line: 2, column: "id"},
	{file: "bad-datetime.csv", key: "processed/locations/hostile/bad-datetime.csv", status: loadfn.Quarantined, reason: `"2017-13-45T00:00:00.000Z" is not a datetime`, line: 2, column: "created"},
	{file: "year-0999.csv", key: "processed/locations/hostile/year-0999.csv", status: loadfn.Quarantined, reason: `"0999-12-31T23:59:59.999Z" is not a datetime`, line: 2, column: "created"},
	{file: "long-text.csv", key: "processed/locations/hostile/long-text.csv", status: loadfn.Quarantined, reason: "text of 1025 characters is longer than 1024", line: 2, column: "name"},
	{file: "late-bad-line.csv", key: "processed/locations/hostile/late-bad-line.csv", status: loadfn.Quarantined, reason: `"not a time" is not a datetime`, line: 601, column: "created"},
	{file: "header-only.csv", key: "processed/locations/hostile/header-only.csv", status: loadfn.Loaded},
	{file: "bom-crlf.csv", key: "processed/locations/hostile/bom-crlf.csv", status: loadfn.Loaded},
	{file: "duplicate-keys.csv", key: "processed/locations/hostile/duplicate-keys.csv", status: loadfn.Loaded},
	// A negative id is a valid INT: processed/ is Transform's output, which
	// never writes one, and Load stores what the contract allows.
	{file: "negative-id.csv", key: "processed/locations/hostile/negative-id.csv", status: loadfn.Loaded},
}

// hostileGoodCrawl is the good processed/ files sent with the hostile ones.
var hostileGoodCrawl = loadtest.Crawl{Characters: 5, Locations: 3, Episodes: 2, FetchedAt: time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)}

// TestReliabilityHostileProcessedCSVs sends the processed/ corpus through
// the load queue, interleaved with good files in the same batches.
func TestReliabilityHostileProcessedCSVs(t *testing.T) {
	row := Case(t, "processed/ corpus (unknown table, header missing/extra/reordered/repeated column, empty, folder marker, invalid UTF-8, broken quoting, bad values, bad line 601 of 601) in SQS batches with good files",
		"each bad object quarantined byte for byte with a report naming key, reason, line and column, its message acknowledged once; nothing of a bad file committed; every good file loaded")
	w := newHostileWorld(t)
	var msgs []events.SQSMessage
	good := hostileGoodCrawl.Files()
	bodies := map[string][]byte{}
	for i, c := range hostileCSVCorpus {
		var body []byte
		if c.file != "" {
			body = hostileFile(t, "processed/"+c.file)
		}
		bodies[c.key] = body
		obj := w.put(c.key, body)
		msgs = append(msgs, loadfn.Message(fmt.Sprintf("h-%02d", i), obj, int64(len(body)), time.Now()))
		if i < len(good) { // a good file beside every bad one, in the same batches
			obj := w.put(good[i].Key, good[i].Body)
			msgs = append(msgs, loadfn.Message(fmt.Sprintf("g-%02d", i), obj, int64(len(good[i].Body)), time.Now()))
		}
	}
	for i := len(hostileCSVCorpus); i < len(good); i++ {
		obj := w.put(good[i].Key, good[i].Body)
		msgs = append(msgs, loadfn.Message(fmt.Sprintf("g-%02d", i), obj, int64(len(good[i].Body)), time.Now()))
	}
	d := w.deliver(msgs)
	for id, n := range d.receives {
		if n != 1 {
			t.Errorf("message %s received %d times, want once: every object here is settled at the first delivery", id, n)
		}
	}
	byKey := map[string]loadfn.Outcome{}
	for _, o := range w.loadOutcomes() {
		byKey[o.Key] = o
	}
	quarantined := 0
	for _, c := range hostileCSVCorpus {
		o, ok := byKey[c.key]
		switch {
		case !ok:
			t.Errorf("%s: no outcome", c.key)
			continue
		case o.Status != c.status:
			t.Errorf("%s: %s (%s), want %s", c.key, o.Status, o.Reason, c.status)
			continue
		case c.status != loadfn.Quarantined:
			continue
		}
		quarantined++
		if !strings.Contains(o.Reason, c.reason) || !strings.Contains(o.Reason, c.key) && !strings.Contains(o.Reason, "unknown table") {
			t.Errorf("%s: reason %q, want the object and %q", c.key, o.Reason, c.reason)
		}
		w.checkQuarantined(c.key, bucket.QuarantineKey(c.key), bodies[c.key], c.reason)
		if rb, ok := w.get(bucket.QuarantineKey(c.key) + ".error.json"); ok {
			var rep bucket.Report
			if err := json.Unmarshal(rb, &rep); err != nil || rep.Stage != "load" || rep.Line != c.line || rep.Column != c.column {
				t.Errorf("%s: report stage %q line %d column %q (%v), want load, line %d, column %q", c.key, rep.Stage, rep.Line, rep.Column, err, c.line, c.column)
			}
		}
		if !w.log.logged(t, "object quarantined", map[string]string{"key": c.key, "reason": "~" + c.reason}) {
			t.Errorf("%s: no log line naming the key and the reason", c.key)
		}
	}
	if len(d.dead) > 0 {
		t.Errorf("dead-lettered: %v", d.dead)
	}

	// The good files are loaded in full; of the hostile ones only the
	// readable files, and nothing of the file that failed on its last line.
	want := loadtest.Expected(good)
	for _, table := range []string{warehouse.Characters, warehouse.Episodes, warehouse.CharacterEpisodes} {
		tb, _ := warehouse.Lookup(table)
		var b bytes.Buffer
		if _, err := warehousedb.Dump(t.Context(), w.db, tb, warehousedb.DumpData, &b); err != nil {
			t.Fatal(err)
		}
		if b.String() != want[table] {
			t.Errorf("%s differs from the good files:\n%s\nwant:\n%s", table, hostileClip(b.String(), 3000), hostileClip(want[table], 3000))
		}
	}
	wantLocations := []int64{-5, 1, 2, 3, 501, 502, 511, 512}
	if got := w.ids(warehouse.Locations, "id"); !slices.Equal(got, wantLocations) {
		t.Errorf("locations %v, want %v", got, wantLocations)
	}
	for id, name := range map[int64]string{502: `Place, "502"`, 511: "Keep me", -5: "Negative five"} {
		if got, _ := w.text(warehouse.Locations, "name", id); got != name {
			t.Errorf("location %d name %q, want %q", id, got, name)
		}
	}
	row.Notef("%d hostile objects (%d quarantined) and %d good files in %d messages; %d load rounds", len(hostileCSVCorpus), quarantined, len(good), len(msgs), d.rounds)
}

// hostileBody is one SQS body of the corpus and what Load must make of it.
type hostileBody struct {
	file   string // under testdata/hostile/sqs/; {{BUCKET}} is replaced by the test bucket
	status loadfn.Status
	reason string
}

var hostileBodyCorpus = []hostileBody{
	{"not-json.txt", loadfn.Rejected, "body is not an S3 notification: invalid character 'h'"},
	{"empty.txt", loadfn.Rejected, "body is not an S3 notification: unexpected end of JSON input"},
	{"array.json", loadfn.Rejected, "body is not an S3 notification: json: cannot unmarshal array"},
	{"empty-object.json", loadfn.Rejected, "body is JSON but holds no S3 Records"},
	{"no-records.json", loadfn.Rejected, "body is JSON but holds no S3 Records"},
	{"records-null.json", loadfn.Rejected, "body is JSON but holds no S3 Records"},
	{"records-string.json", loadfn.Rejected, "cannot unmarshal string"},
	{"truncated.json", loadfn.Rejected, "body is not an S3 notification: unexpected end of JSON input"},
	{"wrong-source.json", loadfn.Rejected, `record 0 is not an S3 event record (eventSource "aws:sqs"`},
	{"other-bucket.json", loadfn.Rejected, `notification about bucket "someone-elses-bucket"`},
	{"outside-processed.json", loadfn.Rejected, `key "raw/character/page-0001.json" is not under processed/`},
	{"bad-escape.json", loadfn.Rejected, `invalid URL escape "%zz"`},
	{"sns-envelope.json", loadfn.Rejected, "body is JSON but holds no S3 Records"},
	{"eventbridge.json", loadfn.Rejected, "body is JSON but holds no S3 Records"},
	{"mixed-records.json", loadfn.Rejected, `key "raw/location/page-0001.json" is not under processed/`},
	// JSON decoding turns invalid UTF-8 into U+FFFD: a key that names no object.
	{"invalid-utf8.txt", loadfn.Skipped, "is gone: nothing to load"},
	{"test-event.json", loadfn.Skipped, "s3:TestEvent"},
	{"removed.json", loadfn.Skipped, "event ObjectRemoved:Delete is not an object creation"},
	{"gone.json", loadfn.Skipped, "is gone: nothing to load"},
}

// TestReliabilityHostileSQSBodies sends the SQS-body corpus through the
// load queue, in the same batches as good notifications.
func TestReliabilityHostileSQSBodies(t *testing.T) {
	row := Case(t, "SQS bodies: not JSON, empty, array, {}, no/null/string Records, truncated, wrong eventSource, another bucket, raw/ key, bad %-escape, invalid UTF-8, SNS envelope, EventBridge shape, a 256 KiB garbage body, S3 TestEvent, ObjectRemoved, a gone object; with good notifications",
		"TestEvent, removals and gone objects acknowledged at once; non-notifications rejected with their reason and dead-lettered after exactly 5 receives (no endless retry); good messages loaded at their first receive")
	w := newHostileWorld(t)
	// The good record of mixed-records.json exists: it loads once, however
	// often its message comes back.
	mixed := hostileGoodCrawl.Files()[0]
	w.put("processed/locations/mixed/page-0001.csv", mixed.Body)

	var msgs []events.SQSMessage
	want := map[string]hostileBody{}
	good := hostileGoodCrawl.Files()
	add := func(id, body string) {
		msgs = append(msgs, events.SQSMessage{MessageId: id, Body: body, EventSource: "aws:sqs", AWSRegion: "us-east-1"})
	}
	for i, c := range hostileBodyCorpus {
		id := fmt.Sprintf("h-%02d-%s", i, c.file)
		want[id] = c
		add(id, strings.ReplaceAll(string(hostileFile(t, "sqs/"+c.file)), "{{BUCKET}}", w.bucket))
		if i < len(good) {
			obj := w.put(good[i].Key, good[i].Body)
			msgs = append(msgs, loadfn.Message(fmt.Sprintf("g-%02d", i), obj, int64(len(good[i].Body)), time.Now()))
		}
	}
	garbage := `{"Records":[` + strings.Repeat(`{"eventSource":"aws:s3","s3":{"bucket":{"name":`, 256<<10/48)
	want["h-garbage"] = hostileBody{"(256 KiB)", loadfn.Rejected, "body is not an S3 notification: invalid character '{' exceeded max depth"}
	add("h-garbage", garbage)

	d := w.deliver(msgs)
	outcomes := map[string][]loadfn.Outcome{}
	for _, o := range w.loadOutcomes() {
		outcomes[o.MessageID] = append(outcomes[o.MessageID], o)
	}
	dead := 0
	for id, c := range want {
		if !slices.ContainsFunc(outcomes[id], func(o loadfn.Outcome) bool { return o.Status == c.status && strings.Contains(o.Reason, c.reason) }) {
			t.Errorf("%s: outcomes %+v, want %s with a reason containing %q", c.file, outcomes[id], c.status, c.reason)
		}
		switch c.status {
		case loadfn.Rejected:
			dead++
			if !d.dead[id] || d.receives[id] != hostileMaxReceives {
				t.Errorf("%s: received %d times, dead-lettered %v; want dead-lettered after %d receives", c.file, d.receives[id], d.dead[id], hostileMaxReceives)
			}
			if !w.log.logged(t, "message rejected: not a processed-object notification", map[string]string{"messageId": id, "reason": "~" + c.reason}) {
				t.Errorf("%s: no log line naming the message and the reason", c.file)
			}
		default:
			if d.dead[id] || d.receives[id] != 1 {
				t.Errorf("%s: received %d times, dead-lettered %v; want acknowledged at once", c.file, d.receives[id], d.dead[id])
			}
		}
	}
	for i := range min(len(good), len(hostileBodyCorpus)) {
		id := fmt.Sprintf("g-%02d", i)
		if o := outcomes[id]; len(o) != 1 || o[0].Status != loadfn.Loaded || d.receives[id] != 1 {
			t.Errorf("good message %s: %+v, received %d times", id, o, d.receives[id])
		}
	}
	if len(d.dead) != dead {
		t.Errorf("%d messages dead-lettered, want only the %d poison ones", len(d.dead), dead)
	}
	var loads int
	if err := w.db.QueryRow("SELECT COUNT(*) FROM load_log WHERE object_key = 'processed/locations/mixed/page-0001.csv'").Scan(&loads); err != nil || loads != 1 {
		t.Errorf("the good record of the mixed message was loaded %d times (%v), want once", loads, err)
	}
	row.Notef("%d bodies, %d dead-lettered after %d receives, %d good messages loaded; %d rounds", len(want), dead, hostileMaxReceives, min(len(good), len(hostileBodyCorpus)), d.rounds)
}
