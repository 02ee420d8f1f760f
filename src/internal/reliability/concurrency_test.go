package reliability

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/load/loadtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// tenRevisions are 1,000 processed files: ten crawls, an hour apart, of an
// API of 200 characters, 50 locations and 25 episodes in pages of 5, each
// revision changing every fifth entity. Every entity row is in 10 files,
// every character_episodes link in 20 (its character's page and its
// episode's page, in every revision).
func tenRevisions() []loadtest.File {
	var files []loadtest.File
	for rev := range 10 {
		c := loadtest.Crawl{Characters: 200, Locations: 50, Episodes: 25, PageSize: 5, Revision: rev,
			FetchedAt: time.Date(2026, 5, 1, 6, 0, 0, 0, time.UTC).Add(time.Duration(rev) * time.Hour)}
		fs := c.Files()
		for i := range fs {
			fs[i].Key = strings.Replace(fs[i].Key, "/page-", fmt.Sprintf("/rev%d-page-", rev), 1)
		}
		files = append(files, fs...)
	}
	return files
}

func TestReliabilityConcurrentLoadWorkers(t *testing.T) {
	row := Case(t,
		"1,000 processed files (10 revisions; each entity row in 10 files, each character_episodes link in 20), shuffled, through an SQS-like queue to 4 concurrent Load workers, each its own pool",
		"no message failed (no deadlock or lock wait timeout surfaced), none redelivered or dead-lettered; checksums of every table's data equal a serial load's and the generated data's")
	requireFull(t)
	files := tenRevisions()
	if len(files) != 1000 {
		t.Fatalf("%d files, want 1000", len(files))
	}
	serial := newChain(t, "serial")
	serial.upload(files)
	objs := serial.processed(files)
	serial.loadAll(serial.loader(nil, nil), serial.messages(objs))

	// The same objects, another database.
	conc := &chain{t: t, name: "concurrent", s3: serial.s3, bucket: serial.bucket, log: testLogger(t, "concurrent")}
	conc.db, conc.dsn = testenv.MySQL(t)
	bodies := conc.messages(objs)
	seed := uint64(time.Now().UnixNano())
	t.Logf("shuffle seed %d", seed)
	rand.New(rand.NewPCG(seed, 7)).Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
	q := newLoadQueue("load", 30*time.Second)
	for _, b := range bodies {
		q.Send(b)
	}
	var ta tally
	var workers []*loadfn.Handler
	for range 4 {
		h := conc.loader(nil, nil)
		h.Observe = ta.observe
		workers = append(workers, h)
	}
	st := drain(t, q, workers, loadTimeout)

	if n := ta.count(loadfn.Failed) + ta.count(loadfn.Rejected); n > 0 || st.Redelivered > 0 || len(q.DeadLetters()) > 0 {
		t.Errorf("%d messages failed, %d redelivered, %d dead letters:\n%s", n, st.Redelivered, len(q.DeadLetters()), ta.reasons())
	}
	if n := ta.count(loadfn.Loaded); n != len(files) {
		t.Errorf("%d files loaded, want %d", n, len(files))
	}
	rows := sameTables(t, conc, serial, warehousedb.DumpData)
	// The data of a load in any order is the newest version of every row:
	// modifiedDate, though, records the order loads came in, so only the
	// data columns are compared.
	got, _ := conc.sums(warehousedb.DumpData)
	for table, want := range loadtest.Expected(files) {
		if sum := sha256.Sum256([]byte(want)); hex.EncodeToString(sum[:]) != got[table] {
			t.Errorf("table %s differs from the generated data", table)
		}
	}
	row.Notef("%d files by 4 workers in %d invocations, %d transactions rerun after deadlocks or lock waits", len(files), st.Invocations, ta.reruns)
	row.Notef("%d rows in 4 tables compared", rows)
}
