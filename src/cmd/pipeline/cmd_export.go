package main

import (
	"context"
	"flag"
)

func exportCommand() *command {
	return &command{
		name:    "export",
		summary: "export new and changed MySQL rows to CSV and Parquet",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			return func(ctx context.Context) (result, error) {
				return nil, errNotImplemented("export")
			}
		},
	}
}
