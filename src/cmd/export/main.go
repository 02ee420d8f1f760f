// Command export is the Export Lambda function (ExportFunction), the RDS
// exporter, run by its schedule.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
)

func main() {
	exportfn.TuneMemory(os.Getenv)
	log := logging.New(os.Stdout, os.Getenv("LOG_LEVEL")).With("function", "export")
	mysqldb.RouteDriverLogs(log)
	h, err := exportfn.FromEnv(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("cold start failed", "error", err)
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
