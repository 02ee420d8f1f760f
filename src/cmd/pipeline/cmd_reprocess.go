package main

import (
	"context"
	"flag"
)

func reprocessCommand() *command {
	return &command{
		name:    "reprocess",
		summary: "make a deployed pipeline reprocess raw/ objects (copy onto themselves)",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			return func(ctx context.Context) (result, error) {
				return nil, errNotImplemented("reprocess")
			}
		},
	}
}
