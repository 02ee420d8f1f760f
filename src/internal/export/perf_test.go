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

// BenchmarkExportOrders exports an orders table (the bench's schema) of
// EXPORT_BENCH_ROWS rows (default 200,000) with the production settings,
// for profiling: go test -run XXX -bench ExportOrders -cpuprofile cpu.out.
// The rows are synthetic, or with EXPORT_BENCH_FOOD=1 package fooddb's
// (the bench's: slower to generate); EXPORT_PARQUET_COMPRESSION lists the
// codecs to use by turns.
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
	if os.Getenv("EXPORT_BENCH_FOOD") != "" {
		// The bench's data: package fooddb's generated orders.
		rows := map[string]int{fooddb.Orders: n, fooddb.OrderItem: 0, fooddb.Delivery: 0}
		if _, err := fooddb.Food(context.Background(), db, fooddb.Options{Rows: rows}); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []string{
		`CREATE TABLE orders (
  id BIGINT NOT NULL AUTO_INCREMENT,
  customer_id INT UNSIGNED NOT NULL,
  restaurant_id INT UNSIGNED NOT NULL,
  address_id INT UNSIGNED NOT NULL,
  order_time DATETIME NOT NULL,
  status ENUM('placed','preparing','picked_up','delivered','cancelled') NOT NULL,
  payment_method VARCHAR(16) NOT NULL,
  subtotal DECIMAL(10,2) NOT NULL,
  delivery_fee DECIMAL(6,2) NOT NULL,
  tip DECIMAL(6,2) NULL,
  total DECIMAL(10,2) NOT NULL,
  notes VARCHAR(255) NULL,
  createdDate DATETIME(6) NOT NULL,
  modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (id))`,
		`INSERT INTO orders (id, customer_id, restaurant_id, address_id, order_time, status, payment_method,
  subtotal, delivery_fee, tip, total, notes, createdDate, modifiedDate)
  SELECT seq, seq % 5000 + 1, seq % 700 + 1, seq % 9000 + 1, '2024-01-01' + INTERVAL seq MINUTE,
  1 + seq % 5, ELT(1 + seq % 3, 'card', 'cash', 'paypal'), (seq % 10000) / 100, 2.99, IF(seq % 4 = 0, NULL, (seq % 700) / 100),
  (seq % 10000) / 100 + 2.99, IF(seq % 3 = 0, NULL, CONCAT('ring twice, flat ', seq % 97)),
  '2024-01-01' + INTERVAL seq MINUTE + INTERVAL (seq % 1000000) MICROSECOND,
  IF(seq % 2 = 0, NULL, '2024-06-01' + INTERVAL seq SECOND + INTERVAL (seq % 999983) MICROSECOND)
  FROM seq_1_to_` + strconv.Itoa(n),
	} {
		if os.Getenv("EXPORT_BENCH_FOOD") != "" {
			break
		}
		if _, err := db.Exec(q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
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
