// Package buckettest gives tests the S3 servers the pipeline meets: MinIO
// (a real S3 server, as testenv.S3) and the local stack's S3 (locals3), each
// with a fresh bucket, reached through the real SDK. Tests only.
package buckettest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// Server is an S3 server with a fresh bucket.
type Server struct {
	Name   string // "minio" or "local"
	Client *s3.Client
	Bucket string
	// Versioning reports whether the bucket can keep versions (MinIO can;
	// the local stack's S3 does not implement versioning).
	Versioning bool
	// ChecksAccess reports whether the server checks credentials (the local
	// stack's S3 accepts any).
	ChecksAccess bool
}

// Servers returns MinIO (failing or skipping the test as testenv does when
// it is not running) and a local stack S3 started for the test.
func Servers(t *testing.T) []Server {
	t.Helper()
	client, name := testenv.S3(t)
	return []Server{
		{Name: "minio", Client: client, Bucket: name, Versioning: true, ChecksAccess: true},
		Local(t),
	}
}

// Local starts the local stack's S3 in a temporary folder with one bucket.
func Local(t testing.TB) Server {
	t.Helper()
	srv, err := locals3.Start(context.Background(), locals3.Options{DataDir: t.TempDir(), Bucket: "local-data"})
	if err != nil {
		t.Fatalf("starting the local S3: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return Server{Name: "local", Client: srv.Client(), Bucket: srv.Bucket()}
}

// EnableVersioning turns versioning on for s's bucket.
func EnableVersioning(t testing.TB, s Server) {
	t.Helper()
	_, err := s.Client.PutBucketVersioning(context.Background(), &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(s.Bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	})
	if err != nil {
		t.Fatalf("enabling versioning on %s: %v", s.Name, err)
	}
}

// Denied returns a client of MinIO whose requests are all refused (a wrong
// secret key: 403), with no retries.
func Denied() *s3.Client {
	cfg := testenv.S3Config()
	cfg.Credentials = credentials.NewStaticCredentialsProvider("minioadmin", "wrong-secret", "")
	cfg.RetryMaxAttempts = 1
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}
