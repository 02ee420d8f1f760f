package locals3_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// TestAWSCLI drives the endpoint with the AWS CLI, as `pipeline serve` users
// do: a small and a multipart `s3 cp` up and down, `s3 ls`, and a copy onto
// itself to make S3 announce an object again. Without `aws` it is skipped, or fails under TEST_REQUIRE_SERVERS=1.
func TestAWSCLI(t *testing.T) {
	awsBin := testenv.AWSCLI(t)
	srv, c, evs := startS3(t, t.TempDir())
	work := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(awsBin, append([]string{"--endpoint-url", srv.Endpoint()}, args...)...)
		cmd.Env = append(append(os.Environ(), srv.Env()...), "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}
	small := filepath.Join(work, "page-0001.json")
	os.WriteFile(small, []byte(`{"info":{"count":1},"results":[{"name":"Rick ’ ζ Á"}]}`), 0o644)
	big := filepath.Join(work, "big.csv")
	os.WriteFile(big, bytes.Repeat([]byte("a,b,c\n"), (9<<20)/6), 0o644)

	run("s3", "cp", small, "s3://"+bucket+"/raw/character/page-0001.json")
	run("s3", "cp", big, "s3://"+bucket+"/exports/big.csv")
	if got, want := readFile(t, filepath.Join(srv.Dir(bucket), "raw", "character", "page-0001.json")), readFile(t, small); got != want {
		t.Errorf("small object holds %q, want %q", got, want)
	}
	if got, want := readFile(t, filepath.Join(srv.Dir(bucket), "exports", "big.csv")), readFile(t, big); got != want {
		t.Errorf("big object holds %d bytes, want %d", len(got), len(want))
	}
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("raw/character/page-0001.json")})
	if err != nil || aws.ToString(head.ContentType) != "application/json" {
		t.Errorf("head: %v %v", aws.ToString(head.ContentType), err)
	}
	if ls := run("s3", "ls", "--recursive", "s3://"+bucket+"/"); !strings.Contains(ls, "raw/character/page-0001.json") || !strings.Contains(ls, "exports/big.csv") {
		t.Errorf("aws s3 ls:\n%s", ls)
	}
	down := filepath.Join(work, "down.csv")
	run("s3", "cp", "s3://"+bucket+"/exports/big.csv", down)
	if readFile(t, down) != readFile(t, big) {
		t.Error("downloaded big object differs")
	}
	run("s3api", "copy-object", "--bucket", bucket, "--key", "raw/character/page-0001.json",
		"--copy-source", bucket+"/raw/character/page-0001.json", "--metadata-directive", "REPLACE", "--content-type", "application/json")

	var names []string
	for _, ev := range evs.list() {
		names = append(names, ev.EventName)
	}
	want := []string{"ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload", "ObjectCreated:Copy"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("events %v, want %v", names, want)
	}
}
