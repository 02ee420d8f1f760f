package main

import (
	"context"
	"flag"
)

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "keep the local stack running; objects put under raw/ flow through the chain",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			return func(ctx context.Context) (result, error) {
				return nil, errNotImplemented("serve")
			}
		},
	}
}
