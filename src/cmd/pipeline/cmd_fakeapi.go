package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

func fakeAPICommand() *command {
	return &command{
		name:    "fakeapi",
		alias:   "replica",
		summary: "serve a fake Rick and Morty API, generated or from a snapshot (until Ctrl-C)",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (port 0: any free port)")
			data := fs.String("data", "", "folder with character.json, location.json, episode.json to serve (e.g. ../shared/rickandmorty); empty: generated data")
			sz := fakeapi.DefaultSizes
			fs.IntVar(&sz.Characters, "characters", sz.Characters, "generated characters")
			fs.IntVar(&sz.Locations, "locations", sz.Locations, "generated locations")
			fs.IntVar(&sz.Episodes, "episodes", sz.Episodes, "generated episodes")
			seed := fs.Uint64("seed", 1, "seed of the generated data and of the faults")
			baseURL := fs.String("base-url", "", "API root to advertise in links (default http://<Host of each request>/api)")
			var f fakeapi.Faults
			fs.DurationVar(&f.Latency, "latency", 0, "delay before every answer, e.g. 100ms")
			fs.Float64Var(&f.Fail, "fail", 0, "fraction of requests answered 500")
			fs.Float64Var(&f.Throttle, "throttle", 0, "fraction of requests answered 429 with Retry-After")
			fs.StringVar(&f.RetryAfter, "retry-after", "1", "Retry-After sent with 429s (seconds or an HTTP date)")
			fs.Float64Var(&f.Cut, "cut", 0, "fraction of requests whose connection is cut mid-body")
			return func(ctx context.Context) (result, error) {
				if f.Fail < 0 || f.Throttle < 0 || f.Cut < 0 || f.Fail+f.Throttle+f.Cut > 1 {
					return nil, errors.New("--fail, --throttle and --cut are fractions that add up to at most 1")
				}
				f.Seed = *seed
				var ds *fakeapi.Dataset
				var err error
				source := fmt.Sprintf("generated, seed %d", *seed)
				if *data != "" {
					ds, err = fakeapi.Load(*data)
					source = *data
				} else {
					ds, err = fakeapi.Generate(sz, *seed)
				}
				if err != nil {
					return nil, err
				}
				ln, err := net.Listen("tcp", *addr)
				if err != nil {
					return nil, err
				}
				s := fakeapi.New(ds, fakeapi.Options{BaseURL: *baseURL, Faults: f})
				srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
				url := "http://" + ln.Addr().String() + "/api"
				msgTo := g.stdout
				if g.json {
					msgTo = g.stderr // stdout holds the one JSON object
				}
				fmt.Fprintf(msgTo, "fake Rick and Morty API at %s (%d characters, %d locations, %d episodes; %s)\n",
					url, ds.Count(rickmorty.ResourceCharacter), ds.Count(rickmorty.ResourceLocation), ds.Count(rickmorty.ResourceEpisode), source)
				fmt.Fprintf(msgTo, "crawl it with: pipeline extract --api-url %s   (Ctrl-C stops it)\n", url)

				served := make(chan error, 1)
				go func() { served <- srv.Serve(ln) }()
				select {
				case err = <-served:
				case <-ctx.Done():
					sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					err = srv.Shutdown(sctx)
					cancel()
				}
				if errors.Is(err, http.ErrServerClosed) {
					err = nil
				}
				return &fakeAPIResult{URL: url, Source: source, Stats: s.Stats()}, err
			}
		},
	}
}

// fakeAPIResult is what `pipeline fakeapi` served.
type fakeAPIResult struct {
	URL    string        `json:"url"`
	Source string        `json:"source"`
	Stats  fakeapi.Stats `json:"stats"`
}

func (r *fakeAPIResult) Human(w io.Writer) {
	st := r.Stats
	fmt.Fprintf(w, "fake API at %s stopped: %d requests (%d answered 500, %d answered 429, %d cut), at most %d in flight\n",
		r.URL, st.Requests, st.Failed, st.Throttled, st.Cut, st.PeakInFlight)
}
