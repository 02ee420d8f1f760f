package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
)

// The default API unreachable: one line says so and the fake API's generated
// data is served instead.
func TestUnreachableDefaultAPIFallsBackToTheFakeAPI(t *testing.T) {
	t.Setenv("API_BASE_URL", "")
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	sf := addSourceFlags(fs)
	if err := fs.Parse([]string{"--characters", "30", "--locations", "20", "--episodes", "3"}); err != nil {
		t.Fatal(err)
	}
	sf.apiURL = "http://127.0.0.1:1/api" // stands in for an unreachable default
	var note bytes.Buffer
	src, err := sf.open(context.Background(), &note)
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	lines := strings.Split(strings.TrimSpace(note.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "unreachable") || !strings.Contains(lines[0], "fake API") {
		t.Errorf("note %q, want one line saying the API is unreachable and the fake API is used", note.String())
	}
	if !strings.Contains(src.Description, "30 characters") || !strings.HasPrefix(src.URL, "http://127.0.0.1:") {
		t.Errorf("source %+v", src)
	}
	if err := probeAPI(context.Background(), src.URL); err != nil {
		t.Errorf("the fake API does not answer: %v", err)
	}
}

func TestProgressBarsAndLines(t *testing.T) {
	tl := newTally()
	tl.objects["raw"], tl.objects["processed"] = 10, 4
	tl.transform[transformfn.Transformed] = 5
	var bars bytes.Buffer
	p, err := newProgress(&bars, progressBars, tl)
	if err != nil {
		t.Fatal(err)
	}
	p.draw()
	p.stageDone("extract", "10 pages")
	p.draw()
	out := bars.String()
	for _, want := range []string{"transform [############............]  5/10 raw objects", "extract   [########################]  10 pages", "\033[4A"} {
		if !strings.Contains(out, want) {
			t.Errorf("bars lack %q:\n%q", want, out)
		}
	}
	var lines bytes.Buffer
	if p, err = newProgress(&lines, progressLines, tl); err != nil {
		t.Fatal(err)
	}
	p.draw()
	p.draw() // unchanged: not printed again
	if got := lines.String(); got != "extract 10 pages written to raw/, transform 5/10 raw objects, load 0/4 processed files\n" {
		t.Errorf("lines %q", got)
	}
	if strings.Contains(lines.String(), "\033") {
		t.Error("plain lines hold terminal escapes")
	}
	if _, err := newProgress(&lines, "fancy", tl); err == nil {
		t.Error("an unknown mode is accepted")
	}
}
