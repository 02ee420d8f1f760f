package main

import (
	"context"
	"errors"
	"io"
)

// benchLoad is filled in by the load issue.
func benchLoad(ctx context.Context, out io.Writer) ([]figure, error) {
	return nil, errors.New("load benchmark: not implemented yet")
}
