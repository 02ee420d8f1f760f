// Package fooddb creates the food-delivery operational database the exporter
// was first written for (food_test_db: location, customer, restaurant,
// delivery_agent, customer_address, menu, orders, order_item, delivery) and
// fills it with deterministic synthetic data, at any scale, and mutates it
// as the business would (new rows, updated rows with modifiedDate set).
//
// The same Options always produce the same rows: generation is seeded per
// table, so a table's content does not depend on the size of the others.
package fooddb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Table names, parents first.
const (
	Location        = "location"
	Customer        = "customer"
	Restaurant      = "restaurant"
	DeliveryAgent   = "delivery_agent"
	CustomerAddress = "customer_address"
	Menu            = "menu"
	Orders          = "orders"
	OrderItem       = "order_item"
	Delivery        = "delivery"
)

// Tables lists the nine tables, parents before children.
func Tables() []string {
	return []string{Location, Customer, Restaurant, DeliveryAgent, CustomerAddress, Menu, Orders, OrderItem, Delivery}
}

// DefaultStart is the createdDate of the first generated rows.
var DefaultStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Options say how much to generate.
type Options struct {
	Seed  uint64         // 0 means 1
	Scale int            // multiplies the default counts (5 to 35 rows per table); 0 means 1
	Rows  map[string]int // exact row counts per table, winning over Scale
	Start time.Time      // createdDate of the first rows; zero means DefaultStart
	// ExportIndex adds to every table an invisible generated column
	// export_position = COALESCE(modifiedDate, createdDate) and an index on
	// it, which the exporter uses for its keyset queries.
	ExportIndex bool
}

func (o Options) seed() uint64 {
	if o.Seed == 0 {
		return 1
	}
	return o.Seed
}

// Counts returns the number of rows Fill generates for each table.
func (o Options) Counts() map[string]int {
	scale := max(o.Scale, 1)
	r := rand.New(rand.NewPCG(o.seed(), 0x636f756e7473)) // "counts"
	out := map[string]int{}
	for _, t := range Tables() {
		n := (5 + r.IntN(31)) * scale
		if v, ok := o.Rows[t]; ok {
			n = v
		}
		out[t] = n
	}
	// Every child needs a parent to point at.
	for _, t := range []string{Location, Customer, Restaurant, CustomerAddress, Menu} {
		out[t] = max(out[t], 1)
	}
	out[Delivery] = min(out[Delivery], out[Orders])
	if out[Orders] == 0 {
		out[OrderItem] = 0
	}
	return out
}

// Summary is what a seeding or mutation did, per table.
type Summary struct {
	Tables []TableSummary `json:"tables"`
}

// TableSummary counts one table's changes.
type TableSummary struct {
	Table    string `json:"table"`
	Inserted int64  `json:"inserted"`
	Updated  int64  `json:"updated"`
}

func (s *Summary) add(t string, ins, upd int64) {
	for i := range s.Tables {
		if s.Tables[i].Table == t {
			s.Tables[i].Inserted += ins
			s.Tables[i].Updated += upd
			return
		}
	}
	s.Tables = append(s.Tables, TableSummary{Table: t, Inserted: ins, Updated: upd})
}

// execer is what the seed needs from a database handle.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// CreateSchema creates the nine tables when they do not exist (and, with
// exportIndex, the export_position column and index).
func CreateSchema(ctx context.Context, db execer, exportIndex bool) error {
	for i, stmt := range ddl {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("creating table %s: %w", Tables()[i], err)
		}
	}
	if exportIndex {
		for _, t := range Tables() {
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.COLUMNS
				WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'export_position'`, t).Scan(&n); err != nil {
				return fmt.Errorf("checking %s.export_position: %w", t, err)
			}
			if n > 0 {
				continue
			}
			if _, err := db.ExecContext(ctx, exportIndexDDL(t)); err != nil {
				return fmt.Errorf("adding the export index to %s: %w", t, err)
			}
		}
	}
	return nil
}

// DropSchema drops the nine tables, children first.
func DropSchema(ctx context.Context, db execer) error {
	tables := Tables()
	slices.Reverse(tables)
	for _, t := range tables {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS `"+t+"`"); err != nil {
			return fmt.Errorf("dropping table %s: %w", t, err)
		}
	}
	return nil
}

// ErrNotEmpty is returned by Fill when a table already holds rows.
var ErrNotEmpty = errors.New("the food tables already hold rows (use mutate, or reset them first)")

// Food creates the schema and fills it: the whole of `pipeline seed food`.
func Food(ctx context.Context, db *sql.DB, o Options) (Summary, error) {
	if err := CreateSchema(ctx, db, o.ExportIndex); err != nil {
		return Summary{}, err
	}
	return Fill(ctx, db, o)
}

// Fill inserts the generated rows into the empty tables, with multi-row
// INSERTs on one connection whose foreign-key checks are off (the data is
// consistent by construction; checking a million child rows one by one
// would only slow the seeding down).
func Fill(ctx context.Context, db *sql.DB, o Options) (Summary, error) {
	var sum Summary
	for _, t := range Tables() {
		var any int
		err := db.QueryRowContext(ctx, "SELECT EXISTS(SELECT 1 FROM `"+t+"`)").Scan(&any)
		if err != nil {
			return sum, fmt.Errorf("checking table %s: %w", t, err)
		}
		if any != 0 {
			return sum, fmt.Errorf("table %s: %w", t, ErrNotEmpty)
		}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return sum, fmt.Errorf("opening a connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION foreign_key_checks = 0, unique_checks = 0"); err != nil {
		return sum, fmt.Errorf("preparing the session: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SET SESSION foreign_key_checks = 1, unique_checks = 1") //nolint:errcheck // the connection is closed next

	counts := o.Counts()
	start := o.Start
	if start.IsZero() {
		start = DefaultStart
	}
	g := &gen{seed: o.seed(), counts: counts, start: start.UTC()}
	for _, t := range Tables() {
		n, err := g.insert(ctx, conn, t, 1, counts[t])
		sum.add(t, n, 0)
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// gen generates rows. Row i of a table (1-based) is a pure function of the
// seed, the table, i and the parent counts.
type gen struct {
	seed   uint64
	counts map[string]int // parent ids are 1..counts[parent]
	start  time.Time
	// at, when set, is the createdDate of every generated row (Mutate);
	// otherwise createdDate follows from start and i.
	at     time.Time
	lineOf func(orderID int64) int // next line_no of an existing order (Mutate)
	orders []int64                 // order ids without a delivery (Mutate)
}

func (g *gen) rng(table string, i int64) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(table))
	return rand.New(rand.NewPCG(g.seed^h.Sum64(), uint64(i)))
}

// columns lists each table's inserted columns.
var columns = map[string][]string{
	Location:        {"id", "city", "state", "zip_code", "latitude", "longitude", "createdDate", "modifiedDate"},
	Customer:        {"id", "first_name", "last_name", "email", "phone", "date_of_birth", "loyalty_points", "is_active", "createdDate", "modifiedDate"},
	Restaurant:      {"id", "name", "cuisine", "location_id", "rating", "avg_prep_minutes", "opened_on", "is_open", "createdDate", "modifiedDate"},
	DeliveryAgent:   {"id", "first_name", "last_name", "phone", "vehicle_type", "location_id", "rating", "hired_on", "is_active", "createdDate", "modifiedDate"},
	CustomerAddress: {"id", "customer_id", "location_id", "label", "street", "apartment", "delivery_notes", "is_default", "createdDate", "modifiedDate"},
	Menu:            {"id", "restaurant_id", "item_name", "description", "category", "price", "calories", "is_vegetarian", "is_available", "createdDate", "modifiedDate"},
	Orders:          {"id", "customer_id", "restaurant_id", "address_id", "order_time", "status", "payment_method", "subtotal", "delivery_fee", "tip", "total", "notes", "createdDate", "modifiedDate"},
	OrderItem:       {"order_id", "line_no", "menu_id", "quantity", "unit_price", "special_request", "createdDate", "modifiedDate"},
	Delivery:        {"id", "order_id", "agent_id", "status", "pickup_time", "delivered_time", "distance_km", "customer_rating", "createdDate", "modifiedDate"},
}

// insert generates rows first..last of table t and inserts them in
// multi-row statements.
func (g *gen) insert(ctx context.Context, db execer, t string, first, last int) (int64, error) {
	if last < first {
		return 0, nil
	}
	cols := columns[t]
	perStmt := max(1, 8000/len(cols))
	head := "INSERT INTO `" + t + "` (`" + strings.Join(cols, "`, `") + "`) VALUES "
	tuple := "(" + strings.Repeat("?, ", len(cols)-1) + "?)"
	var (
		sb       strings.Builder
		args     []any
		inserted int64
	)
	flush := func(rows int) error {
		if rows == 0 {
			return nil
		}
		if _, err := db.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("inserting into %s: %w", t, err)
		}
		inserted += int64(rows)
		sb.Reset()
		args = args[:0]
		return nil
	}
	rows := 0
	for i := first; i <= last; i++ {
		if rows == 0 {
			sb.WriteString(head)
		} else {
			sb.WriteString(", ")
		}
		sb.WriteString(tuple)
		args = g.row(args, t, int64(i))
		rows++
		if rows == perStmt {
			if err := flush(rows); err != nil {
				return inserted, err
			}
			rows = 0
		}
	}
	return inserted, flush(rows)
}

var (
	firstNames = []string{"Ana", "Ben", "Chloé", "Dmitri", "Emeka", "Fatima", "Giulia", "Hiro", "Ines", "Jamal", "Kasia", "Liam", "María", "Noor", "Oskar", "Priya", "Quinn", "Rosa", "Søren", "Tariq", "Uma", "Viktor", "Wen", "Yara", "Zoë"}
	lastNames  = []string{"Abara", "Berg", "Costa", "D'Angelo", "Eriksen", "Fischer", "García", "Haddad", "Ito", "Jensen", "Kowalski", "López", "Müller", "Nakamura", "O'Brien", "Petrov", "Quispe", "Rossi", "Schmidt", "Tanaka", "Ueda", "Varga", "Wójcik", "Xu", "Yilmaz"}
	cities     = []struct{ city, state, zip string }{{"Austin", "TX", "787"}, {"Boston", "MA", "021"}, {"Chicago", "IL", "606"}, {"Denver", "CO", "802"}, {"Miami", "FL", "331"}, {"Portland", "OR", "972"}, {"Seattle", "WA", "981"}, {"San José", "CA", "951"}}
	cuisines   = []string{"Italian", "Mexican", "Thai", "Indian", "Japanese", "Ethiopian", "Lebanese", "American", "Vietnamese", "Greek"}
	dishes     = []string{"Margherita Pizza", "Pad Thai", "Chicken Tikka", "Ramen", "Falafel Wrap", "Burrito", "Pho", "Moussaka", "Injera Platter", "Cheeseburger", "Green Curry", "Sushi Set"}
	categories = []string{"main", "starter", "dessert", "drink", "side"}
	streets    = []string{"Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Lakeview Blvd", "Hillcrest Way"}
	labels     = []string{"home", "work", "other"}
	notes      = []string{"Ring twice", "Leave at the door, please", "Gate code 4321, then left", `Say "hi" to the dog`, "Call on arrival;\nthe bell is broken", `\N is my apartment's name`, `\N`, "", "Beware: =SUM(A1:A9)", "Ünïcödé ✓ 配達"}
	statuses   = []string{"placed", "preparing", "picked_up", "delivered", "cancelled"}
	payments   = []string{"card", "cash", "wallet", "voucher"}
	vehicles   = []string{"bicycle", "scooter", "motorbike", "car"}
	deliveries = []string{"pending", "assigned", "picked_up", "delivered", "failed"}
)

func pickOf[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// money renders cents as a DECIMAL literal.
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// parent returns a parent id in 1..n.
func parent(r *rand.Rand, n int) int64 { return 1 + r.Int64N(int64(max(n, 1))) }

// stamps returns createdDate and modifiedDate of row i: rows are created
// about every 37 seconds after start (with microseconds), and about a third
// of them were updated later (the rest have modifiedDate NULL).
func (g *gen) stamps(r *rand.Rand, i int64) (created time.Time, modified any) {
	if !g.at.IsZero() {
		return g.at, nil
	}
	created = g.start.Add(time.Duration(i)*37*time.Second + time.Duration(r.IntN(1_000_000))*time.Microsecond)
	if r.IntN(3) == 0 {
		return created, created.Add(time.Duration(1+r.IntN(72*3600)) * time.Second).Add(time.Duration(r.IntN(1_000_000)) * time.Microsecond)
	}
	return created, nil
}

func dt(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000000") }

func optional[T any](r *rand.Rand, oneIn int, v T) any {
	if r.IntN(oneIn) == 0 {
		return nil
	}
	return v
}

// row appends the values of row i of table t to args.
func (g *gen) row(args []any, t string, i int64) []any {
	r := g.rng(t, i)
	created, modified := g.stamps(r, i)
	if m, ok := modified.(time.Time); ok {
		modified = dt(m)
	}
	c := g.counts
	switch t {
	case Location:
		city := pickOf(r, cities)
		return append(args, i, city.city, city.state, fmt.Sprintf("%s%02d", city.zip, r.IntN(100)),
			fmt.Sprintf("%.6f", 25+r.Float64()*23), fmt.Sprintf("%.6f", -122+r.Float64()*51), dt(created), modified)
	case Customer:
		first, last := pickOf(r, firstNames), pickOf(r, lastNames)
		email := fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(first), strings.ToLower(strings.ReplaceAll(last, "'", "")), i)
		dob := optional(r, 4, time.Date(1950+r.IntN(55), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02"))
		return append(args, i, first, last, email, optional(r, 5, fmt.Sprintf("+1-555-%04d", r.IntN(10000))), dob,
			r.IntN(5000), r.IntN(10) != 0, dt(created), modified)
	case Restaurant:
		cuisine := pickOf(r, cuisines)
		return append(args, i, fmt.Sprintf("%s %s Kitchen #%d", pickOf(r, lastNames), cuisine, i), cuisine, parent(r, c[Location]),
			optional(r, 6, fmt.Sprintf("%d.%d", 1+r.IntN(4), r.IntN(10))), 5+r.IntN(40),
			time.Date(2005+r.IntN(18), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02"),
			r.IntN(8) != 0, dt(created), modified)
	case DeliveryAgent:
		return append(args, i, pickOf(r, firstNames), pickOf(r, lastNames), fmt.Sprintf("+1-555-%04d", r.IntN(10000)),
			pickOf(r, vehicles), parent(r, c[Location]), optional(r, 5, fmt.Sprintf("%d.%02d", 1+r.IntN(4), r.IntN(100))),
			time.Date(2018+r.IntN(6), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02"),
			r.IntN(6) != 0, dt(created), modified)
	case CustomerAddress:
		return append(args, i, parent(r, c[Customer]), parent(r, c[Location]), pickOf(r, labels),
			fmt.Sprintf("%d %s", 1+r.IntN(9999), pickOf(r, streets)), optional(r, 2, fmt.Sprintf("Apt %d%c", 1+r.IntN(30), 'A'+r.IntN(6))),
			optional(r, 3, pickOf(r, notes)), r.IntN(3) == 0, dt(created), modified)
	case Menu:
		dish := pickOf(r, dishes)
		return append(args, i, parent(r, c[Restaurant]), dish, optional(r, 3, "House "+strings.ToLower(dish)+", made fresh, serves 1"),
			pickOf(r, categories), money(199+r.Int64N(4800)), optional(r, 4, 150+r.IntN(1200)), r.IntN(3) == 0, r.IntN(10) != 0,
			dt(created), modified)
	case Orders:
		sub := 500 + r.Int64N(15000)
		fee := 99 + r.Int64N(600)
		tip := optional(r, 3, 50+r.Int64N(1500))
		total := sub + fee
		if t, ok := tip.(int64); ok {
			total += t
			tip = money(t)
		}
		return append(args, i, parent(r, c[Customer]), parent(r, c[Restaurant]), parent(r, c[CustomerAddress]),
			created.Add(-time.Duration(r.IntN(600))*time.Second).Truncate(time.Second).Format("2006-01-02 15:04:05"),
			pickOf(r, statuses), pickOf(r, payments), money(sub), money(fee), tip, money(total),
			optional(r, 4, pickOf(r, notes)), dt(created), modified)
	case OrderItem:
		var order int64
		var line int
		switch {
		case g.lineOf != nil:
			order = parent(r, c[Orders])
			line = g.lineOf(order)
		default:
			n := int64(max(c[Orders], 1))
			order, line = 1+(i-1)%n, 1+int((i-1)/n)
		}
		return append(args, order, line, parent(r, c[Menu]), 1+r.IntN(4), money(199+r.Int64N(4800)),
			optional(r, 3, pickOf(r, []string{"no onions", "extra spicy", "gluten-free, please", `"well done"`})), dt(created), modified)
	case Delivery:
		order := i
		if g.orders != nil {
			order = g.orders[0]
			g.orders = g.orders[1:]
		}
		status := pickOf(r, deliveries)
		var pickup, delivered, dist, rating any
		if status == "picked_up" || status == "delivered" {
			p := created.Add(time.Duration(5+r.IntN(40)) * time.Minute).Add(time.Duration(r.IntN(1000)) * time.Millisecond)
			pickup = p.Format("2006-01-02 15:04:05.000")
			dist = fmt.Sprintf("%d.%02d", r.IntN(25), r.IntN(100))
			if status == "delivered" {
				delivered = p.Add(time.Duration(5+r.IntN(50)) * time.Minute).Format("2006-01-02 15:04:05.000")
				rating = optional(r, 2, 1+r.IntN(5))
			}
		}
		agent := optional(r, 5, parent(r, c[DeliveryAgent]))
		if c[DeliveryAgent] == 0 {
			agent = nil
		}
		return append(args, i, order, agent, status, pickup, delivered, dist, rating, dt(created), modified)
	}
	panic("seed: unknown table " + t)
}
