package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
)

func transformCommand() *command {
	return &command{
		name:    "transform",
		summary: "transform objects under raw/ into processed/ CSVs",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			prefix := fs.String("prefix", bucket.RawPrefix, "transform every object under this prefix (it must be under raw/)")
			return func(ctx context.Context) (result, error) {
				if !strings.HasPrefix(*prefix, bucket.RawPrefix) {
					return nil, fmt.Errorf("--prefix %q is not under %s", *prefix, bucket.RawPrefix)
				}
				st, err := g.openStack(ctx, false)
				if err != nil {
					return nil, err
				}
				defer st.Close()
				level := os.Getenv("LOG_LEVEL")
				if level == "" {
					level = "warn"
				}
				log := logging.New(g.stderr, level).With("function", "transform")
				return transformPrefix(ctx, st.S3, st.Bucket, *prefix, log)
			}
		},
	}
}

// transformResult is what `pipeline transform` did.
type transformResult struct {
	Bucket      string                `json:"bucket"`
	Prefix      string                `json:"prefix"`
	Objects     int                   `json:"objects"`
	Transformed int                   `json:"transformed"`
	Quarantined int                   `json:"quarantined"`
	Skipped     int                   `json:"skipped"`
	Failed      int                   `json:"failed"`
	Rows        map[string]int        `json:"rows"`     // rows written per table
	Rejected    int                   `json:"rejected"` // records rejected
	Problems    []transformfn.Outcome `json:"problems"` // every object not transformed
}

func (r *transformResult) Human(w io.Writer) {
	fmt.Fprintf(w, "transformed %d of %d objects under s3://%s/%s: %d quarantined, %d failed, %d skipped\n",
		r.Transformed, r.Objects, r.Bucket, r.Prefix, r.Quarantined, r.Failed, r.Skipped)
	tables := make([]string, 0, len(r.Rows))
	for t := range r.Rows {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	var parts []string
	for _, t := range tables {
		parts = append(parts, fmt.Sprintf("%s %d", t, r.Rows[t]))
	}
	fmt.Fprintf(w, "rows written: %s; records rejected: %d\n", strings.Join(parts, ", "), r.Rejected)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s %s: %s\n", p.Status, p.Key, p.Reason)
	}
}

// transformPrefix sends one S3 ObjectCreated event per object under prefix
// to the Transform function's handler, as S3 does in AWS.
func transformPrefix(ctx context.Context, s3c *s3.Client, bkt, prefix string, log *slog.Logger) (*transformResult, error) {
	res := &transformResult{Bucket: bkt, Prefix: prefix, Rows: map[string]int{}, Problems: []transformfn.Outcome{}}
	h := transformfn.New(transformfn.Config{Bucket: bkt, PathStyle: true}, s3c, log)
	h.Observe = func(o transformfn.Outcome) {
		switch o.Status {
		case transformfn.Transformed:
			res.Transformed++
			for t, n := range o.Report.Rows {
				res.Rows[t] += n
			}
			res.Rejected += o.Report.Rejected
			return
		case transformfn.Quarantined:
			res.Quarantined++
		case transformfn.Skipped:
			res.Skipped++
		case transformfn.Failed:
			res.Failed++
		}
		res.Problems = append(res.Problems, o)
	}
	err := eachObject(ctx, s3c, bkt, prefix, func(obj types.Object) error {
		res.Objects++
		ev, err := objectCreatedEvent(bkt, obj, time.Now())
		if err != nil {
			return err
		}
		_ = h.Handle(ctx, ev) // failures are counted by Observe; the others go on
		return nil
	})
	if err != nil {
		return res, err
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("%d of %d objects failed (transient errors: run again)", res.Failed, res.Objects)
	}
	return res, nil
}

// objectCreatedEvent is the S3 event notification of one PutObject, as the
// handler receives it in Lambda: bucket.EventRecord's shape, decoded by
// aws-lambda-go (which fills URLDecodedKey).
func objectCreatedEvent(bkt string, obj types.Object, now time.Time) (events.S3Event, error) {
	rec := bucket.EventRecord(bucket.Created{Bucket: bkt, Key: aws.ToString(obj.Key), Size: aws.ToInt64(obj.Size),
		ETag: aws.ToString(obj.ETag), ConfigID: transformID, Time: now})
	b, err := json.Marshal(events.S3Event{Records: []events.S3EventRecord{rec}})
	if err != nil {
		return events.S3Event{}, err
	}
	var ev events.S3Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return events.S3Event{}, fmt.Errorf("decoding the event of %q: %w", aws.ToString(obj.Key), err)
	}
	return ev, nil
}

// eachObject calls fn with every object under prefix, in key order, until fn
// or the listing fails or ctx ends.
func eachObject(ctx context.Context, s3c *s3.Client, bucket, prefix string, fn func(types.Object) error) error {
	p := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, obj := range page.Contents {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
	}
	return nil
}
