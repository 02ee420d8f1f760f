// Command extract is the Extract Lambda function (ExtractFunction).
package main

import (
	"context"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/dataeng/rickmorty-pipeline/src/internal/awsclient"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extractfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

func main() {
	log := logging.New(os.Stdout, os.Getenv("LOG_LEVEL")).With("function", "extract")
	cfg, err := extractfn.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Error("invalid configuration", "error", err)
		os.Exit(1)
	}
	awsCfg, err := awsclient.Load(context.Background())
	if err != nil {
		log.Error("loading AWS configuration", "error", err)
		os.Exit(1)
	}
	h := extractfn.New(cfg, awsclient.S3(awsCfg, cfg.PathStyle), rickmorty.NewHTTPClient(cfg.Concurrency), time.Now, log)
	lambda.Start(h.Handle)
}
