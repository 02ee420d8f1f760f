// Package lambdabuild builds a function's bootstrap as the Makefile's
// build-<LogicalId> target builds it for Lambda (`sam build` runs that
// target), with the same package, tags and flags, but for an architecture of
// choice: this machine's, so that `pipeline invoke` and `make bench` can run
// it. The Makefile stays the one place that says how a bootstrap is built.
package lambdabuild

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// Recipe is how the Makefile builds one bootstrap.
type Recipe struct {
	Target  string   // the Makefile target, build-<LogicalId>
	Package string   // the Go package, e.g. ./src/cmd/extract
	Env     []string // the variables set for go build, e.g. GOOS=linux GOARCH=arm64 CGO_ENABLED=0
	Flags   []string // the flags of go build, without -o
	Dir     string   // the Makefile's folder, where go build runs
}

var (
	assignment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*[:?]?=\s*(.*)$`)
	reference  = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
)

// Read returns the recipe of the Makefile's build-<id> target: the line of
// its recipe that runs go build (directly or through a variable, such as
// $(GO_LAMBDA_BUILD) ./src/cmd/extract).
func Read(makefile, id string) (Recipe, error) {
	f, err := os.Open(makefile)
	if err != nil {
		return Recipe{}, fmt.Errorf("reading the build recipe: %w", err)
	}
	defer f.Close()
	target := "build-" + id
	vars := map[string]string{}
	var recipe []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "\t"):
			if in {
				recipe = append(recipe, strings.TrimSpace(line))
			}
			continue
		case strings.HasPrefix(line, target+":"):
			in = true
			continue
		}
		in = false
		if m := assignment.FindStringSubmatch(line); m != nil {
			vars[m[1]] = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		return Recipe{}, fmt.Errorf("reading %s: %w", makefile, err)
	}
	if recipe == nil {
		return Recipe{}, fmt.Errorf("%s has no target %s", makefile, target)
	}
	for _, line := range recipe {
		expanded := reference.ReplaceAllStringFunc(line, func(ref string) string {
			if v, ok := vars[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		})
		words, err := split(expanded)
		if err != nil {
			return Recipe{}, fmt.Errorf("%s: %s: %w", makefile, target, err)
		}
		if r, ok := goBuild(words); ok {
			r.Target, r.Dir = target, filepath.Dir(makefile)
			return r, nil
		}
	}
	return Recipe{}, fmt.Errorf("%s: the recipe of %s runs no go build", makefile, target)
}

// goBuild reads "VAR=x ... go build FLAGS -o OUT PACKAGE".
func goBuild(words []string) (Recipe, bool) {
	var r Recipe
	i := 0
	for ; i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-"); i++ {
		r.Env = append(r.Env, words[i])
	}
	if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
		return Recipe{}, false
	}
	rest := words[i+2:]
	for j := 0; j < len(rest); j++ {
		w := rest[j]
		switch {
		case w == "-o":
			j++ // and its value
		case strings.HasPrefix(w, "-o="):
		case strings.HasPrefix(w, "-"):
			r.Flags = append(r.Flags, w)
			if (w == "-tags" || w == "-ldflags" || w == "-gcflags") && j+1 < len(rest) {
				j++
				r.Flags = append(r.Flags, rest[j])
			}
		default:
			r.Package = w
		}
	}
	return r, r.Package != ""
}

// split splits a recipe line into words as the shell would, for the quoting
// a recipe uses ('...' and "..."); it expands nothing.
func split(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, c := range s {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed %c in %q", quote, s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// HostArch is the architecture to build for so that the bootstrap runs on
// this machine.
func HostArch() string { return runtime.GOARCH }

// Build runs the recipe's go build for linux/goarch and writes the binary
// to out. go build's own messages go to stderr.
func (r Recipe) Build(ctx context.Context, goarch, out string, stderr io.Writer) error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("bootstraps are Linux programs: building and running one needs Linux, not %s", runtime.GOOS)
	}
	args := append(append([]string{"build"}, r.Flags...), "-o", out, r.Package)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = r.Dir
	env := os.Environ()
	for _, kv := range r.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "GOARCH" {
			kv = "GOARCH=" + goarch
		}
		env = append(env, kv)
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s (%s) for linux/%s: %w", r.Package, r.Target, goarch, err)
	}
	return nil
}

// String is the command Build runs, for messages.
func (r Recipe) String() string {
	return strings.Join(append(append(append([]string{}, r.Env...), "go", "build"), append(r.Flags, r.Package)...), " ")
}
