package transform

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// A text value longer than a column holds rejects its record, not the file.
func TestTooLongTextRejectsTheRecord(t *testing.T) {
	long := strings.Repeat("é", warehouse.TextMaxChars+1) // 1,025 characters, 2,050 bytes
	fits := strings.Repeat("é", warehouse.TextMaxChars)
	page := `{"info":{"count":3,"pages":1,"next":null,"prev":null},"results":[` +
		location(1, "Earth") + "," + location(2, long) + "," + location(3, fits) + `]}`
	sink := memSink{}
	rep, err := Transform(context.Background(), "raw/location/page-0001.json", time.Now(), strings.NewReader(page), sink)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows[warehouse.Locations] != 2 || rep.Rejected != 1 {
		t.Errorf("report %+v, want 2 rows and 1 rejected", rep)
	}
	rejected := ""
	if b := sink[Rejected]; b != nil {
		rejected = b.String()
	}
	if !strings.Contains(rejected, "name: text of 1025 characters is longer than the 1024 a column holds") {
		t.Errorf("rejected records %q do not say why", rejected)
	}
}

func location(id int, name string) string {
	return `{"id":` + string(rune('0'+id)) + `,"name":"` + name + `","type":"Planet","dimension":"C-137","residents":[],` +
		`"url":"https://rickandmortyapi.com/api/location/` + string(rune('0'+id)) + `","created":"2017-11-10T12:42:04.162Z"}`
}

// A key whose outputs would be longer than S3 accepts is a permanent
// problem of the object.
func TestTooLongKeys(t *testing.T) {
	key := "raw/character/" + strings.Repeat("k", 1000-len("raw/character/")) + ".json"
	_, err := Transform(context.Background(), key, time.Now(), bytes.NewReader([]byte(`{}`)), memSink{})
	var inv *InvalidObjectError
	if !errors.As(err, &inv) || !strings.Contains(inv.Reason, "over S3's 1024") {
		t.Fatalf("Transform of a %d-byte key: %v, want an InvalidObjectError about the key length", len(key), err)
	}
}
