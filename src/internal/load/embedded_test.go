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
// (53, 4)) all land, on MariaDB (both paths) and on the local stack's
// embedded engine, whose storage keys a statement's rows by that text (the
// engine's adapter, localmysql, keeps them apart). The embedded engine
// refuses LOAD DATA LOCAL: the zero Loader upserts there and says why.
func TestAmbiguousCompositeKeysAllLand(t *testing.T) {
	body := csvBody(t, []string{"character_id", "episode_id"},
		[]string{"5", "34"}, []string{"53", "4"}, []string{"1", "23"}, []string{"12", "3"}, []string{"123", "4"}, []string{"1", "234"}, []string{"7", "7"})
	check := func(t *testing.T, db *sql.DB, l *Loader, want Path) {
		ctx := context.Background()
		if err := warehousedb.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		tb := table(t, warehouse.CharacterEpisodes)
		for i := range 2 { // the second time, every row is already there
			o := ref("processed/character_episodes/x.csv", body)
			o.VersionID = string(rune('a' + i))
			res, err := l.Apply(ctx, db, tb, bytes.NewReader(body), o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Path != want || (l.Path == PathAuto) != (res.Fallback != "") {
				t.Errorf("%+v, want the %s path", res, want)
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
		check(t, db, &Loader{}, PathUpsert)
	})
	forPaths(t, func(t *testing.T, path Path) {
		db, _ := testenv.MySQL(t)
		check(t, db, &Loader{Path: path}, path)
	})
}
