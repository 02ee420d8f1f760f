package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/lambdabuild"
	"github.com/dataeng/rickmorty-pipeline/src/internal/lambdaemu"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
)

// coldStartRuns is how many cold starts of each function are measured; the
// figures are their medians.
const coldStartRuns = 3

// coldFunctions are the functions in the order data flows through them.
var coldFunctions = []string{"ExtractFunction", "TransformFunction", "LoadFunction", "ExportFunction"}

// pandasImport is the seeds' runtime floor: what a Python function that uses
// pandas pays before it does anything. It prints its own peak RSS (kB):
// VmHWM, not getrusage's ru_maxrss, which Linux carries across exec from
// the forked bench process (hundreds of MB after the load section).
const pandasImport = "import pandas; print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))"

// benchColdStart measures each function's cold start through the Lambda
// Runtime API emulator (lambdaemu), its bootstrap built for this machine
// with the Makefile's recipe, as `pipeline invoke` runs it: the Init
// Duration (process start to its first invocation/next), the first
// invocation's Duration, and the peak RSS (REPORT's Max Memory Used). Each
// run is the chain of events/ on fresh state, against MinIO and MariaDB: a
// new bucket and database, the fake API's generated data (52 pages), then
// extract → transform of page 1 of characters → load of its two CSVs →
// export. The baseline is `python3 -c 'import pandas'` measured in the same
// run (wall time and peak RSS), when pandas is installed.
func benchColdStart(ctx context.Context, out io.Writer) ([]figure, error) {
	tpl, err := samtemplate.Load("template.yaml")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-coldstart")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bootstraps := map[string]string{}
	for _, fn := range coldFunctions {
		recipe, err := lambdabuild.Read("Makefile", fn)
		if err != nil {
			return nil, err
		}
		bootstraps[fn] = filepath.Join(dir, fn, "bootstrap")
		if err := recipe.Build(ctx, lambdabuild.HostArch(), bootstraps[fn], out); err != nil {
			return nil, err
		}
	}
	ds, err := fakeapi.Generate(fakeapi.DefaultSizes, 1)
	if err != nil {
		return nil, err
	}
	api := httptest.NewServer(fakeapi.New(ds, fakeapi.Options{BaseURL: rickmorty.DefaultBaseURL}))
	defer api.Close()

	runs := map[string][]*lambdaemu.Result{}
	for i := range coldStartRuns {
		res, err := coldChain(ctx, tpl, bootstraps, api.URL+"/api")
		if err != nil {
			return nil, fmt.Errorf("cold start run %d: %w", i+1, err)
		}
		for fn, r := range res {
			runs[fn] = append(runs[fn], r)
		}
	}

	floor, err := pandasFloor(ctx)
	switch {
	case errors.Is(err, errNoPandas):
		fmt.Fprintln(out, "coldstart: pandas is not installed (python3 -c 'import pandas' fails): no baseline")
	case err != nil:
		return nil, err
	}
	var figs []figure
	for _, fn := range coldFunctions {
		rs := runs[fn]
		init := median(rs, func(r *lambdaemu.Result) float64 { return ms(r.InitDuration) })
		dur := median(rs, func(r *lambdaemu.Result) float64 { return ms(r.Duration) })
		rss := median(rs, func(r *lambdaemu.Result) float64 { return float64(r.MaxMemoryKB) / 1024 })
		name := strings.TrimSuffix(fn, "Function")
		initFig := figure{Section: "coldstart", Name: name + " Init Duration", Value: init, Unit: "ms"}
		durFig := figure{Section: "coldstart", Name: name + " first invocation", Value: dur, Unit: "ms"}
		rssFig := figure{Section: "coldstart", Name: name + " peak RSS", Value: rss, Unit: "MB"}
		if floor.ok {
			initFig.Baseline, initFig.BaseName, initFig.Ratio = floor.ms, "import pandas", floor.ms/init
			rssFig.Baseline, rssFig.BaseName, rssFig.Ratio = floor.rssMB, "import pandas", floor.rssMB/rss
		}
		figs = append(figs, initFig, durFig, rssFig)
	}
	return figs, nil
}

// coldChain runs each function once, cold, on a new bucket and database.
func coldChain(ctx context.Context, tpl *samtemplate.Template, bootstraps map[string]string, apiURL string) (map[string]*lambdaemu.Result, error) {
	s3c, bkt, err := benchBucket(ctx)
	if err != nil {
		return nil, err
	}
	defer emptyAndRemoveBucket(s3c, bkt)
	server := os.Getenv("TEST_MYSQL_DSN")
	if server == "" {
		server = "root@tcp(127.0.0.1:3306)/"
	}
	db, err := freshDatabase(ctx, server, "bench_cold_")
	if err != nil {
		return nil, err
	}
	defer db.drop()
	stack := samtemplate.LocalStack(map[string]string{"ApiBaseUrl": apiURL, "ExportLag": "0s"})

	out := map[string]*lambdaemu.Result{}
	for _, fn := range coldFunctions {
		ev, err := coldEvent(ctx, fn, s3c, bkt)
		if err != nil {
			return nil, err
		}
		fc, err := tpl.FunctionConfig(fn, stack)
		if err != nil {
			return nil, err
		}
		env := fc.Environment
		env["BUCKET"], env["AWS_ENDPOINT_URL_S3"], env["S3_FORCE_PATH_STYLE"] = bkt, s3Endpoint(), "true"
		if _, ok := env["EXPORT_BUCKET"]; ok {
			env["EXPORT_BUCKET"] = bkt
		}
		if _, ok := env["MYSQL_DSN"]; ok {
			env["MYSQL_DSN"] = db.dc.FormatDSN()
		}
		var logs bytes.Buffer
		em, err := lambdaemu.New(lambdaemu.Function{Name: fc.Name, Bootstrap: bootstraps[fn], Env: env, Timeout: fc.Timeout, MemoryMB: fc.MemoryMB,
			Credentials: lambdaemu.Credentials{AccessKeyID: s3Key(), SecretAccessKey: s3Secret()}, LogFormat: fc.LogFormat, LogLevel: fc.LogLevel, Logs: &logs})
		if err != nil {
			return nil, err
		}
		res, err := em.Invoke(ctx, ev)
		em.Close()
		if err == nil && res.Error != nil {
			err = res.Error
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", fn, err, tail(logs.String(), 2000))
		}
		out[fn] = res
	}
	return out, nil
}

// coldEvent is fn's event in the chain, for the objects the earlier
// functions left in bkt.
func coldEvent(ctx context.Context, fn string, s3c *s3.Client, bkt string) ([]byte, error) {
	created := func(key string) (bucket.Created, error) {
		h, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bkt), Key: aws.String(key)})
		if err != nil {
			return bucket.Created{}, fmt.Errorf("the event of %s: %s: %w", fn, key, err)
		}
		return bucket.Created{Bucket: bkt, Key: key, Size: aws.ToInt64(h.ContentLength), ETag: aws.ToString(h.ETag), Time: aws.ToTime(h.LastModified)}, nil
	}
	switch fn {
	case "TransformFunction":
		c, err := created(bucket.PageKey("character", 1))
		if err != nil {
			return nil, err
		}
		return json.Marshal(events.S3Event{Records: []events.S3EventRecord{bucket.EventRecord(c)}})
	case "LoadFunction":
		var batch events.SQSEvent
		for i, table := range []string{"characters", "character_episodes"} {
			c, err := created(bucket.ProcessedKey(table, bucket.PageKey("character", 1)))
			if err != nil {
				return nil, err
			}
			body, err := json.Marshal(events.S3Event{Records: []events.S3EventRecord{bucket.EventRecord(c)}})
			if err != nil {
				return nil, err
			}
			batch.Records = append(batch.Records, events.SQSMessage{MessageId: "bench-" + strconv.Itoa(i), Body: string(body), EventSource: "aws:sqs",
				AWSRegion: samtemplate.LocalRegion, Attributes: map[string]string{"ApproximateReceiveCount": "1"}})
		}
		return json.Marshal(batch)
	}
	return json.Marshal(events.EventBridgeEvent{Version: "0", DetailType: "Scheduled Event", Source: "aws.events", Detail: json.RawMessage("{}")})
}

// floor is the pandas import's figures.
type floor struct {
	ok    bool
	ms    float64
	rssMB float64
}

var errNoPandas = errors.New("pandas is not installed")

// pandasFloor times `python3 -c 'import pandas'` (the interpreter itself,
// not a version manager's shim in front of it), the median of
// coldStartRuns runs; python3 on PATH first, then /usr/bin/python3.
func pandasFloor(ctx context.Context) (floor, error) {
	var python string
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		out, err := exec.CommandContext(ctx, p, "-c", "import pandas, sys; print(sys.executable)").Output()
		if err == nil {
			python = strings.TrimSpace(string(out))
			break
		}
	}
	if python == "" {
		return floor{}, errNoPandas
	}
	var times, rss []float64
	for range coldStartRuns {
		start := time.Now()
		out, err := exec.CommandContext(ctx, python, "-c", pandasImport).Output()
		if err != nil {
			return floor{}, fmt.Errorf("%s -c 'import pandas': %w", python, err)
		}
		times = append(times, ms(time.Since(start)))
		kb, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil {
			return floor{}, fmt.Errorf("%s printed %q, not its peak RSS", python, out)
		}
		rss = append(rss, kb/1024)
	}
	return floor{ok: true, ms: medianOf(times), rssMB: medianOf(rss)}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(rs []*lambdaemu.Result, f func(*lambdaemu.Result) float64) float64 {
	var v []float64
	for _, r := range rs {
		v = append(v, f(r))
	}
	return medianOf(v)
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
