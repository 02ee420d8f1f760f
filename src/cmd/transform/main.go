// Command transform is the Transform Lambda function (TransformFunction).
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/dataeng/rickmorty-pipeline/src/internal/awsclient"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
)

func main() {
	log := logging.New(os.Stdout, os.Getenv("LOG_LEVEL")).With("function", "transform")
	cfg, err := transformfn.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Error("invalid configuration", "error", err)
		os.Exit(1)
	}
	awsCfg, err := awsclient.Load(context.Background())
	if err != nil {
		log.Error("loading AWS configuration", "error", err)
		os.Exit(1)
	}
	h := transformfn.New(cfg, awsclient.S3(awsCfg, cfg.PathStyle), log)
	lambda.Start(h.Handle)
}
