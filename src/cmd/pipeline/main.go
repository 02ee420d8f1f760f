// Command pipeline runs the pipeline's stages on one machine: against the
// local stack (a folder-backed S3 endpoint and an embedded MySQL-compatible
// engine, or a MySQL server given by --mysql-dsn), through the very same
// handler code the Lambda functions run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// commands lists every subcommand, in the order `pipeline --help` shows them.
func commands() []*command {
	return []*command{
		runCommand(),
		serveCommand(),
		extractCommand(),
		transformCommand(),
		loadCommand(),
		exportCommand(),
		fakeAPICommand(),
		seedCommand(),
		reprocessCommand(),
		invokeCommand(),
		eventCommand(),
	}
}

func usage() string {
	s := "usage: pipeline <command> [flags]\n\nCommands:\n"
	for _, c := range commands() {
		s += fmt.Sprintf("  %-10s %s\n", c.name, c.summary)
	}
	s += "\nGlobal flags (every command): --data-dir DIR (default ./.local), --mysql-dsn DSN (or MYSQL_DSN), --json\n"
	s += "Run `pipeline <command> --help` for a command's flags.\n"
	return s
}
