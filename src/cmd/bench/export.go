package main

import (
	"context"
	"errors"
	"io"
)

// benchExport is filled in by the export issue.
func benchExport(ctx context.Context, out io.Writer) ([]figure, error) {
	return nil, errors.New("export benchmark: not implemented yet")
}
