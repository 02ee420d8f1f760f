package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one subcommand. setup registers its own flags on fs and returns
// the function that runs it; the returned value is printed as JSON with
// --json, or in human form otherwise.
type command struct {
	name    string
	alias   string // an older name that still works (not listed)
	summary string
	args    string // positional arguments it takes, for usage (empty: none)
	setup   func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error)
}

// result is what a command did: JSON with --json, human text otherwise.
type result interface {
	Human(w io.Writer)
}

// globals are the flags every command takes.
type globals struct {
	dataDir  string
	mysqlDSN string
	json     bool
	args     []string  // positional arguments, for commands that take them
	s3Addr   string    // listen address of the local S3 endpoint (empty: a free port)
	dbAddr   string    // listen address of the embedded MySQL engine (empty: a free port)
	stdin    io.Reader // for commands that read it (invoke --event -)
	stdout   io.Writer
	stderr   io.Writer
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWithInput(ctx, args, os.Stdin, stdout, stderr)
}

// runWithInput is run with a standard input of choice.
func runWithInput(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == args[0] || c.alias != "" && c.alias == args[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "pipeline: unknown command %q\n\n%s", args[0], usage())
		return 2
	}
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("pipeline "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.dataDir, "data-dir", "./.local", "folder of the local stack (S3 objects under <data-dir>/s3/<bucket>/)")
	fs.StringVar(&g.mysqlDSN, "mysql-dsn", os.Getenv("MYSQL_DSN"), "MySQL DSN (default $MYSQL_DSN; empty: the embedded engine)")
	fs.BoolVar(&g.json, "json", false, "print one JSON object describing what was done")
	exec := cmd.setup(fs, g)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pipeline %s [flags] %s\n\n%s\n\nFlags:\n", cmd.name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	g.args = fs.Args()
	if fs.NArg() > 0 && cmd.args == "" {
		fmt.Fprintf(stderr, "pipeline %s: unexpected arguments: %s\n", cmd.name, strings.Join(fs.Args(), " "))
		return 2
	}
	res, err := exec(ctx)
	if res != nil {
		if g.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(res); jerr != nil {
				fmt.Fprintf(stderr, "pipeline %s: encoding result: %v\n", cmd.name, jerr)
				return 1
			}
		} else {
			res.Human(stdout)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "pipeline %s: %v\n", cmd.name, err)
		return 1
	}
	return 0
}

// oneArg returns the one positional argument a command takes, and parses the
// flags given after it (the flag package stops at the first argument, so
// `pipeline invoke ExtractFunction --event x` would leave --event unread).
func (g *globals) oneArg(fs *flag.FlagSet, missing string) (string, error) {
	if len(g.args) == 0 {
		return "", errors.New(missing)
	}
	if err := fs.Parse(g.args[1:]); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return g.args[0], nil
}
