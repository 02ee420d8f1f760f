package lambdabuild

import (
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The project's Makefile gives each function its package and the Lambda
// flags.
func TestReadProjectMakefile(t *testing.T) {
	for id, pkg := range map[string]string{
		"ExtractFunction": "./src/cmd/extract", "TransformFunction": "./src/cmd/transform",
		"LoadFunction": "./src/cmd/load", "ExportFunction": "./src/cmd/export",
	} {
		r, err := Read("../../../Makefile", id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Package != pkg || r.Target != "build-"+id || r.Dir != "../../.." {
			t.Errorf("%s: %+v", id, r)
		}
		for _, want := range []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"} {
			if !slices.Contains(r.Env, want) {
				t.Errorf("%s: env %v lacks %s", id, r.Env, want)
			}
		}
		if i := slices.Index(r.Flags, "-tags"); i < 0 || r.Flags[i+1] != "lambda.norpc" || !slices.Contains(r.Flags, "-trimpath") {
			t.Errorf("%s: flags %q", id, r.Flags)
		}
	}
	if _, err := Read("../../../Makefile", "NoSuchFunction"); err == nil {
		t.Error("a missing target was read")
	}
}

func TestReadRecipes(t *testing.T) {
	mk := filepath.Join(t.TempDir(), "Makefile")
	src := "GOB = GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags 'a b' -ldflags=\"-s -w\" -o $(OUT)/bootstrap\n" +
		"build-A: ## a\n\t$(GOB) ./cmd/a\n\t@echo done\n" +
		"build-B:\n\tGOARCH=arm64 go build -trimpath -o x ./cmd/b\n" +
		"build-C:\n\techo no go here\n"
	if err := os.WriteFile(mk, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := Read(mk, "A")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Recipe{Target: "build-A", Package: "./cmd/a", Env: []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"},
		Flags: []string{"-tags", "a b", "-ldflags=-s -w"}, Dir: filepath.Dir(mk)}); !reflect.DeepEqual(a, want) {
		t.Errorf("A:\n got  %+v\n want %+v", a, want)
	}
	b, err := Read(mk, "B")
	if err != nil || b.Package != "./cmd/b" || !reflect.DeepEqual(b.Flags, []string{"-trimpath"}) {
		t.Errorf("B: %+v, %v", b, err)
	}
	if _, err := Read(mk, "C"); err == nil || !strings.Contains(err.Error(), "runs no go build") {
		t.Errorf("C: %v", err)
	}
}

// Build makes a binary of this machine's architecture from the recipe that
// targets arm64.
func TestBuildForThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("bootstraps are Linux programs")
	}
	r, err := Read("../../../Makefile", "TransformFunction")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bootstrap")
	if err := r.Build(context.Background(), HostArch(), out, t.Output()); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if f.Machine != want {
		t.Errorf("machine %v, want %v", f.Machine, want)
	}
}
