package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// hostileRaw is one object of the raw/ corpus and what Transform must make
// of it.
type hostileRaw struct {
	file   string             // under testdata/hostile/raw/
	key    string             // where it is put in the bucket
	status transformfn.Status // Transformed or Quarantined
	// reasons: for a quarantined object, the report's reason contains
	// reasons[0]; for a transformed one, each is found in some rejected line.
	reasons  []string
	rejected int // lines in rejected/ (transformed objects)
}

// hostileRawCorpus is testdata/hostile/raw/ with the outcome of each file.
var hostileRawCorpus = []hostileRaw{
	{file: "good-characters.json", key: "raw/character/page-0001.json", status: transformfn.Transformed},
	{file: "good-locations.json", key: "raw/location/page-0001.json", status: transformfn.Transformed},
	{file: "good-episodes.json", key: "raw/episode/page-0001.json", status: transformfn.Transformed},
	{file: "bom.json", key: "raw/character/bom.json", status: transformfn.Transformed},
	{file: "wrong-shapes.json", key: "raw/character/wrong-shapes.json", status: transformfn.Transformed, rejected: 11, reasons: []string{
		"id: must be a positive integer, got a string", "name: must be a string, got a number", "record is null, want an object",
		"record is an array, want an object", "record is a string, want an object", "origin: must be an object, got null",
		"episode: must be an array, got a string", "url: missing", "created: not an RFC 3339 time", "status: must be a string, got a boolean",
		"episode[0]: must be a string, got a number",
	}},
	{file: "duplicate-ids.json", key: "raw/character/duplicate-ids.json", status: transformfn.Transformed, rejected: 2, reasons: []string{
		"id: duplicate of the record at index 0", "id: duplicate of the record at index 1",
	}},
	{file: "negative-ids.json", key: "raw/character/negative-ids.json", status: transformfn.Transformed, rejected: 6, reasons: []string{
		"id: must be in 1..2147483647, got -1", "id: must be in 1..2147483647, got 0", "id: must be in 1..2147483647, got 2147483648",
		`id: must be a positive integer, got "1.5"`, `id: must be a positive integer, got "5.2e1"`, "id: must be in 1..2147483647, got -53",
	}},
	{file: "repeated-key.json", key: "raw/character/repeated-key.json", status: transformfn.Transformed, rejected: 1, reasons: []string{"name: repeated key"}},
	{file: "url-mismatch.json", key: "raw/character/url-mismatch.json", status: transformfn.Transformed, rejected: 3, reasons: []string{
		"url: names id 72, the record's id is 71", "url: names a location, but this object holds characters", `url: not an API resource URL: "javascript:alert(1)"`,
	}},
	{file: "single-object.json", key: "raw/character/single-object.json", status: transformfn.Transformed},
	{file: "unicode-text.json", key: "raw/character/unicode-text.json", status: transformfn.Transformed},
	{file: "lone-surrogate.json", key: "raw/character/lone-surrogate.json", status: transformfn.Transformed},

	{file: "truncated.json", key: "raw/character/truncated.json", status: transformfn.Quarantined, reasons: []string{"truncated JSON: the object ends at byte 1484 inside a value"}},
	{file: "truncated-in-rune.json", key: "raw/character/truncated-in-rune.json", status: transformfn.Quarantined, reasons: []string{"ends inside a character"}},
	{file: "malformed.json", key: "raw/character/malformed.json", status: transformfn.Quarantined, reasons: []string{"invalid character ','"}},
	{file: "single-quotes.json", key: "raw/character/single-quotes.json", status: transformfn.Quarantined, reasons: []string{"invalid character '\\''"}},
	{file: "nan.json", key: "raw/character/nan.json", status: transformfn.Quarantined, reasons: []string{"invalid character 'N'"}},
	{file: "empty.json", key: "raw/character/empty.json", status: transformfn.Quarantined, reasons: []string{"empty object"}},
	{file: "whitespace.json", key: "raw/character/whitespace.json", status: transformfn.Quarantined, reasons: []string{"empty object"}},
	{file: "bom-only.json", key: "raw/character/bom-only.json", status: transformfn.Quarantined, reasons: []string{"empty object"}},
	{file: "double-bom.json", key: "raw/character/double-bom.json", status: transformfn.Quarantined, reasons: []string{"invalid character"}},
	{file: "invalid-utf8.json", key: "raw/character/invalid-utf8.json", status: transformfn.Quarantined, reasons: []string{"not valid UTF-8 at byte"}},
	{file: "overlong-utf8.json", key: "raw/character/overlong-utf8.json", status: transformfn.Quarantined, reasons: []string{"not valid UTF-8 at byte"}},
	{file: "utf16le.json", key: "raw/character/utf16le.json", status: transformfn.Quarantined, reasons: []string{"not valid UTF-8 at byte 0"}},
	{file: "scalar-string.json", key: "raw/character/scalar-string.json", status: transformfn.Quarantined, reasons: []string{"not an API response: the JSON value is a string"}},
	{file: "scalar-null.json", key: "raw/character/scalar-null.json", status: transformfn.Quarantined, reasons: []string{"not an API response: the JSON value is null"}},
	{file: "api-error.json", key: "raw/character/api-error.json", status: transformfn.Quarantined, reasons: []string{`an API error response: {"error":`}},
	{file: "results-object.json", key: "raw/character/results-object.json", status: transformfn.Quarantined, reasons: []string{`"results" is an object, want an array`}},
	{file: "two-results.json", key: "raw/character/two-results.json", status: transformfn.Quarantined, reasons: []string{`two "results" members`}},
	{file: "trailing-data.json", key: "raw/character/trailing-data.json", status: transformfn.Quarantined, reasons: []string{"data after the JSON value"}},
	{file: "html.json", key: "raw/character/html.json", status: transformfn.Quarantined, reasons: []string{"invalid character '<'"}},
	{file: "deep-nesting.json", key: "raw/character/deep-nesting.json", status: transformfn.Quarantined, reasons: []string{"nesting deeper than 10000"}},
	{file: "no-resource.json", key: "raw/manual/no-resource.json", status: transformfn.Quarantined, reasons: []string{"cannot tell the resource"}},
}

// TestReliabilityHostileRawObjects puts every object of the raw/ corpus in
// the bucket, sends one S3 event holding all of them to Transform, and loads
// whatever it wrote under processed/.
func TestReliabilityHostileRawObjects(t *testing.T) {
	row := Case(t, "raw/ corpus (truncated, malformed, empty, BOM, invalid UTF-8, UTF-16, wrong shapes, duplicate and negative ids, deep nesting, API error, HTML) in one S3 event with good pages; Transform then Load",
		"unreadable objects quarantined byte for byte with a report naming key and reason; bad records in rejected/ with their reason; event not failed; every good record loaded")
	w := newHostileWorld(t)
	bodies := map[string][]byte{}
	var keys []string
	for _, c := range hostileRawCorpus {
		bodies[c.key] = hostileFile(t, "raw/"+c.file)
		w.put(c.key, bodies[c.key])
		keys = append(keys, c.key)
	}
	if err := w.transform.Handle(context.Background(), w.s3Event(keys...)); err != nil {
		t.Fatalf("Transform failed the event (Lambda would retry it): %v", err)
	}
	outs := w.transformOutcomes()
	quarantined, rejectedLines := 0, 0
	for _, c := range hostileRawCorpus {
		o, ok := outs[c.key]
		if !ok {
			t.Errorf("%s: no outcome", c.key)
			continue
		}
		if o.Status != c.status {
			t.Errorf("%s: %s (%s), want %s", c.key, o.Status, o.Reason, c.status)
			continue
		}
		switch c.status {
		case transformfn.Quarantined:
			quarantined++
			if !strings.Contains(o.Reason, c.reasons[0]) {
				t.Errorf("%s: reason %q, want it to contain %q", c.key, o.Reason, c.reasons[0])
			}
			w.checkQuarantined(c.key, bucket.QuarantineKey(c.key), bodies[c.key], c.reasons[0])
			if !w.log.logged(t, "quarantined an unreadable object", map[string]string{"key": c.key, "reason": "~" + c.reasons[0]}) {
				t.Errorf("%s: no log line naming the key and the reason", c.key)
			}
			for _, table := range warehouse.Tables() {
				if _, ok := w.get(bucket.ProcessedKey(table.Name, c.key)); ok {
					t.Errorf("%s: quarantined, yet %s was written", c.key, bucket.ProcessedKey(table.Name, c.key))
				}
			}
			if _, ok := w.get(bucket.RejectedKey(c.key)); ok {
				t.Errorf("%s: quarantined, yet %s was written", c.key, bucket.RejectedKey(c.key))
			}
		case transformfn.Transformed:
			rejectedLines += checkHostileRejects(t, w, c, o)
		}
	}

	// Load every processed file Transform wrote, in the same batches.
	msgs := w.processedMessages()
	d := w.deliver(msgs)
	for _, o := range w.loadOutcomes() {
		if o.Status != loadfn.Loaded {
			t.Errorf("load of %s: %s (%s)", o.Key, o.Status, o.Reason)
		}
	}
	if len(d.dead) > 0 {
		t.Errorf("dead-lettered: %v", d.dead)
	}
	wantChars := []int64{1, 2, 3, 4, 11, 12, 21, 22, 25, 41, 42, 54, 55, 62, 75, 81, 91, 92, 93, 94, 95, 96, 97}
	if got := w.ids(warehouse.Characters, "id"); !slices.Equal(got, wantChars) {
		t.Errorf("characters %v, want %v", got, wantChars)
	}
	for table, want := range map[string][]int64{warehouse.Locations: {1, 2}, warehouse.Episodes: {1, 2}} {
		if got := w.ids(table, "id"); !slices.Equal(got, want) {
			t.Errorf("%s %v, want %v", table, got, want)
		}
	}
	if name, _ := w.text(warehouse.Characters, "name", 41); name != "Dup first" {
		t.Errorf("duplicate id 41 kept %q, want the first record's name", name)
	}
	for id, want := range map[int64]string{91: "Zoë 🧪 Ωmega", 94: "nul\x00byte", 95: "line\u2028sep tab\there", 96: "\ufeffbom inside", 97: "half \ufffd pair"} {
		if got, _ := w.text(warehouse.Characters, "name", id); got != want {
			t.Errorf("character %d name %q, want %q", id, got, want)
		}
	}
	row.Notef("%d objects, %d quarantined, %d records rejected, %d processed files loaded, %d characters", len(hostileRawCorpus), quarantined, rejectedLines, len(msgs), len(wantChars))
}

// checkHostileRejects checks a transformed object's rejected/ file and
// returns its number of lines.
func checkHostileRejects(t *testing.T, w *hostileWorld, c hostileRaw, o transformfn.Outcome) int {
	t.Helper()
	if o.Report == nil || o.Report.Rejected != c.rejected {
		t.Errorf("%s: report %+v, want %d rejected", c.key, o.Report, c.rejected)
	}
	body, ok := w.get(bucket.RejectedKey(c.key))
	if c.rejected == 0 {
		if ok {
			t.Errorf("%s: unexpected rejected file:\n%s", c.key, body)
		}
		return 0
	}
	if !ok {
		t.Errorf("%s: no rejected file %s", c.key, bucket.RejectedKey(c.key))
		return 0
	}
	var reasons []string
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		var l struct {
			Key    string          `json:"key"`
			Reason string          `json:"reason"`
			Record json.RawMessage `json:"record"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Errorf("%s: rejected line is not JSON: %q", c.key, line)
			continue
		}
		if l.Key != c.key || l.Reason == "" || len(l.Record) == 0 {
			t.Errorf("%s: rejected line %q does not name the object, the reason and the record", c.key, line)
		}
		reasons = append(reasons, l.Reason)
	}
	if len(reasons) != c.rejected {
		t.Errorf("%s: %d rejected lines, want %d", c.key, len(reasons), c.rejected)
	}
	for _, want := range c.reasons {
		if !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, want) }) {
			t.Errorf("%s: no rejected line says %q; reasons:\n%s", c.key, want, strings.Join(reasons, "\n"))
		}
	}
	return len(reasons)
}

// TestReliabilityHostileKeys sends objects whose keys hold spaces, '+',
// percent signs and non-ASCII characters through the whole chain: S3 event
// keys are form-encoded, so every stage must decode them exactly once.
func TestReliabilityHostileKeys(t *testing.T) {
	row := Case(t, "raw/ keys with spaces, '+', '%', '%41', unicode, '&=?#;' through Transform and Load (S3-encoded event keys), plus an unreadable one",
		"derived processed/ keys exact, every page loaded and logged under its own key in load_log, the unreadable one quarantined under its exact key")
	w := newHostileWorld(t)
	names := []string{"page 1", "a+b", "100%", "%41%2F", "ζ-ünï€-日本", "semi;colon&amp=x?y#z", "  leading and trailing  ", "tab\there"}
	var keys []string
	for i, n := range names {
		key := "raw/character/" + n + ".json"
		id := 700 + i
		body := fmt.Sprintf(`[{"id":%d,"name":%q,"status":"Alive","species":"Human","type":"","gender":"Male","origin":{"name":"unknown","url":""},"location":{"name":"unknown","url":""},"image":"","episode":[],"url":"https://rickandmortyapi.com/api/character/%d","created":"2017-11-04T18:48:46.250Z"}]`, id, key, id)
		w.put(key, []byte(body))
		keys = append(keys, key)
	}
	bad := "raw/character/bad +%2B ζ.json"
	w.put(bad, []byte(`[{"id":1,`))
	keys = append(keys, bad)
	if err := w.transform.Handle(context.Background(), w.s3Event(keys...)); err != nil {
		t.Fatalf("Transform: %v", err)
	}
	outs := w.transformOutcomes()
	for _, k := range keys[:len(names)] {
		want := bucket.ProcessedKey(warehouse.Characters, k)
		if o := outs[k]; o.Status != transformfn.Transformed || !slices.Contains(o.Outputs, want) {
			t.Errorf("%q: %s %v (%s), want %q among the outputs", k, o.Status, o.Outputs, o.Reason, want)
		}
	}
	if o := outs[bad]; o.Status != transformfn.Quarantined {
		t.Errorf("%q: %s (%s), want quarantined", bad, o.Status, o.Reason)
	}
	w.checkQuarantined(bad, bucket.QuarantineKey(bad), []byte(`[{"id":1,`), "truncated JSON: the object ends at byte 9")

	d := w.deliver(w.processedMessages())
	if len(d.dead) > 0 {
		t.Errorf("dead-lettered: %v", d.dead)
	}
	for i, k := range keys[:len(names)] {
		name, ok := w.text(warehouse.Characters, "name", int64(700+i))
		if !ok || name != k {
			t.Errorf("character %d: %q (%v), want the name %q", 700+i, name, ok, k)
		}
		var n int
		if err := w.db.QueryRow("SELECT COUNT(*) FROM load_log WHERE object_key = ?", bucket.ProcessedKey(warehouse.Characters, k)).Scan(&n); err != nil || n != 1 {
			t.Errorf("load_log rows for %q: %d (%v), want 1", bucket.ProcessedKey(warehouse.Characters, k), n, err)
		}
	}
	row.Notef("%d keys loaded, 1 quarantined", len(names))
}

// TestReliabilityHostileLongText: a record whose text is longer than the
// warehouse's columns (warehouse.TextMaxChars) must be rejected alone; the
// other records of its page must load.
func TestReliabilityHostileLongText(t *testing.T) {
	row := Case(t, "raw/ page with a 1,100-character name and a 1,025-character type beside a normal record; Transform then Load",
		"the two over-long records rejected with their reason, the normal record of the same page loaded")
	w := newHostileWorld(t)
	key := "raw/character/long-text.json"
	w.put(key, hostileFile(t, "raw/long-text.json"))
	if err := w.transform.Handle(context.Background(), w.s3Event(key)); err != nil {
		t.Fatalf("Transform: %v", err)
	}
	o := w.transformOutcomes()[key]
	if o.Status != transformfn.Transformed {
		t.Fatalf("%s: %s (%s)", key, o.Status, o.Reason)
	}
	d := w.deliver(w.processedMessages())
	for _, lo := range w.loadOutcomes() {
		if lo.Status != loadfn.Loaded {
			t.Errorf("load of %s: %s: %s", lo.Key, lo.Status, lo.Reason)
		}
	}
	if got := w.ids(warehouse.Characters, "id"); !slices.Equal(got, []int64{402}) {
		t.Errorf("characters %v, want [402]: the normal record of the page is lost", got)
	}
	if o.Report.Rejected != 2 {
		t.Errorf("Transform rejected %d records, want the 2 longer than %d characters (it passes them to Load, which refuses the whole file)", o.Report.Rejected, warehouse.TextMaxChars)
	}
	row.Notef("%d load rounds, %d dead-lettered", d.rounds, len(d.dead))
}

// TestReliabilityHostileLongKey: a raw object at a legal key (S3 allows
// 1,024 bytes) whose derived processed/ keys would be longer than S3
// allows. Retrying cannot help: the object must be settled (quarantined
// with a reason), not failed as if S3 were unavailable.
func TestReliabilityHostileLongKey(t *testing.T) {
	row := Case(t, "a valid raw/ page at a 1,005-byte key, whose processed/character_episodes/ key would be 1,029 bytes (over S3's 1,024)",
		"the event is not failed (Lambda would retry it, then send it to the failure queue), the object is quarantined with a reason naming the key's length")
	w := newHostileWorld(t)
	key := "raw/character/"
	for len(key) < 1000-200 {
		key += strings.Repeat("k", 199) + "/"
	}
	key += strings.Repeat("z", 1000-len(key)) + ".json"
	w.put(key, hostileFile(t, "raw/good-characters.json"))
	err := w.transform.Handle(context.Background(), w.s3Event(key))
	o := w.transformOutcomes()[key]
	if err != nil || o.Status != transformfn.Quarantined {
		t.Errorf("a %d-byte key: Handle = %v, outcome %s; want the event settled and the object quarantined (a permanent problem, not a transient one)", len(key), hostileClip(fmt.Sprint(err), 200), o.Status)
	} else {
		w.checkQuarantined(key, bucket.QuarantineKey(key), hostileFile(t, "raw/good-characters.json"), "key")
	}
	row.Notef("key of %d bytes; outcome %s", len(key), o.Status)
}
