package export

import (
	"cmp"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fooddb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// BenchmarkExportOrders exports package fooddb's orders table (the bench's)
// of EXPORT_BENCH_ROWS rows (default 200,000) with the production settings,
// for profiling: go test -run XXX -bench ExportOrders -cpuprofile cpu.out.
// EXPORT_PARQUET_COMPRESSION lists the codecs to use by turns.
func BenchmarkExportOrders(b *testing.B) {
	n := 200_000
	if s := os.Getenv("EXPORT_BENCH_ROWS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("EXPORT_BENCH_ROWS: %v", err)
		}
	}
	db, _ := testenv.MySQL(b)
	api, name := testenv.S3(b)
	bk := bucket.New(api, name)
	rows := map[string]int{fooddb.Orders: n, fooddb.OrderItem: 0, fooddb.Delivery: 0}
	if _, err := fooddb.Food(context.Background(), db, fooddb.Options{Rows: rows}); err != nil {
		b.Fatal(err)
	}
	codecs := strings.Split(os.Getenv("EXPORT_PARQUET_COMPRESSION"), ",") // by turns
	b.ResetTimer()
	for i := range b.N {
		e := &Exporter{DB: db, Bucket: bk, Prefix: "run" + strconv.Itoa(i) + "/", PartSize: bucket.MinPartSize, Compression: codecs[i%len(codecs)]}
		res := e.Run(context.Background(), Specs([]string{"orders"}, nil))
		if err := res.Err(); err != nil {
			b.Fatal(err)
		}
		s := res.Tables[0].Stages
		b.Logf("%s: %d rows in %s: read %s, csv %s, parquet %s, upload %s, validate %s; parquet %.1f MB", cmp.Or(e.Compression, DefaultCompression), res.Tables[0].Rows,
			res.Tables[0].Duration.Round(time.Millisecond), s.Read, s.EncodeCSV, s.EncodeParquet, s.Upload, s.Validate, float64(res.Tables[0].ParquetBytes)/1e6)
	}
}
