package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// scaleStage is one stage command of a scale run.
type scaleStage struct {
	name  string
	took  time.Duration
	rssMB float64
}

// scaleRun is what one crawl → transform → load of a fake API did.
type scaleRun struct {
	characters int
	rows       int64 // rows read from the processed files loaded
	stages     []scaleStage
}

func (r scaleRun) took() time.Duration {
	var d time.Duration
	for _, s := range r.stages {
		d += s.took
	}
	return d
}

func (r scaleRun) rate() float64 { return float64(r.rows) / r.took().Seconds() }

// benchScale crawls, transforms and loads (into MariaDB) a fake API of
// 100,000 generated characters (BENCH_SCALE_CHARACTERS to change), each
// stage its own `pipeline` process (extract, transform, load: the commands
// a data engineer runs), and reports rows per second end to end (rows
// loaded over the three stages' time) and each stage's peak RSS. The
// baseline is the same run on the fake API's default size (826 characters,
// the real API's): at scale the rate should hold and memory stay flat.
func benchScale(ctx context.Context, out io.Writer) ([]figure, error) {
	chars, err := envCount("BENCH_SCALE_CHARACTERS", 100_000)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-scale-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin, err := buildPipeline(ctx, dir)
	if err != nil {
		return nil, err
	}
	small, err := scaleOnce(ctx, out, bin, dir, 826)
	if err != nil {
		return nil, err
	}
	big, err := scaleOnce(ctx, out, bin, dir, chars)
	if err != nil {
		return nil, err
	}
	figs := []figure{{
		Section: "scale", Name: fmt.Sprintf("crawl+transform+load of %d characters on MariaDB, end to end", chars),
		Value: big.rate(), Unit: "rows/s", Baseline: small.rate(), BaseName: "826 characters",
		Ratio: big.rate() / small.rate(),
	}}
	for i, s := range big.stages {
		base := small.stages[i]
		figs = append(figs, figure{
			Section: "scale", Name: fmt.Sprintf("pipeline %s, %d characters: peak RSS", s.name, chars),
			Value: s.rssMB, Unit: "MB", Baseline: base.rssMB, BaseName: "826 characters",
			Ratio: base.rssMB / s.rssMB,
		})
	}
	return figs, nil
}

// scaleOnce serves a fake API of chars characters and runs the three stage
// commands against it into a fresh data folder and database.
func scaleOnce(ctx context.Context, out io.Writer, bin, dir string, chars int) (scaleRun, error) {
	run := scaleRun{characters: chars}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	api := exec.CommandContext(ctx, bin, "fakeapi", "--addr", "127.0.0.1:0", "--characters", strconv.Itoa(chars))
	pipe, err := api.StdoutPipe()
	if err != nil {
		return run, err
	}
	api.Stderr = out
	if err := api.Start(); err != nil {
		return run, err
	}
	defer func() { cancel(); _ = api.Wait() }()
	line, err := bufio.NewReader(pipe).ReadString('\n')
	_, rest, ok := strings.Cut(line, " at ")
	url, _, _ := strings.Cut(rest, " ")
	if err != nil || !ok || !strings.HasPrefix(url, "http://") {
		return run, fmt.Errorf("the fake API did not say where it listens (%q): %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, pipe) }()

	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "bench_scale_" + hex.EncodeToString(b)
	dsn, err := serverDSN(name)
	if err != nil {
		return run, err
	}
	defer dropDatabase(context.WithoutCancel(ctx), name)
	data := filepath.Join(dir, fmt.Sprintf("data-%d", chars))
	for _, st := range []struct {
		name string
		args []string
	}{
		{"extract", []string{"extract", "--api-url", url}},
		{"transform", []string{"transform"}},
		{"load", []string{"load", "--mysql-dsn", dsn}},
	} {
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, append(st.args, "--json", "--data-dir", data)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return run, err
		}
		rss, err := waitPeakRSS(cmd)
		took := time.Since(start)
		if err != nil {
			return run, fmt.Errorf("pipeline %s (%d characters): %v: %s", st.name, chars, err, lastLines(stderr.String(), 5))
		}
		if st.name == "load" {
			var res struct {
				RowsRead int64 `json:"rowsRead"`
				Failed   int   `json:"failed"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Failed > 0 {
				return run, fmt.Errorf("pipeline load (%d characters): %d failed, %v", chars, res.Failed, err)
			}
			run.rows = res.RowsRead
		}
		run.stages = append(run.stages, scaleStage{name: st.name, took: took, rssMB: rss})
		fmt.Fprintf(out, "scale: %d characters: %-9s %8s, peak RSS %.0f MB\n", chars, st.name, took.Round(time.Millisecond), rss)
	}
	fmt.Fprintf(out, "scale: %d characters: %d rows loaded in %s (%.0f rows/s end to end)\n", chars, run.rows, run.took().Round(time.Millisecond), run.rate())
	return run, nil
}
