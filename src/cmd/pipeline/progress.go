package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
)

// Progress modes.
const (
	progressAuto  = "auto"  // bars on a terminal, lines otherwise
	progressBars  = "bars"  // redrawn bars, one per stage
	progressLines = "lines" // a plain line when something changed, every few seconds
	progressOff   = "off"
)

// progress shows what each stage of a run has done so far, on stderr.
type progress struct {
	w      io.Writer
	mode   string
	t      *tally
	every  time.Duration
	stages []string

	mu     sync.Mutex
	done   map[string]string // stage → its closing summary
	drawn  int               // lines drawn by the last bars frame
	last   string            // last plain line
	stop   chan struct{}
	exited chan struct{}
}

func newProgress(w io.Writer, mode string, t *tally) (*progress, error) {
	switch mode {
	case progressAuto:
		mode = progressLines
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = progressBars
		}
	case progressBars, progressLines, progressOff:
	default:
		return nil, fmt.Errorf("--progress %q: want auto, bars, lines or off", mode)
	}
	p := &progress{w: w, mode: mode, t: t, every: 2 * time.Second, stages: []string{"extract", "transform", "load", "export"},
		done: map[string]string{}, stop: make(chan struct{}), exited: make(chan struct{})}
	if mode == progressBars {
		p.every = 150 * time.Millisecond
	}
	return p, nil
}

// start draws until finish.
func (p *progress) start() {
	go func() {
		defer close(p.exited)
		if p.mode == progressOff {
			<-p.stop
			return
		}
		tick := time.NewTicker(p.every)
		defer tick.Stop()
		for {
			p.draw()
			select {
			case <-p.stop:
				p.draw()
				return
			case <-tick.C:
			}
		}
	}()
}

// stageDone records a stage's closing line; lines mode prints it at once.
func (p *progress) stageDone(stage, summary string) {
	p.mu.Lock()
	p.done[stage] = summary
	p.mu.Unlock()
	if p.mode == progressLines {
		p.mu.Lock()
		fmt.Fprintf(p.w, "%-9s done: %s\n", stage, summary)
		p.mu.Unlock()
	}
}

// finish stops drawing, leaving the last frame in place.
func (p *progress) finish() {
	close(p.stop)
	<-p.exited
}

// counts are the figures a frame shows, per stage: done of total, and a unit.
func (p *progress) counts() map[string][3]string {
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.transform[transformfn.Transformed] + t.transform[transformfn.Quarantined] + t.transform[transformfn.Skipped] + t.transform[transformfn.Failed]
	ld := t.load[loadfn.Loaded] + t.load[loadfn.Skipped] + t.load[loadfn.Quarantined]
	return map[string][3]string{
		"extract":   {fmt.Sprint(t.objects["raw"]), "", "pages written to raw/"},
		"transform": {fmt.Sprint(tr), fmt.Sprint(t.objects["raw"]), "raw objects"},
		"load":      {fmt.Sprint(ld), fmt.Sprint(t.objects["processed"]), "processed files"},
		"export":    {"", "", ""},
	}
}

func (p *progress) draw() {
	c := p.counts()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case progressBars:
		var b strings.Builder
		if p.drawn > 0 {
			fmt.Fprintf(&b, "\033[%dA", p.drawn)
		}
		for _, s := range p.stages {
			line := fmt.Sprintf("%-9s %s", s, bar(c[s], p.done[s] != ""))
			if d := p.done[s]; d != "" {
				line += "  " + d
			} else if c[s][0] != "" && c[s][0] != "0" {
				line += "  " + c[s][0]
				if c[s][1] != "" {
					line += "/" + c[s][1]
				}
				line += " " + c[s][2]
			}
			b.WriteString("\r\033[K" + line + "\n")
		}
		p.drawn = len(p.stages)
		io.WriteString(p.w, b.String())
	case progressLines:
		var parts []string
		for _, s := range []string{"transform", "load"} {
			if p.done[s] == "" && c[s][1] != "0" {
				parts = append(parts, fmt.Sprintf("%s %s/%s %s", s, c[s][0], c[s][1], c[s][2]))
			}
		}
		if p.done["extract"] == "" && c["extract"][0] != "0" {
			parts = append([]string{"extract " + c["extract"][0] + " " + c["extract"][2]}, parts...)
		}
		line := strings.Join(parts, ", ")
		if line != "" && line != p.last {
			fmt.Fprintln(p.w, line)
			p.last = line
		}
	}
}

// bar draws done/total as a bar; without a total it is full when the stage
// is done and empty before.
func bar(c [3]string, finished bool) string {
	const width = 24
	var done, total int
	fmt.Sscan(c[0], &done)
	fmt.Sscan(c[1], &total)
	filled := 0
	switch {
	case finished:
		filled = width
	case total > 0:
		filled = min(width, done*width/total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
}
