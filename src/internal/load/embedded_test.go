package load

import (
	"bytes"
	"context"
	"database/sql"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/localmysql"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// Link keys whose digits read the same one after the other ((5, 34) and
// (53, 4)) all land, on MariaDB and on the local stack's embedded engine,
// which keys a statement's rows by that text.
func TestAmbiguousCompositeKeysAllLand(t *testing.T) {
	body := csvBody(t, []string{"character_id", "episode_id"},
		[]string{"5", "34"}, []string{"53", "4"}, []string{"1", "23"}, []string{"12", "3"}, []string{"123", "4"}, []string{"1", "234"}, []string{"7", "7"})
	check := func(t *testing.T, db *sql.DB) {
		ctx := context.Background()
		if err := warehousedb.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		tb := table(t, warehouse.CharacterEpisodes)
		for range 2 { // the second time, every row is already there
			if _, err := Apply(ctx, db, tb, bytes.NewReader(body), ref("processed/character_episodes/x.csv", body)); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM character_episodes").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 7 {
				t.Fatalf("%d links, want 7", n)
			}
		}
	}
	t.Run("embedded", func(t *testing.T) {
		my, err := localmysql.Start(context.Background(), localmysql.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer my.Close()
		db, err := sql.Open("mysql", my.DSN())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		check(t, db)
	})
	t.Run("mariadb", func(t *testing.T) {
		db, _ := testenv.MySQL(t)
		check(t, db)
	})
}
