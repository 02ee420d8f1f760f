package main

import (
	"context"
	"flag"
)

func runCommand() *command {
	return &command{
		name:    "run",
		summary: "run the whole chain locally: extract → transform → load → export, event by event",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			return func(ctx context.Context) (result, error) {
				return nil, errNotImplemented("run")
			}
		},
	}
}
