package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
)

// `pipeline extract` crawls into <data-dir>/s3/<bucket>/raw/ through the
// local stack, writes nothing the second time, everything with --force.
func TestExtractCommand(t *testing.T) {
	ds, err := fakeapi.Generate(fakeapi.Sizes{Characters: 45, Locations: 21, Episodes: 3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fakeapi.New(ds, fakeapi.Options{}))
	defer srv.Close()
	api := srv.URL + "/api"
	dir := t.TempDir()
	extract := func(args ...string) extractResult {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"extract", "--data-dir", dir, "--api-url", api, "--json"}, args...), &stdout, &stderr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var res extractResult
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("%v: %s", err, stdout.String())
		}
		return res
	}

	res := extract()
	if !res.Complete || res.Written != 6 || res.Unchanged != 0 {
		t.Errorf("first run: %+v", res)
	}
	for _, p := range []struct {
		resource string
		n        int
	}{{"character", 3}, {"location", 2}, {"episode", 1}} {
		got, err := os.ReadFile(filepath.Join(res.Folder, p.resource, "page-000"+string(rune('0'+p.n))+".json"))
		want, _ := ds.Page(p.resource, p.n, api)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s page %d on disk: %v\n got %.100s\nwant %.100s", p.resource, p.n, err, got, want)
		}
	}
	if res := extract(); !res.Complete || res.Written != 0 || res.Unchanged != 6 {
		t.Errorf("second run: %+v", res)
	}
	if res := extract("--force"); !res.Complete || res.Written != 6 {
		t.Errorf("forced run: %+v", res)
	}
}
