package fooddb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

func checksums(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tb := range Tables() {
		var name string
		var sum sql.NullString
		if err := db.QueryRow("CHECKSUM TABLE `"+tb+"`").Scan(&name, &sum); err != nil {
			t.Fatal(err)
		}
		out[tb] = sum.String
	}
	return out
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestFoodIsDeterministicAndConsistent(t *testing.T) {
	ctx := context.Background()
	db1, _ := testenv.MySQL(t)
	db2, _ := testenv.MySQL(t)
	opts := Options{Seed: 7}
	sum, err := Food(ctx, db1, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Food(ctx, db2, opts); err != nil {
		t.Fatal(err)
	}
	if len(sum.Tables) != 9 {
		t.Fatalf("summary has %d tables", len(sum.Tables))
	}
	want := opts.Counts()
	for _, ts := range sum.Tables {
		n := count(t, db1, "SELECT COUNT(*) FROM `"+ts.Table+"`")
		if int64(n) != ts.Inserted || n != want[ts.Table] {
			t.Errorf("%s: %d rows, summary %d, Counts %d", ts.Table, n, ts.Inserted, want[ts.Table])
		}
		if n < 5 || n > 35 {
			t.Errorf("%s: %d rows, want 5 to 35 by default", ts.Table, n)
		}
	}
	if c1, c2 := checksums(t, db1), checksums(t, db2); fmt.Sprint(c1) != fmt.Sprint(c2) {
		t.Errorf("same options, different data:\n%v\n%v", c1, c2)
	}

	// Foreign keys hold although the checks were off during the load.
	fks := []string{
		"SELECT COUNT(*) FROM restaurant x LEFT JOIN location p ON p.id = x.location_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM delivery_agent x LEFT JOIN location p ON p.id = x.location_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM customer_address x LEFT JOIN customer p ON p.id = x.customer_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM customer_address x LEFT JOIN location p ON p.id = x.location_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM menu x LEFT JOIN restaurant p ON p.id = x.restaurant_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM orders x LEFT JOIN customer p ON p.id = x.customer_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM orders x LEFT JOIN restaurant p ON p.id = x.restaurant_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM orders x LEFT JOIN customer_address p ON p.id = x.address_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM order_item x LEFT JOIN orders p ON p.id = x.order_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM order_item x LEFT JOIN menu p ON p.id = x.menu_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM delivery x LEFT JOIN orders p ON p.id = x.order_id WHERE p.id IS NULL",
		"SELECT COUNT(*) FROM delivery x LEFT JOIN delivery_agent p ON p.id = x.agent_id WHERE x.agent_id IS NOT NULL AND p.id IS NULL",
	}
	for _, q := range fks {
		if n := count(t, db1, q); n != 0 {
			t.Errorf("%d orphans: %s", n, q)
		}
	}
	// Every table has both kinds of rows: never updated and updated.
	for _, tb := range Tables() {
		if count(t, db1, "SELECT COUNT(*) FROM `"+tb+"` WHERE modifiedDate IS NULL") == 0 {
			t.Errorf("%s: no row with modifiedDate NULL", tb)
		}
		if count(t, db1, "SELECT COUNT(*) FROM `"+tb+"` WHERE createdDate IS NULL") != 0 {
			t.Errorf("%s: createdDate NULL", tb)
		}
	}

	// Seeding twice is refused rather than doubling the data.
	if _, err := Fill(ctx, db1, opts); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("second Fill = %v, want ErrNotEmpty", err)
	}
}

func TestFoodAtScale(t *testing.T) {
	ctx := context.Background()
	db, _ := testenv.MySQL(t)
	opts := Options{Rows: map[string]int{Orders: 20000, OrderItem: 50000, Delivery: 15000}, ExportIndex: true}
	if _, err := Food(ctx, db, opts); err != nil {
		t.Fatal(err)
	}
	for tb, n := range opts.Rows {
		if got := count(t, db, "SELECT COUNT(*) FROM `"+tb+"`"); got != n {
			t.Errorf("%s: %d rows, want %d", tb, got, n)
		}
	}
	// The export index column exists, is invisible and equals the COALESCE.
	if n := count(t, db, "SELECT COUNT(*) FROM orders WHERE export_position <> COALESCE(modifiedDate, createdDate)"); n != 0 {
		t.Errorf("%d rows with export_position != COALESCE", n)
	}
	rows, err := db.Query("SELECT * FROM orders LIMIT 1")
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	rows.Close()
	for _, c := range cols {
		if c == "export_position" {
			t.Errorf("export_position is visible to SELECT *")
		}
	}
}

func TestMutateInsertsAndUpdates(t *testing.T) {
	ctx := context.Background()
	db, _ := testenv.MySQL(t)
	if _, err := Food(ctx, db, Options{Seed: 3}); err != nil {
		t.Fatal(err)
	}
	before := map[string]int{}
	for _, tb := range Tables() {
		before[tb] = count(t, db, "SELECT COUNT(*) FROM `"+tb+"`")
	}
	at := time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)
	sum, err := Mutate(ctx, db, MutateOptions{Seed: 1, Inserts: 3, Updates: 2, At: at})
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range sum.Tables {
		after := count(t, db, "SELECT COUNT(*) FROM `"+ts.Table+"`")
		if int64(after-before[ts.Table]) != ts.Inserted {
			t.Errorf("%s: %d -> %d rows, summary says %d inserted", ts.Table, before[ts.Table], after, ts.Inserted)
		}
		if ts.Inserted == 0 && ts.Table != Delivery {
			t.Errorf("%s: nothing inserted", ts.Table)
		}
		if ts.Updated == 0 {
			t.Errorf("%s: nothing updated", ts.Table)
		}
		created := count(t, db, "SELECT COUNT(*) FROM `"+ts.Table+"` WHERE createdDate = ? AND modifiedDate IS NULL", at)
		modified := count(t, db, "SELECT COUNT(*) FROM `"+ts.Table+"` WHERE modifiedDate = ?", at)
		if int64(created) < ts.Inserted-ts.Updated || int64(modified) != ts.Updated {
			t.Errorf("%s: %d new rows at %v (inserted %d), %d modified at it (updated %d)", ts.Table, created, at, ts.Inserted, modified, ts.Updated)
		}
	}
	// A second mutation with the database clock works too and differs.
	if _, err := Mutate(ctx, db, MutateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{Rows: map[string]int{"order": 5}}).Validate(); err == nil {
		t.Error("unknown table accepted")
	}
	if err := (Options{Rows: map[string]int{Orders: -1}}).Validate(); err == nil {
		t.Error("negative count accepted")
	}
	if err := (Options{Rows: map[string]int{Orders: 0}}).Validate(); err != nil {
		t.Error(err)
	}
	c := Options{Rows: map[string]int{Orders: 0, Delivery: 10}}.Counts()
	if c[OrderItem] != 0 || c[Delivery] != 0 {
		t.Errorf("children of an empty orders table: %v", c)
	}
}
