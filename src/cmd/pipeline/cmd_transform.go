package main

import (
	"context"
	"flag"
)

func transformCommand() *command {
	return &command{
		name:    "transform",
		summary: "transform objects under raw/ into processed/ CSVs",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			return func(ctx context.Context) (result, error) {
				return nil, errNotImplemented("transform")
			}
		},
	}
}
