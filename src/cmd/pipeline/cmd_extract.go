package main

import (
	"context"
	"flag"
)

func extractCommand() *command {
	return &command{
		name:    "extract",
		summary: "crawl the API into raw/ on the local stack",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			return func(ctx context.Context) (result, error) {
				return nil, errNotImplemented("extract")
			}
		},
	}
}
