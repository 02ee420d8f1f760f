// Command exportrange is the range worker of fanned-out exports
// (ExportRangeFunction): fed by the range queue, it exports one primary-key
// range of a run into its part files. It is ExportFunction's code with
// another entry point, deployed on its own because the scheduled run must
// stay one at a time while range workers scale out.
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
	log := logging.New(os.Stdout, os.Getenv("LOG_LEVEL")).With("function", "exportrange")
	mysqldb.RouteDriverLogs(log)
	h, err := exportfn.FromEnv(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("cold start failed", "error", err)
		os.Exit(1)
	}
	lambda.Start(h.HandleRanges)
}
