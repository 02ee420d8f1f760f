// Command export is the Export Lambda function (ExportFunction), the RDS exporter.
package main

import (
	"context"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/dataeng/rickmorty-pipeline/src/internal/awsclient"
	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets"
)

func main() {
	// Memory is what an export pays for: its live heap is steady (part
	// buffers and one Parquet row group) and it allocates little, so a GC
	// goal of 1.5x instead of 2x the live heap costs ~1% CPU and saves a
	// quarter of the peak. A soft limit under the function's memory makes
	// the GC work harder near it instead of the sandbox being killed.
	// GOGC and GOMEMLIMIT, when set, win.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if mb, err := strconv.Atoi(os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")); err == nil && mb > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(mb) << 20 * 9 / 10)
	}
	log := logging.New(os.Stdout, os.Getenv("LOG_LEVEL")).With("function", "export")
	mysqldb.RouteDriverLogs(log)
	cfg, err := exportfn.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Error("invalid configuration", "error", err)
		os.Exit(1)
	}
	awsCfg, err := awsclient.Load(context.Background())
	if err != nil {
		log.Error("loading AWS configuration", "error", err)
		os.Exit(1)
	}
	resolver := &secrets.Resolver{SSM: ssm.NewFromConfig(awsCfg), SecretsManager: secretsmanager.NewFromConfig(awsCfg), TTL: 15 * time.Minute}
	db := mysqldb.NewConnector(cfg.DB, resolver)
	h := exportfn.New(cfg, awsclient.S3(awsCfg, cfg.PathStyle), db, log)
	lambda.Start(h.Handle)
}
