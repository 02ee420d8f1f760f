package main

import (
	"context"
	"flag"
)

func replicaCommand() *command {
	return &command{
		name:    "replica",
		summary: "serve an offline replica of the Rick and Morty API",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			return func(ctx context.Context) (result, error) {
				return nil, errNotImplemented("replica")
			}
		},
	}
}
