package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dataeng/rickmorty-pipeline/src/internal/fooddb"
)

func seedCommand() *command {
	return &command{
		name:    "seed",
		summary: "create and fill the food-delivery database (seed food [--mutate])",
		args:    "food",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			scale := fs.Int("scale", 1, "multiply the default row counts (5 to 35 per table)")
			rows := fs.String("rows", "", "exact row counts, e.g. orders=1000000,order_item=2000000")
			seedN := fs.Uint64("seed", 1, "seed of the generated data (same seed, same rows)")
			mutate := fs.Bool("mutate", false, "insert new rows and update existing ones (modifiedDate = NOW(6)) instead of filling")
			inserts := fs.Int("inserts", 0, "with --mutate: new rows per table (0: 1 to 5)")
			updates := fs.Int("updates", 0, "with --mutate: updated rows per table (0: 1 to 5)")
			reset := fs.Bool("reset", false, "drop the nine tables first")
			index := fs.Bool("export-index", false, "add the indexed export_position column the exporter uses (COALESCE(modifiedDate, createdDate))")
			return func(ctx context.Context) (result, error) {
				// Flags may follow the database name: seed food --rows orders=1000000.
				args := g.args
				if len(args) > 1 {
					if err := fs.Parse(args[1:]); err != nil {
						return nil, err
					}
					args = append(args[:1:1], fs.Args()...)
				}
				if len(args) != 1 || args[0] != "food" {
					return nil, fmt.Errorf("want the database to seed: `pipeline seed food` (got %q)", strings.Join(args, " "))
				}
				counts, err := parseRows(*rows)
				if err != nil {
					return nil, err
				}
				opts := fooddb.Options{Seed: *seedN, Scale: *scale, Rows: counts, ExportIndex: *index}
				if err := opts.Validate(); err != nil {
					return nil, err
				}
				st, err := g.openStack(ctx, true)
				if err != nil {
					return nil, err
				}
				defer st.Close()
				db, err := st.DB.DB(ctx)
				if err != nil {
					return nil, err
				}
				res := &seedResult{Mode: "fill"}
				if *mutate {
					res.Mode = "mutate"
					res.Summary, err = fooddb.Mutate(ctx, db, fooddb.MutateOptions{Seed: *seedN, Inserts: *inserts, Updates: *updates})
					return res, err
				}
				if *reset {
					if err := fooddb.DropSchema(ctx, db); err != nil {
						return nil, err
					}
				}
				res.Summary, err = fooddb.Food(ctx, db, opts)
				return res, err
			}
		},
	}
}

// parseRows reads --rows: table=count pairs separated by commas.
func parseRows(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		t, n, ok := strings.Cut(part, "=")
		count, err := strconv.Atoi(strings.TrimSpace(n))
		if !ok || err != nil || count < 0 {
			return nil, fmt.Errorf("--rows %q: want table=count, e.g. orders=1000000", part)
		}
		out[strings.TrimSpace(t)] = count
	}
	return out, nil
}

// seedResult is what `pipeline seed food` did.
type seedResult struct {
	Mode string `json:"mode"`
	fooddb.Summary
}

func (r *seedResult) Human(w io.Writer) {
	verb := "seeded"
	if r.Mode == "mutate" {
		verb = "mutated"
	}
	fmt.Fprintf(w, "%s the food-delivery tables:\n", verb)
	for _, t := range r.Tables {
		fmt.Fprintf(w, "  %-18s %9d inserted %6d updated\n", t.Table, t.Inserted, t.Updated)
	}
}
