package main

import (
	"context"
	"errors"
	"io"
)

// benchCrawl is filled in by the crawl issue.
func benchCrawl(ctx context.Context, out io.Writer) ([]figure, error) {
	return nil, errors.New("crawl benchmark: not implemented yet")
}
