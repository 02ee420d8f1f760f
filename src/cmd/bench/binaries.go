package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// benchBinaries builds each Lambda bootstrap as `sam build` would and checks
// its size against the 40 MB budget.
func benchBinaries(ctx context.Context, out io.Writer) ([]figure, error) {
	dir, err := os.MkdirTemp("", "bootstraps")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var figs []figure
	for _, fn := range []string{"ExtractFunction", "TransformFunction", "LoadFunction", "ExportFunction", "ExportRangeFunction"} {
		art := filepath.Join(dir, fn)
		if err := os.MkdirAll(art, 0o755); err != nil {
			return figs, err
		}
		cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "build-"+fn, "ARTIFACTS_DIR="+art)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return figs, fmt.Errorf("building %s: %w", fn, err)
		}
		st, err := os.Stat(filepath.Join(art, "bootstrap"))
		if err != nil {
			return figs, err
		}
		mb := float64(st.Size()) / 1e6
		figs = append(figs, figure{Section: "binaries", Name: fn + " bootstrap", Value: mb, Unit: "MB", Target: "< 40 MB", Met: met(mb < 40)})
	}
	return figs, nil
}
