// Package awsclient builds AWS SDK clients once per cold start.
//
// Endpoints follow the SDK's standard variables (AWS_ENDPOINT_URL and the
// per-service AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_SSM, ...), so the same
// binary talks to AWS, MinIO or the local stack without code changes.
package awsclient

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Load reads the shared AWS configuration (region, credentials, endpoints)
// from the environment. Checksums are computed and validated only when an
// operation requires them, which S3-compatible servers understand.
func Load(ctx context.Context, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
	opts = append([]func(*config.LoadOptions) error{
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}, opts...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	return cfg, nil
}

// S3 returns an S3 client; pathStyle addresses buckets as /bucket/key, which
// S3-compatible servers such as MinIO and the local stack expect.
func S3(cfg aws.Config, pathStyle bool) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
	})
}
