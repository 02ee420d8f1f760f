// Command load is the Load Lambda function (LoadFunction).
package main

import (
	"context"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/dataeng/rickmorty-pipeline/src/internal/awsclient"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets"
)

func main() {
	log := logging.New(os.Stdout, os.Getenv("LOG_LEVEL")).With("function", "load")
	mysqldb.RouteDriverLogs(log)
	cfg, err := loadfn.ConfigFromEnv(os.Getenv)
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
	h := loadfn.New(cfg, awsclient.S3(awsCfg, cfg.PathStyle), db, log)
	lambda.Start(h.Handle)
}
