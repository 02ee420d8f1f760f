package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
)

// buildPipeline builds the local CLI into dir and returns its path.
func buildPipeline(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "pipeline")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./src/cmd/pipeline")
	if msg, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the pipeline CLI: %v: %s", err, msg)
	}
	return bin, nil
}

// serverDSN returns the MySQL server the bench uses, with database db.
func serverDSN(db string) (string, error) {
	server := os.Getenv("TEST_MYSQL_DSN")
	if server == "" {
		server = "root@tcp(127.0.0.1:3306)/"
	}
	dc, err := mysqldb.NormalizeDSN(server)
	if err != nil {
		return "", err
	}
	plain := mysql.NewConfig()
	plain.User, plain.Passwd, plain.Net, plain.Addr, plain.DBName = dc.User, dc.Passwd, dc.Net, dc.Addr, db
	return plain.FormatDSN(), nil
}

// dropDatabase drops a database the pipeline created on the server.
func dropDatabase(ctx context.Context, name string) {
	dsn, err := serverDSN("")
	if err != nil {
		return
	}
	dc, err := mysqldb.NormalizeDSN(dsn)
	if err != nil {
		return
	}
	c, err := mysql.NewConnector(dc)
	if err != nil {
		return
	}
	db := sql.OpenDB(c)
	defer db.Close()
	_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
}

// runSummary is the part of `pipeline run --json` the bench reads.
type runSummary struct {
	Stages map[string]float64 `json:"stageSeconds"`
	Rows   map[string]struct {
		Loaded int64 `json:"loaded"`
		Total  int64 `json:"total"`
	} `json:"rows"`
	Failures []string `json:"failures"`
}

// benchRun times the whole `pipeline run --offline` on the embedded engine
// (the default a new user meets) and on MariaDB, each from an empty data
// folder and an empty database, alternating, best of BENCH_RUN_ROUNDS
// (default 3). The data is the real API's snapshot (BENCH_RUN_DATA, default
// ../shared/rickandmorty when it is there), else the fake API's generated
// data of the same size.
func benchRun(ctx context.Context, out io.Writer) ([]figure, error) {
	rounds, err := envCount("BENCH_RUN_ROUNDS", 3)
	if err != nil {
		return nil, err
	}
	data := os.Getenv("BENCH_RUN_DATA")
	if data == "" {
		if _, err := os.Stat(filepath.Join("..", "shared", "rickandmorty", "character.json")); err == nil {
			data = filepath.Join("..", "shared", "rickandmorty")
		}
	}
	dir, err := os.MkdirTemp("", "bench-run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin, err := buildPipeline(ctx, dir)
	if err != nil {
		return nil, err
	}
	source := "the fake API's generated data (826 characters)"
	if data != "" {
		source = "the real API's snapshot " + data
	}
	fmt.Fprintf(out, "run: pipeline run --offline on %s\n", source)

	once := func(round int, engine string) (time.Duration, runSummary, error) {
		var sum runSummary
		args := []string{"run", "--offline", "--json", "--progress", "off", "--data-dir", filepath.Join(dir, fmt.Sprintf("%s-%d", engine, round))}
		if data != "" {
			args = append(args, "--data", data)
		}
		if engine == "mariadb" {
			b := make([]byte, 4)
			_, _ = rand.Read(b)
			name := "bench_run_" + hex.EncodeToString(b)
			dsn, err := serverDSN(name)
			if err != nil {
				return 0, sum, err
			}
			args = append(args, "--mysql-dsn", dsn)
			defer dropDatabase(context.WithoutCancel(ctx), name)
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		if jerr := json.Unmarshal(stdout.Bytes(), &sum); err != nil || jerr != nil || len(sum.Failures) > 0 {
			return 0, sum, fmt.Errorf("pipeline run on %s: %v %v %v: %s", engine, err, jerr, sum.Failures, lastLines(stderr.String(), 5))
		}
		fmt.Fprintf(out, "run: round %d: %-8s %6s  (extract %.2fs, transform+load %.2fs, export %.2fs; %d character rows)\n", round, engine,
			took.Round(time.Millisecond), sum.Stages["extract"], sum.Stages["load"], sum.Stages["export"], sum.Rows["characters"].Total)
		return took, sum, nil
	}
	var bestEmbedded, bestMaria time.Duration
	for round := 1; round <= rounds; round++ {
		for _, engine := range []string{"embedded", "mariadb"} {
			took, _, err := once(round, engine)
			if err != nil {
				return nil, err
			}
			best := &bestEmbedded
			if engine == "mariadb" {
				best = &bestMaria
			}
			if *best == 0 || took < *best {
				*best = took
			}
		}
	}
	ratio := bestMaria.Seconds() / bestEmbedded.Seconds()
	return []figure{{
		Section: "run", Name: "pipeline run --offline, embedded engine (whole run)",
		Value: bestEmbedded.Seconds(), Unit: "s", Baseline: bestMaria.Seconds(), BaseName: "same run on MariaDB",
		Ratio: ratio, Target: ">= 0.67x (within 1.5x of MariaDB)", Met: met(bestEmbedded.Seconds() <= 1.5*bestMaria.Seconds()),
	}}, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitPeakRSS waits for cmd (started) and returns its peak RSS in MB, read
// from /proc while it runs (see peakRSS): the last reading before it exits.
func waitPeakRSS(cmd *exec.Cmd) (float64, error) {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	peak := -1.0
	for {
		select {
		case err := <-exited:
			return peak, err
		case <-tick.C:
			if v := peakRSS(cmd.Process.Pid); v > peak {
				peak = v
			}
		}
	}
}
