package main

import (
	"context"
	"errors"
	"io"
)

// benchTransform is filled in by the transform issue.
func benchTransform(ctx context.Context, out io.Writer) ([]figure, error) {
	return nil, errors.New("transform benchmark: not implemented yet")
}
