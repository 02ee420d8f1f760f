package main

import (
	"context"
	"flag"
)

func seedCommand() *command {
	return &command{
		name:    "seed",
		summary: "create and fill the food-delivery database (seed food [--mutate])",
		args:    "food",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			return func(ctx context.Context) (result, error) {
				return nil, errNotImplemented("seed")
			}
		},
	}
}
