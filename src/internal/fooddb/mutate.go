package fooddb

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"
)

// MutateOptions say how much Mutate changes.
type MutateOptions struct {
	Seed    uint64 // combined with the current row counts, so successive mutations differ
	Inserts int    // new rows per table; 0 means 1 to 5
	Updates int    // updated rows per table; 0 means 1 to 5
	// At is the createdDate of new rows and the modifiedDate of updated
	// ones; zero means the database clock, NOW(6), read once.
	At time.Time
}

// Validate rejects row counts for unknown tables.
func (o Options) Validate() error {
	for t, n := range o.Rows {
		if _, ok := columns[t]; !ok {
			return fmt.Errorf("unknown table %q (the food tables are %v)", t, Tables())
		}
		if n < 0 {
			return fmt.Errorf("negative row count %d for %s", n, t)
		}
	}
	if o.Scale < 0 {
		return fmt.Errorf("negative scale %d", o.Scale)
	}
	return nil
}

// updates is, per table, the business change an update makes (besides
// setting modifiedDate); the row is chosen by key.
var updates = map[string]func(r *rand.Rand) (set string, args []any){
	Location: func(r *rand.Rand) (string, []any) { return "zip_code = ?", []any{fmt.Sprintf("9%04d", r.IntN(10000))} },
	Customer: func(r *rand.Rand) (string, []any) {
		return "loyalty_points = loyalty_points + ?, phone = ?", []any{1 + r.IntN(100), optional(r, 3, fmt.Sprintf("+1-555-%04d", r.IntN(10000)))}
	},
	Restaurant: func(r *rand.Rand) (string, []any) {
		return "rating = ?, is_open = NOT is_open", []any{fmt.Sprintf("%d.%d", 1+r.IntN(4), r.IntN(10))}
	},
	DeliveryAgent: func(r *rand.Rand) (string, []any) {
		return "rating = ?, is_active = NOT is_active", []any{optional(r, 4, fmt.Sprintf("%d.%02d", 1+r.IntN(4), r.IntN(100)))}
	},
	CustomerAddress: func(r *rand.Rand) (string, []any) {
		return "delivery_notes = ?", []any{optional(r, 3, pickOf(r, notes))}
	},
	Menu: func(r *rand.Rand) (string, []any) {
		return "price = ?, is_available = NOT is_available", []any{money(199 + r.Int64N(4800))}
	},
	Orders: func(r *rand.Rand) (string, []any) {
		return "status = ?, tip = ?", []any{pickOf(r, statuses), optional(r, 2, money(50+r.Int64N(1500)))}
	},
	OrderItem: func(r *rand.Rand) (string, []any) { return "quantity = quantity + 1", nil },
	Delivery: func(r *rand.Rand) (string, []any) {
		return "status = 'delivered', delivered_time = COALESCE(delivered_time, createdDate), customer_rating = ?", []any{optional(r, 2, 1+r.IntN(5))}
	},
}

// Mutate changes the database as the business would: in every table it
// inserts new rows (createdDate = At, modifiedDate NULL) and updates
// existing ones (modifiedDate = At).
func Mutate(ctx context.Context, db *sql.DB, o MutateOptions) (Summary, error) {
	var sum Summary
	at := o.At
	if at.IsZero() {
		if err := db.QueryRowContext(ctx, "SELECT NOW(6)").Scan(&at); err != nil {
			return sum, fmt.Errorf("reading the database clock: %w", err)
		}
	}
	at = at.UTC().Truncate(time.Microsecond)
	counts := map[string]int{}
	mix := o.Seed
	for _, t := range Tables() {
		var n int64
		q := "SELECT COALESCE(MAX(id), 0) FROM `" + t + "`"
		if t == OrderItem {
			q = "SELECT COUNT(*) FROM order_item"
		}
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return sum, fmt.Errorf("reading the size of %s: %w", t, err)
		}
		counts[t] = int(n)
		mix = mix*31 + uint64(n)
	}
	r := rand.New(rand.NewPCG(mix, 0x6d7574617465)) // "mutate"
	g := &gen{seed: mix, counts: counts, at: at}
	lines := map[int64]int{}
	g.lineOf = func(order int64) int {
		if l, ok := lines[order]; ok {
			lines[order] = l + 1
			return l + 1
		}
		var l int
		_ = db.QueryRowContext(ctx, "SELECT COALESCE(MAX(line_no), 0) FROM order_item WHERE order_id = ?", order).Scan(&l)
		lines[order] = l + 1
		return l + 1
	}
	howMany := func(n int) int {
		if n > 0 {
			return n
		}
		return 1 + r.IntN(5)
	}
	for _, t := range Tables() {
		k := howMany(o.Inserts)
		switch t {
		case OrderItem:
			if counts[Orders] == 0 {
				continue
			}
		case Delivery:
			orders, err := ordersWithoutDelivery(ctx, db, k)
			if err != nil {
				return sum, err
			}
			g.orders, k = orders, len(orders)
			if k == 0 {
				continue
			}
		}
		first := counts[t] + 1
		if t == OrderItem {
			first = 1 // ids are not used: (order_id, line_no) comes from lineOf
		}
		n, err := g.insert(ctx, db, t, first, first+k-1)
		sum.add(t, n, 0)
		if err != nil {
			return sum, err
		}
		if t != OrderItem {
			counts[t] += k
		}
	}
	for _, t := range Tables() {
		k := howMany(o.Updates)
		var upd int64
		for range k {
			set, args := updates[t](r)
			q := "UPDATE `" + t + "` SET " + set + ", modifiedDate = ? WHERE id = ?"
			args = append(args, at.Format("2006-01-02 15:04:05.000000"))
			if t == OrderItem {
				var order int64
				var line int
				err := db.QueryRowContext(ctx, "SELECT order_id, line_no FROM order_item ORDER BY order_id, line_no LIMIT 1 OFFSET ?",
					r.IntN(max(counts[OrderItem], 1))).Scan(&order, &line)
				if err == sql.ErrNoRows {
					break
				}
				if err != nil {
					return sum, fmt.Errorf("choosing an order_item to update: %w", err)
				}
				q = "UPDATE order_item SET " + set + ", modifiedDate = ? WHERE order_id = ? AND line_no = ?"
				args = append(args, order, line)
			} else {
				if counts[t] == 0 {
					break
				}
				args = append(args, parent(r, counts[t]))
			}
			res, err := db.ExecContext(ctx, q, args...)
			if err != nil {
				return sum, fmt.Errorf("updating %s: %w", t, err)
			}
			n, _ := res.RowsAffected()
			upd += n
		}
		sum.add(t, 0, upd)
	}
	return sum, nil
}

func ordersWithoutDelivery(ctx context.Context, db *sql.DB, limit int) ([]int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT o.id FROM orders o LEFT JOIN delivery d ON d.order_id = o.id
		WHERE d.id IS NULL ORDER BY o.id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("finding orders without a delivery: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
