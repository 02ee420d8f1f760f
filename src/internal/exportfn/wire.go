package exportfn

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/dataeng/rickmorty-pipeline/src/internal/awsclient"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets"
)

// FromEnv builds the Handler of ExportFunction and ExportRangeFunction as a
// cold start does: the configuration (every problem at once), the AWS
// clients, the secret resolver, the database connector, and the range
// queue when the run fans out.
func FromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*Handler, error) {
	cfg, err := ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsclient.Load(ctx)
	if err != nil {
		return nil, err
	}
	resolver := &secrets.Resolver{SSM: ssm.NewFromConfig(awsCfg), SecretsManager: secretsmanager.NewFromConfig(awsCfg), TTL: 15 * time.Minute}
	h := New(cfg, awsclient.S3(awsCfg, cfg.PathStyle), mysqldb.NewConnector(cfg.DB, resolver), log)
	if cfg.RangeRows > 0 {
		h.Ranges = SQSSender{API: sqs.NewFromConfig(awsCfg), QueueURL: cfg.RangeQueueURL}
	}
	return h, nil
}

// TuneMemory sets the GC for an export's steady live heap (part buffers,
// batches, one Parquet row group) that allocates little: a goal of 1.5x
// instead of 2x the live heap costs ~1% CPU and saves a quarter of the
// peak; a soft limit under the function's memory makes the GC work harder
// near it instead of the sandbox being killed. GOGC and GOMEMLIMIT, when
// set, win.
func TuneMemory(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if mb, err := strconv.Atoi(getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")); err == nil && mb > 0 && getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(mb) << 20 * 9 / 10)
	}
}
