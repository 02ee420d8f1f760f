package localmysql

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dolthub/go-mysql-server/memory"
	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/expression"
)

// provider adapts go-mysql-server's in-memory storage (v0.20.0) to what the
// pipeline asks of it, in two ways, so that the SQL sent to the local engine
// is the SQL sent to RDS:
//
//   - Plain secondary indexes (KEY, INDEX) are declared, not stored. The
//     memory table keeps each one as an unsorted slice that every statement
//     re-sorts, fixing every index entry's row location for each swap of its
//     own sort (memory/table.go partitionssort.Swap): loading the real API's
//     data spent 9 of 10 seconds there. A declared index is listed wherever
//     MySQL lists indexes (SHOW CREATE TABLE, SHOW INDEX,
//     information_schema.STATISTICS, the saved snapshot), so migrations,
//     the exporter's index checks and Save see the schema as written; the
//     planner never uses it (CanSupport is false), so queries scan, which at
//     the local stack's size costs less than keeping the index. UNIQUE,
//     FULLTEXT, SPATIAL and VECTOR indexes are stored and enforced as before.
//   - Rows of a table with a composite primary key are keyed exactly. The
//     memory table keys the rows one statement edits by their key values
//     written one after the other with no separator
//     (memory/table_editor.go getRowKey), so (5, 34) and (53, 4) are the
//     same row to it and one of them is silently lost. collisionGuard
//     applies the statement's edits so far before an edit whose key would
//     collide with an earlier one.
type provider struct {
	*memory.DbProvider

	mu       sync.Mutex
	declared map[tableKey][]gms.IndexDef
	guards   map[guardKey]*collisionGuard
}

type tableKey struct{ db, table string }

type guardKey struct {
	session uint32
	table   tableKey
}

func newProvider(pro *memory.DbProvider) *provider {
	return &provider{DbProvider: pro, declared: map[tableKey][]gms.IndexDef{}, guards: map[guardKey]*collisionGuard{}}
}

func keyOf(db, table string) tableKey {
	return tableKey{strings.ToLower(db), strings.ToLower(table)}
}

// Database returns the named database, adapted.
func (p *provider) Database(ctx *gms.Context, name string) (gms.Database, error) {
	db, err := p.DbProvider.Database(ctx, name)
	if err != nil {
		return nil, err
	}
	return p.wrap(db), nil
}

// AllDatabases returns every database, adapted.
func (p *provider) AllDatabases(ctx *gms.Context) []gms.Database {
	all := p.DbProvider.AllDatabases(ctx)
	for i, db := range all {
		all[i] = p.wrap(db)
	}
	return all
}

// DropDatabase drops a database and forgets its declared indexes.
func (p *provider) DropDatabase(ctx *gms.Context, name string) error {
	if err := p.DbProvider.DropDatabase(ctx, name); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.declared {
		if k.db == strings.ToLower(name) {
			delete(p.declared, k)
		}
	}
	return nil
}

func (p *provider) wrap(db gms.Database) gms.Database {
	if mdb, ok := db.(*memory.Database); ok {
		return &database{Database: mdb, p: p}
	}
	return db
}

// database is a memory database whose tables are adapted.
type database struct {
	*memory.Database
	p *provider
}

// GetTableInsensitive returns the named table, adapted.
func (d *database) GetTableInsensitive(ctx *gms.Context, name string) (gms.Table, bool, error) {
	t, ok, err := d.Database.GetTableInsensitive(ctx, name)
	if err != nil || !ok {
		return t, ok, err
	}
	if mt, isMem := t.(*memory.Table); isMem {
		return &table{Table: mt, p: d.p}, true, nil
	}
	return t, true, nil
}

// DropTable drops a table and forgets its declared indexes.
func (d *database) DropTable(ctx *gms.Context, name string) error {
	if err := d.Database.DropTable(ctx, name); err != nil {
		return err
	}
	d.p.mu.Lock()
	delete(d.p.declared, keyOf(d.Name(), name))
	d.p.mu.Unlock()
	return nil
}

// RenameTable renames a table with its declared indexes.
func (d *database) RenameTable(ctx *gms.Context, oldName, newName string) error {
	if err := d.Database.RenameTable(ctx, oldName, newName); err != nil {
		return err
	}
	d.p.mu.Lock()
	defer d.p.mu.Unlock()
	if defs, ok := d.p.declared[keyOf(d.Name(), oldName)]; ok {
		delete(d.p.declared, keyOf(d.Name(), oldName))
		d.p.declared[keyOf(d.Name(), newName)] = defs
	}
	return nil
}

// table is a memory table with declared secondary indexes and exactly keyed
// edits.
type table struct {
	*memory.Table
	p *provider
}

func (t *table) key() tableKey { return keyOf(t.Database(), t.Name()) }

// declaredOnly reports whether an index of this kind is declared rather than stored.
func declaredOnly(def gms.IndexDef) bool {
	return def.Constraint == gms.IndexConstraint_None && !def.IsPrimary()
}

// CreateIndex declares a plain secondary index; any other kind is stored.
func (t *table) CreateIndex(ctx *gms.Context, def gms.IndexDef) error {
	if !declaredOnly(def) {
		return t.Table.CreateIndex(ctx, def)
	}
	existing, err := t.GetIndexes(ctx)
	if err != nil {
		return err
	}
	if def.Name == "" {
		for _, c := range def.Columns {
			def.Name += c.Name + "_"
		}
	}
	for _, idx := range existing {
		if strings.EqualFold(idx.ID(), def.Name) {
			return gms.ErrDuplicateKey.New(def.Name)
		}
	}
	sch := t.Schema()
	for _, c := range def.Columns {
		if sch.IndexOfColName(c.Name) < 0 {
			return gms.ErrKeyColumnDoesNotExist.New(c.Name)
		}
	}
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	t.p.declared[t.key()] = append(t.p.declared[t.key()], def)
	return nil
}

// ShouldBuildIndex says a declared index has nothing to build.
func (t *table) ShouldBuildIndex(ctx *gms.Context, def gms.IndexDef) (bool, error) {
	if declaredOnly(def) {
		return false, nil
	}
	return t.Table.ShouldBuildIndex(ctx, def)
}

// DropIndex drops a declared or a stored index.
func (t *table) DropIndex(ctx *gms.Context, name string) error {
	t.p.mu.Lock()
	defs := t.p.declared[t.key()]
	for i, d := range defs {
		if strings.EqualFold(d.Name, name) {
			t.p.declared[t.key()] = append(defs[:i:i], defs[i+1:]...)
			t.p.mu.Unlock()
			return nil
		}
	}
	t.p.mu.Unlock()
	return t.Table.DropIndex(ctx, name)
}

// RenameIndex renames a declared or a stored index.
func (t *table) RenameIndex(ctx *gms.Context, from, to string) error {
	t.p.mu.Lock()
	for i, d := range t.p.declared[t.key()] {
		if strings.EqualFold(d.Name, from) {
			t.p.declared[t.key()][i].Name = to
			t.p.mu.Unlock()
			return nil
		}
	}
	t.p.mu.Unlock()
	return t.Table.RenameIndex(ctx, from, to)
}

// GetIndexes returns the stored indexes, then the declared ones.
func (t *table) GetIndexes(ctx *gms.Context) ([]gms.Index, error) {
	stored, err := t.Table.GetIndexes(ctx)
	if err != nil {
		return nil, err
	}
	t.p.mu.Lock()
	defs := append([]gms.IndexDef(nil), t.p.declared[t.key()]...)
	t.p.mu.Unlock()
	sch := t.Schema()
	for _, def := range defs {
		idx := &memory.Index{DB: t.Database(), Tbl: t.Table, TableName: t.Name(), Name: def.Name, CommentStr: def.Comment}
		var prefix bool
		for _, c := range def.Columns {
			i := sch.IndexOfColName(c.Name)
			if i < 0 {
				continue // the column was dropped
			}
			col := sch[i]
			idx.Exprs = append(idx.Exprs, expression.NewGetFieldWithTable(i, 0, col.Type, t.Database(), t.Name(), col.Name, col.Nullable))
			idx.PrefixLens = append(idx.PrefixLens, uint16(c.Length))
			prefix = prefix || c.Length > 0
		}
		if !prefix {
			idx.PrefixLens = nil
		}
		if len(idx.Exprs) > 0 {
			stored = append(stored, declaredIndex{idx})
		}
	}
	return stored, nil
}

// declaredIndex is an index that is listed but never used to read: the
// planner scans instead.
type declaredIndex struct{ *memory.Index }

func (declaredIndex) CanSupport(*gms.Context, ...gms.Range) bool { return false }
func (declaredIndex) CanSupportOrderBy(gms.Expression) bool      { return false }

// Inserter, Updater, Replacer and Deleter return the memory table's editor,
// guarded against key collisions when the primary key is composite.
func (t *table) Inserter(ctx *gms.Context) gms.RowInserter {
	return t.editor(ctx, t.Table.Inserter(ctx)).(gms.RowInserter)
}

func (t *table) Updater(ctx *gms.Context) gms.RowUpdater {
	return t.editor(ctx, t.Table.Updater(ctx)).(gms.RowUpdater)
}

func (t *table) Replacer(ctx *gms.Context) gms.RowReplacer {
	return t.editor(ctx, t.Table.Replacer(ctx)).(gms.RowReplacer)
}

func (t *table) Deleter(ctx *gms.Context) gms.RowDeleter {
	return t.editor(ctx, t.Table.Deleter(ctx)).(gms.RowDeleter)
}

// memEditor is what the memory table's editor implements and the engine
// looks for.
type memEditor interface {
	gms.Table
	gms.ForeignKeyEditor
	gms.AutoIncrementSetter
}

// editor wraps e, the memory table's editor (returned for any of the four
// edit kinds): it skips updates that change nothing and, when the primary
// key is composite, guards against key collisions.
func (t *table) editor(ctx *gms.Context, e any) any {
	me, ok := e.(memEditor)
	if !ok {
		return e // a full-text table's editor
	}
	pk := t.PrimaryKeySchema().PkOrdinals
	if len(pk) < 2 {
		return &guardedEditor{memEditor: me} // single-column keys do not collide
	}
	k := guardKey{session: ctx.Session.ID(), table: t.key()}
	t.p.mu.Lock()
	g := t.p.guards[k]
	if g == nil {
		g = &collisionGuard{pk: pk, keys: map[string]string{}}
		t.p.guards[k] = g
	}
	t.p.mu.Unlock()
	return &guardedEditor{memEditor: me, g: g}
}

// collisionGuard remembers, for one session's statement on one table, the
// exact key of each row edited under each of the memory table's row keys.
// The inserter and the updater of one statement (INSERT ... ON DUPLICATE KEY
// UPDATE) share the memory table's edits, and so share a guard.
type collisionGuard struct {
	mu   sync.Mutex
	pk   []int
	keys map[string]string // the memory table's row key → exact key
}

// check returns true when row's key collides with another row edited in
// this statement: the edits so far must be applied first.
func (g *collisionGuard) check(row gms.Row) bool {
	var loose, exact strings.Builder
	for _, i := range g.pk {
		s := fmt.Sprintf("%v", row[i]) // as memory/table_editor.go getRowKey writes it
		loose.WriteString(s)
		exact.WriteString(strconv.Quote(s))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	prev, seen := g.keys[loose.String()]
	if seen && prev != exact.String() {
		clear(g.keys)
		g.keys[loose.String()] = exact.String()
		return true
	}
	g.keys[loose.String()] = exact.String()
	return false
}

// forgetSession drops the guards of a closed connection's session.
func (p *provider) forgetSession(id uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.guards {
		if k.session == id {
			delete(p.guards, k)
		}
	}
}

func (g *collisionGuard) reset() {
	if g == nil {
		return
	}
	g.mu.Lock()
	clear(g.keys)
	g.mu.Unlock()
}

// guardedEditor applies a statement's edits so far (StatementComplete, then
// StatementBegin again) before an edit whose row would collide with an
// earlier row of the same statement (g nil: the key cannot collide). The
// price: a statement that fails after such a split keeps its edits before
// the split (a transaction rolled back still loses them all).
//
// It also drops an update whose new row is the old one, value for value
// (ON DUPLICATE KEY UPDATE `k` = `k` of an insert-only table, or a load
// that finds the same values): the memory table would move the row to the
// end of its storage and sort it back into place.
type guardedEditor struct {
	memEditor
	g *collisionGuard
}

func (e *guardedEditor) split(ctx *gms.Context, rows ...gms.Row) error {
	if e.g == nil {
		return nil
	}
	for _, r := range rows {
		if r != nil && e.g.check(r) {
			if err := e.memEditor.StatementComplete(ctx); err != nil {
				return err
			}
			e.memEditor.StatementBegin(ctx)
		}
	}
	return nil
}

func (e *guardedEditor) StatementBegin(ctx *gms.Context) {
	e.g.reset()
	e.memEditor.StatementBegin(ctx)
}

func (e *guardedEditor) StatementComplete(ctx *gms.Context) error {
	e.g.reset()
	return e.memEditor.StatementComplete(ctx)
}

func (e *guardedEditor) DiscardChanges(ctx *gms.Context, err error) error {
	e.g.reset()
	return e.memEditor.DiscardChanges(ctx, err)
}

func (e *guardedEditor) Insert(ctx *gms.Context, row gms.Row) error {
	if err := e.split(ctx, row); err != nil {
		return err
	}
	return e.memEditor.Insert(ctx, row)
}

func (e *guardedEditor) Update(ctx *gms.Context, old, updated gms.Row) error {
	if identical(old, updated) {
		return nil
	}
	if err := e.split(ctx, old, updated); err != nil {
		return err
	}
	return e.memEditor.Update(ctx, old, updated)
}

func (e *guardedEditor) Delete(ctx *gms.Context, row gms.Row) error {
	if err := e.split(ctx, row); err != nil {
		return err
	}
	return e.memEditor.Delete(ctx, row)
}

// identical reports whether two rows hold the same values, byte for byte
// (not by collation: 'Rick' and 'RICK' differ).
func identical(a, b gms.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		switch x := a[i].(type) {
		case nil:
			if b[i] != nil {
				return false
			}
		case string:
			if y, ok := b[i].(string); !ok || x != y {
				return false
			}
		case []byte:
			if y, ok := b[i].([]byte); !ok || !bytes.Equal(x, y) {
				return false
			}
		case time.Time:
			if y, ok := b[i].(time.Time); !ok || !x.Equal(y) {
				return false
			}
		case int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64, bool:
			if x != b[i] {
				return false
			}
		default:
			return false // JSON, decimals, ...: not worth comparing
		}
	}
	return true
}
