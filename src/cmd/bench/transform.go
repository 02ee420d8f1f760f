package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transform"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transform/transformtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// transformBenchMB is the size of the generated raw page (characters).
const transformBenchMB = 128

// benchTransform measures the transform on one large generated page of
// characters: throughput in MB/s of raw JSON and peak heap, against the
// naive approach (read the whole file, json.Unmarshal into maps, write with
// encoding/csv) measured in the same run; then the whole Transform function
// from MinIO to MinIO against a plain GET of the same object.
func benchTransform(ctx context.Context, out io.Writer) ([]figure, error) {
	dir, err := os.MkdirTemp("", "bench-transform")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "characters.json")
	size, err := writeFile(path, transformtest.CharacterPage(transformBenchMB<<20))
	if err != nil {
		return nil, err
	}
	mb := float64(size) / 1e6
	fmt.Fprintf(out, "raw page: %.0f MB of generated characters\n", mb)
	fetched := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	var rep transform.Report
	ours, err := measure(func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		rep, err = transform.Transform(ctx, "raw/character/bench.json", fetched, f, discardSink{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("transform: %w", err)
	}
	fmt.Fprintf(out, "transform: %d records, %v rows, %s, peak heap %.1f MB\n", rep.Records, rep.Rows, ours.took.Round(time.Millisecond), ours.heapMB())

	var naiveRows int
	naive, err := measure(func() error {
		var err error
		naiveRows, err = naiveTransform(path, fetched)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("naive transform: %w", err)
	}
	fmt.Fprintf(out, "naive (ReadFile + json.Unmarshal into maps + encoding/csv): %d rows, %s, peak heap %.1f MB\n", naiveRows, naive.took.Round(time.Millisecond), naive.heapMB())

	speed, baseSpeed := mb/ours.took.Seconds(), mb/naive.took.Seconds()
	figs := []figure{
		{Section: "transform", Name: "throughput, file → CSV", Value: speed, Unit: "MB/s", Baseline: baseSpeed, BaseName: "naive Unmarshal+csv",
			Ratio: speed / baseSpeed, Target: ">= 1.5x naive", Met: met(speed >= 1.5*baseSpeed)},
		{Section: "transform", Name: fmt.Sprintf("peak heap, %.0f MB object", mb), Value: ours.heapMB(), Unit: "MB", Baseline: naive.heapMB(), BaseName: "naive",
			Ratio: naive.heapMB() / max(ours.heapMB(), 0.1), Target: "< 64 MB", Met: met(ours.heapMB() < 64)},
	}
	s3figs, err := benchTransformS3(ctx, out, path, size)
	if err != nil {
		fmt.Fprintf(out, "transform via MinIO: skipped: %v\n", err)
		return figs, nil
	}
	return append(figs, s3figs...), nil
}

// benchTransformS3 runs the Transform function's handler on the page stored
// in MinIO (outputs written back to MinIO), against a plain GET of it.
func benchTransformS3(ctx context.Context, out io.Writer, path string, size int64) ([]figure, error) {
	c := s3.NewFromConfig(testenv.S3Config(), func(o *s3.Options) { o.UsePathStyle = true })
	bucket := strings.ReplaceAll(testenv.RandomName("bench-transform-"), "_", "-")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return nil, fmt.Errorf("MinIO at %s: %w", testenv.S3Endpoint(), err)
	}
	defer emptyAndRemoveBucket(c, bucket)
	key := "raw/character/bench.json"
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: f, ContentLength: aws.Int64(size),
		Metadata: map[string]string{"fetched-at": "2026-01-01T00:00:00Z"}})
	f.Close()
	if err != nil {
		return nil, err
	}
	get, err := measure(func() error {
		o, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return err
		}
		defer o.Body.Close()
		_, err = io.Copy(io.Discard, o.Body)
		return err
	})
	if err != nil {
		return nil, err
	}
	h := transformfn.New(transformfn.Config{Bucket: bucket, PathStyle: true}, c, slog.New(slog.DiscardHandler))
	var outcome transformfn.Outcome
	h.Observe = func(o transformfn.Outcome) { outcome = o }
	var ev events.S3Event
	ev.Records = []events.S3EventRecord{{EventName: "ObjectCreated:Put"}}
	ev.Records[0].S3.Bucket.Name = bucket
	ev.Records[0].S3.Object.URLDecodedKey = key
	fn, err := measure(func() error { return h.Handle(ctx, ev) })
	if err != nil {
		return nil, err
	}
	if outcome.Status != transformfn.Transformed {
		return nil, fmt.Errorf("outcome %+v", outcome)
	}
	mb := float64(size) / 1e6
	speed, getSpeed := mb/fn.took.Seconds(), mb/get.took.Seconds()
	fmt.Fprintf(out, "Transform function MinIO → MinIO: %s (GET alone %s), peak heap %.1f MB, outputs %v\n",
		fn.took.Round(time.Millisecond), get.took.Round(time.Millisecond), fn.heapMB(), outcome.Outputs)
	return []figure{
		{Section: "transform", Name: "throughput, MinIO → handler → MinIO", Value: speed, Unit: "MB/s", Baseline: getSpeed, BaseName: "GET only",
			Ratio: speed / getSpeed},
		{Section: "transform", Name: "peak heap, handler (part buffers incl.)", Value: fn.heapMB(), Unit: "MB", Target: "< 128 MB (Lambda: 512 MB)", Met: met(fn.heapMB() < 128)},
	}, nil
}

func emptyAndRemoveBucket(c *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			break
		}
		for _, o := range page.Contents {
			_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		}
	}
	_, _ = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
}

func writeFile(path string, r io.Reader) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// run is one measured run: its duration and its peak heap growth.
type run struct {
	took time.Duration
	heap uint64
}

func (r run) heapMB() float64 { return float64(r.heap) / (1 << 20) }

// measure runs fn after a GC, sampling the heap in use every 2 ms.
func measure(fn func() error) (run, error) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapInuse
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	start := time.Now()
	err := fn()
	took := time.Since(start)
	close(stop)
	wg.Wait()
	runtime.ReadMemStats(&m)
	peak = max(peak, m.HeapInuse)
	return run{took: took, heap: peak - min(peak, base)}, err
}

type discardSink struct{}

func (discardSink) Create(string) (io.Writer, error) { return io.Discard, nil }

// naiveTransform is the baseline: the whole file in memory, decoded into
// maps, rows written with encoding/csv (characters and their links).
func naiveTransform(path string, fetched time.Time) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var page struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return 0, err
	}
	chars := csv.NewWriter(bufio.NewWriter(io.Discard))
	links := csv.NewWriter(bufio.NewWriter(io.Discard))
	chars.Write(mustHeader(warehouse.Characters))
	links.Write(mustHeader(warehouse.CharacterEpisodes))
	fetchedAt := warehouse.FormatTime(fetched)
	lastID := func(u string) string { return u[strings.LastIndexByte(u, '/')+1:] }
	str := func(v any) string { s, _ := v.(string); return s }
	rows := 0
	for _, r := range page.Results {
		id := strconv.FormatFloat(r["id"].(float64), 'f', -1, 64)
		origin, _ := r["origin"].(map[string]any)
		location, _ := r["location"].(map[string]any)
		created, err := time.Parse(time.RFC3339Nano, str(r["created"]))
		if err != nil {
			return rows, err
		}
		originID, locationID := `\N`, `\N`
		if u := str(origin["url"]); u != "" {
			originID = lastID(u)
		}
		if u := str(location["url"]); u != "" {
			locationID = lastID(u)
		}
		chars.Write([]string{id, str(r["name"]), str(r["status"]), str(r["species"]), str(r["type"]), str(r["gender"]),
			originID, str(origin["name"]), locationID, str(location["name"]), str(r["image"]), str(r["url"]),
			warehouse.FormatTime(created), fetchedAt})
		rows++
		eps, _ := r["episode"].([]any)
		for _, e := range eps {
			links.Write([]string{id, lastID(str(e))})
			rows++
		}
	}
	chars.Flush()
	links.Flush()
	if err := chars.Error(); err != nil {
		return rows, err
	}
	return rows, links.Error()
}

func mustHeader(table string) []string {
	t, _ := warehouse.Lookup(table)
	return t.Header()
}
