package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"time"

	bkt "github.com/dataeng/rickmorty-pipeline/src/internal/bucket"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/extract"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// benchCrawl crawls the default-size dataset (826/126/51: 52 pages) from an
// in-process fake API answering every request after 100 ms, into MinIO, with
// 4 requests in flight; and, in the same run, the way the original Python
// Lambda did it: one request at a time, each page stored before the next is
// asked for. A third crawl, one request at a time but storing while the
// next page is fetched, shows what the overlap alone is worth.
func benchCrawl(ctx context.Context, out io.Writer) ([]figure, error) {
	const (
		latency = 100 * time.Millisecond
		conc    = 4
	)
	ds, err := fakeapi.Generate(fakeapi.DefaultSizes, 1)
	if err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(testenv.S3Config(), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := client.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		return nil, fmt.Errorf("S3 server at %s (start it with `bash .ci/services.sh`): %w", testenv.S3Endpoint(), err)
	}

	type crawl struct {
		name       string
		conc, pend int
		res        extract.Result
		wall       time.Duration
		peak       int64
	}
	crawls := []*crawl{
		{name: fmt.Sprintf("%d in flight", conc), conc: conc},
		{name: "one at a time, fetch then store", conc: 1, pend: 1},
		{name: "one at a time, store overlapped", conc: 1},
	}
	for _, c := range crawls {
		bucket := testenv.RandomName("bench-crawl-")
		if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			return nil, fmt.Errorf("creating bucket %s: %w", bucket, err)
		}
		rep := fakeapi.New(ds, fakeapi.Options{Faults: fakeapi.Faults{Latency: latency}})
		srv := httptest.NewServer(rep)
		cfg := extract.DefaultConfig()
		cfg.BaseURL, cfg.Bucket, cfg.Concurrency, cfg.MaxPending = srv.URL+"/api", bucket, c.conc, c.pend
		crawler := extract.New(cfg, bkt.New(client, bucket), rickmorty.NewHTTPClient(c.conc), time.Now, nil)
		start := time.Now()
		c.res, err = crawler.Run(ctx, false)
		c.wall = time.Since(start)
		c.peak = rep.Stats().PeakInFlight
		srv.Close()
		removeBucket(context.WithoutCancel(ctx), client, bucket)
		if err != nil {
			return nil, fmt.Errorf("crawl %s: %w", c.name, err)
		}
		fmt.Fprintf(out, "crawl %-32s %6.2fs  %d pages written, %d requests, peak %d in flight, %d bytes\n",
			c.name+":", c.wall.Seconds(), c.res.Written, c.res.Requests, c.peak, c.res.BytesWritten)
	}
	fast, seq, overlapped := crawls[0], crawls[1], crawls[2]
	pages := fast.res.Pages
	floor := time.Duration(float64(pages) / conc * float64(latency))
	ratio := seq.wall.Seconds() / fast.wall.Seconds()
	// No crawl of n requests, each taking the latency, with conc in flight
	// can beat ceil(n/conc) latencies: that bounds the ratio too.
	best := time.Duration(math.Ceil(float64(fast.res.Requests)/conc)) * latency
	fmt.Fprintf(out, "floor: %d pages ÷ %d in flight × %s = %s; with the root document, %d requests: at best %s, so at most %.2fx the baseline\n",
		pages, conc, latency, floor, fast.res.Requests, best, seq.wall.Seconds()/best.Seconds())
	return []figure{
		{Section: "crawl", Name: fmt.Sprintf("wall time, %d pages, %d in flight, %s latency", pages, conc, latency),
			Value: fast.wall.Seconds(), Unit: "s", Baseline: seq.wall.Seconds(), BaseName: "one request at a time, fetch then store",
			Ratio: ratio, Target: ">= 4x", Met: met(ratio >= 4)},
		{Section: "crawl", Name: "wall time vs one at a time with storing overlapped",
			Value: fast.wall.Seconds(), Unit: "s", Baseline: overlapped.wall.Seconds(), BaseName: "1 in flight, store overlapped",
			Ratio: overlapped.wall.Seconds() / fast.wall.Seconds()},
		{Section: "crawl", Name: fmt.Sprintf("floor (%d pages ÷ %d × %s)", pages, conc, latency),
			Value: floor.Seconds(), Unit: "s"},
		{Section: "crawl", Name: fmt.Sprintf("best possible: ceil(%d requests ÷ %d) × %s", fast.res.Requests, conc, latency),
			Value: best.Seconds(), Unit: "s", Baseline: seq.wall.Seconds(), BaseName: "one request at a time, fetch then store",
			Ratio: seq.wall.Seconds() / best.Seconds()},
		{Section: "crawl", Name: "wall time ÷ floor", Value: fast.wall.Seconds() / floor.Seconds(), Unit: "x",
			Target: "close to 1 (<= 1.25)", Met: met(fast.wall.Seconds()/floor.Seconds() <= 1.25)},
		{Section: "crawl", Name: "peak requests in flight", Value: float64(fast.peak), Unit: "",
			Target: fmt.Sprintf("<= %d", conc), Met: met(fast.peak <= conc)},
		{Section: "crawl", Name: "bytes stored", Value: math.Round(float64(fast.res.BytesWritten)/1e4) / 100, Unit: "MB"},
	}, nil
}

// removeBucket deletes every object of bucket, then the bucket.
func removeBucket(ctx context.Context, client *s3.Client, bucket string) {
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			break
		}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		if len(ids) > 0 {
			_, _ = client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		}
	}
	_, _ = client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
}
