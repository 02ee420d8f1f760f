package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/load"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// benchLoad loads a generated characters CSV (1,000,000 rows; BENCH_LOAD_ROWS
// to change) into a fresh database through load.Apply, the Load function's
// path (LOAD DATA LOCAL INFILE through the driver's reader handler, as
// MariaDB allows it), then again forced onto the fallback path (multi-row
// upserts, what runs where local_infile is refused), and the same file into
// an identical empty table with LOAD DATA LOCAL INFILE through the mariadb
// client, the floor. It checks that the tables hold the same data and
// reports rows/s of each (best of BENCH_LOAD_ROUNDS, default 2, alternating)
// against the floor. BENCH_LOAD_BATCH sets the rows per statement or chunk.
func benchLoad(ctx context.Context, out io.Writer) ([]figure, error) {
	rows, err := envCount("BENCH_LOAD_ROWS", 1_000_000)
	if err != nil {
		return nil, err
	}
	rounds, err := envCount("BENCH_LOAD_ROUNDS", 2)
	if err != nil {
		return nil, err
	}
	batch, err := envCount("BENCH_LOAD_BATCH", 0)
	if err != nil {
		return nil, err
	}
	loader, fallback := &load.Loader{BatchRows: batch}, &load.Loader{Path: load.PathUpsert, BatchRows: batch}
	client, err := exec.LookPath("mariadb")
	if err != nil {
		return nil, errors.New("the mariadb command-line client is needed for the LOAD DATA floor (bash .ci/services.sh installs it)")
	}
	server := os.Getenv("TEST_MYSQL_DSN")
	if server == "" {
		server = "root@tcp(127.0.0.1:3306)/"
	}

	csvPath, size, err := writeCharacters(rows)
	if err != nil {
		return nil, err
	}
	defer os.Remove(csvPath)
	fmt.Fprintf(out, "load: generated %d characters rows, %.1f MB\n", rows, float64(size)/1e6)

	// Alternate the three, best of rounds each, so that a burst of load from
	// elsewhere on the machine does not decide the ratio; each starts on a
	// fresh database with the others' dropped (so none flushes another's
	// dirty pages), and the order turns every round. The first round checks
	// that all three tables hold the same rows.
	table, _ := warehouse.Lookup(warehouse.Characters)
	type contender struct {
		name string
		run  func() (*benchDB, time.Duration, error)
		best time.Duration
	}
	var path load.Path
	apply := func(l *load.Loader) func() (*benchDB, time.Duration, error) {
		return func() (*benchDB, time.Duration, error) {
			d, took, res, err := timeApply(ctx, l, server, csvPath, table)
			if l == loader {
				path = res.Path
				if res.Fallback != "" {
					fmt.Fprintf(out, "load: the Load path fell back to upserts: %s\n", res.Fallback)
				}
			}
			return d, took, err
		}
	}
	all := []*contender{
		{name: "LOAD DATA LOCAL INFILE (mariadb client)", run: func() (*benchDB, time.Duration, error) {
			return timeLoadData(ctx, client, server, csvPath, table)
		}},
		{name: "load.Apply, the Load path", run: apply(loader)},
		{name: "load.Apply, upsert path", run: apply(fallback)},
	}
	sums := map[string]bool{}
	for round := 1; round <= rounds; round++ {
		for i := range all {
			c := all[(i+round-1)%len(all)]
			d, took, err := c.run()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			fmt.Fprintf(out, "load: round %d: %-40s %d rows in %s (%.0f rows/s)\n", round, c.name, rows, took.Round(time.Millisecond), float64(rows)/took.Seconds())
			if c.best == 0 || took < c.best {
				c.best = took
			}
			if round == 1 {
				sum, n, err := warehousedb.Checksum(ctx, d.db, table, warehousedb.DumpData)
				if err != nil || n != int64(rows) {
					d.drop()
					return nil, fmt.Errorf("%s: %d rows, want %d (%v)", c.name, n, rows, err)
				}
				sums[sum] = true
			}
			d.drop()
		}
	}
	if len(sums) != 1 {
		return nil, fmt.Errorf("the tables differ: %d different checksums of %d rows", len(sums), rows)
	}
	fmt.Fprintf(out, "load: the three tables hold the same %d rows\n", rows)
	bestFloor, best, bestFallback := all[0].best, all[1].best, all[2].best
	floorRate := float64(rows) / bestFloor.Seconds()
	ourRate, fallbackRate := float64(rows)/best.Seconds(), float64(rows)/bestFallback.Seconds()
	return []figure{{
		Section: "load", Name: fmt.Sprintf("load.Apply (%s path), %d-row characters CSV", path, rows),
		Value: ourRate, Unit: "rows/s", Baseline: floorRate, BaseName: "LOAD DATA LOCAL INFILE",
		Ratio: ourRate / floorRate, Target: ">= 1.0x", Met: met(ourRate/floorRate >= 1.0),
	}, {
		Section: "load", Name: fmt.Sprintf("load.Apply (%s path, where local_infile is refused), %d rows", load.PathUpsert, rows),
		Value: fallbackRate, Unit: "rows/s", Baseline: floorRate, BaseName: "LOAD DATA LOCAL INFILE",
		Ratio: fallbackRate / floorRate,
	}}, nil
}

// timeApply loads the CSV at path into a fresh database with load.Apply, on
// a stream that cannot seek but can be opened again, like the S3 body the
// Load function hands it.
func timeApply(ctx context.Context, loader *load.Loader, server, path string, table warehouse.Table) (*benchDB, time.Duration, load.Result, error) {
	d, err := freshDatabase(ctx, server, "bench_load_")
	if err != nil {
		return nil, 0, load.Result{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		d.drop()
		return nil, 0, load.Result{}, err
	}
	defer f.Close()
	start := time.Now()
	res, err := loader.Apply(ctx, d.db, table, &fileBody{Reader: f, path: path}, load.ObjectRef{Bucket: "bench", Key: "processed/characters/bench.csv", ETag: "bench"})
	took := time.Since(start)
	if err != nil {
		d.drop()
		return nil, 0, res, fmt.Errorf("load.Apply: %w", err)
	}
	return d, took, res, nil
}

// fileBody reads a file as load.Apply reads an S3 body: no seeking, and
// opened again for a rerun.
type fileBody struct {
	io.Reader
	path string
}

func (b *fileBody) Reopen(context.Context) (io.ReadCloser, error) { return os.Open(b.path) }

// timeLoadData loads the CSV at path into a fresh database with LOAD DATA.
func timeLoadData(ctx context.Context, client, server, path string, table warehouse.Table) (*benchDB, time.Duration, error) {
	d, err := freshDatabase(ctx, server, "bench_floor_")
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	if err := loadData(ctx, client, d, path, table); err != nil {
		d.drop()
		return nil, 0, err
	}
	return d, time.Since(start), nil
}

// writeCharacters writes a processed characters CSV of n rows to a temporary
// file: the warehouse header, tablecsv encoding, text with quotes, commas,
// newlines and ’ ζ Á, empty strings and NULLs. It avoids the two values LOAD
// DATA cannot read the same way (see loadData): the unquoted word NULL and
// the quoted text \N.
func writeCharacters(n int) (string, int64, error) {
	f, err := os.CreateTemp("", "bench-characters-*.csv")
	if err != nil {
		return "", 0, err
	}
	table, _ := warehouse.Lookup(warehouse.Characters)
	bw := bufio.NewWriterSize(f, 1<<20)
	w := tablecsv.NewWriter(bw)
	fail := func(err error) (string, int64, error) {
		f.Close()
		os.Remove(f.Name())
		return "", 0, err
	}
	if err := w.WriteHeader(table.Header()); err != nil {
		return fail(err)
	}
	created := time.Date(2017, 11, 4, 18, 48, 46, 250e6, time.UTC)
	fetched := warehouse.FormatTime(time.Date(2026, 5, 1, 6, 0, 0, 0, time.UTC))
	statuses := []string{"Alive", "Dead", "unknown"}
	species := []string{"Human", "Alien", "Humanoid", "Mythological Creature", "Robot"}
	types := []string{"", "", "", "Parasite", "Fish-Person", `Cronenberg, "the" one`, "Gazorpian"}
	genders := []string{"Male", "Female", "Genderless", "unknown"}
	row := make([]tablecsv.Field, len(table.Columns))
	for id := 1; id <= n; id++ {
		name := "Character " + strconv.Itoa(id)
		switch id % 10 {
		case 3:
			name += " ’ ζ Á"
		case 7:
			name = `"Rick ` + strconv.Itoa(id) + `", the other one`
		case 9:
			name += "\nsecond line"
		}
		origin, originName := tablecsv.Null, "unknown"
		if id%4 != 0 {
			o := id%126 + 1
			origin, originName = tablecsv.Text(strconv.Itoa(o)), "Location "+strconv.Itoa(o)
		}
		location, locationName := tablecsv.Null, ""
		if id%6 != 0 {
			l := (id*7)%126 + 1
			location, locationName = tablecsv.Text(strconv.Itoa(l)), "Location "+strconv.Itoa(l)
		}
		row[0] = tablecsv.Text(strconv.Itoa(id))
		row[1] = tablecsv.Text(name)
		row[2] = tablecsv.Text(statuses[id%len(statuses)])
		row[3] = tablecsv.Text(species[id%len(species)])
		row[4] = tablecsv.Text(types[id%len(types)])
		row[5] = tablecsv.Text(genders[id%len(genders)])
		row[6], row[7], row[8], row[9] = origin, tablecsv.Text(originName), location, tablecsv.Text(locationName)
		row[10] = tablecsv.Text("https://rickandmortyapi.com/api/character/avatar/" + strconv.Itoa(id) + ".jpeg")
		row[11] = tablecsv.Text("https://rickandmortyapi.com/api/character/" + strconv.Itoa(id))
		row[12] = tablecsv.Text(warehouse.FormatTime(created.Add(time.Duration(id) * 1237 * time.Millisecond)))
		row[13] = tablecsv.Text(fetched)
		if err := w.Write(row); err != nil {
			return fail(err)
		}
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	return f.Name(), st.Size(), nil
}

type benchDB struct {
	name  string
	dc    *mysql.Config
	db    *sql.DB
	admin *sql.DB
}

// freshDatabase creates a database named prefix+random on the server and
// migrates it.
func freshDatabase(ctx context.Context, server, prefix string) (*benchDB, error) {
	dc, err := mysqldb.NormalizeDSN(server)
	if err != nil {
		return nil, err
	}
	adminConn, err := mysql.NewConnector(dc)
	if err != nil {
		return nil, err
	}
	admin := sql.OpenDB(adminConn)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		admin.Close()
		return nil, fmt.Errorf("creating database %s (is MariaDB running? bash .ci/services.sh): %w", name, err)
	}
	dbc := dc.Clone()
	dbc.DBName = name
	conn, err := mysql.NewConnector(dbc)
	if err != nil {
		return nil, err
	}
	d := &benchDB{name: name, dc: dbc, db: sql.OpenDB(conn), admin: admin}
	if err := warehousedb.Migrate(ctx, d.db); err != nil {
		d.drop()
		return nil, err
	}
	return d, nil
}

func (d *benchDB) drop() {
	d.db.Close()
	_, _ = d.admin.Exec("DROP DATABASE IF EXISTS `" + d.name + "`")
	d.admin.Close()
}

// loadData runs LOAD DATA LOCAL INFILE through the mariadb client.
//
// Reading our CSV the same way: fields are comma separated and optionally
// enclosed in double quotes, a doubled quote inside being one quote (as in
// RFC 4180); ESCAPED BY ” because our format has no backslash escapes (with
// the default '\' a backslash in text would be eaten). With no escape
// character LOAD DATA no longer reads \N as NULL, so the nullable columns go
// through NULLIF(@v, '\N'); it would also read the unquoted word NULL as NULL
// and could not tell the quoted text "\N" from NULL, which the generated data
// avoids. Datetimes are parsed from our layout with STR_TO_DATE, and
// createdDate is set as the upsert sets it.
func loadData(ctx context.Context, client string, d *benchDB, path string, t warehouse.Table) error {
	var cols, sets []string
	for _, c := range t.Columns {
		v := "@" + c.Name
		switch {
		case c.Kind == warehouse.DateTime:
			cols = append(cols, v)
			sets = append(sets, fmt.Sprintf("%s = STR_TO_DATE(%s, '%%Y-%%m-%%dT%%H:%%i:%%s.%%fZ')", warehousedb.Quote(c.Name), v))
		case c.Nullable:
			cols = append(cols, v)
			sets = append(sets, fmt.Sprintf("%s = NULLIF(%s, '\\\\N')", warehousedb.Quote(c.Name), v))
		default:
			cols = append(cols, warehousedb.Quote(c.Name))
		}
	}
	sets = append(sets, warehousedb.Quote(warehouse.CreatedDate)+" = UTC_TIMESTAMP(6)")
	stmt := fmt.Sprintf(`LOAD DATA LOCAL INFILE '%s' INTO TABLE %s CHARACTER SET utf8mb4 `+
		`FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' ESCAPED BY '' LINES TERMINATED BY '\n' IGNORE 1 LINES (%s) SET %s`,
		strings.ReplaceAll(path, "'", "''"), warehousedb.Quote(t.Name), strings.Join(cols, ", "), strings.Join(sets, ", "))
	host, port, _ := strings.Cut(d.dc.Addr, ":")
	args := []string{"--local-infile=1", "--protocol=TCP", "-h", host, "-u", d.dc.User, "--default-character-set=utf8mb4", "-D", d.name, "-e", stmt}
	if port != "" {
		args = append(args, "-P", port)
	}
	cmd := exec.CommandContext(ctx, client, args...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+d.dc.Passwd)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("LOAD DATA through %s: %v: %s", client, err, strings.TrimSpace(string(msg)))
	}
	return nil
}
