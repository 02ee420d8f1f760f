package main

import (
	"context"
	"flag"
)

func loadCommand() *command {
	return &command{
		name:    "load",
		summary: "load processed/ CSVs into MySQL through SQS-shaped batches",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			return func(ctx context.Context) (result, error) {
				return nil, errNotImplemented("load")
			}
		},
	}
}
