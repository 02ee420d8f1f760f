// Package warehouse is the warehouse's table contract: the tables, their
// columns, keys and kinds, and the processed-CSV format shared by Transform
// and Load. It holds no SQL and links no database code (the Transform binary
// uses it); the tables in MySQL are package warehousedb's.
//
// A processed CSV for table T has a header row holding exactly
// T.Header() (the data columns, in order); values are encoded by tablecsv,
// with datetimes as TimeLayout in UTC and dates as DateLayout. The
// bookkeeping columns createdDate and modifiedDate are never in the CSV: Load
// sets them.
package warehouse

import "time"

// Kind is a column's value kind.
type Kind int

// Column kinds.
const (
	Int      Kind = iota // INT
	Text                 // VARCHAR / TEXT, utf8mb4
	DateTime             // DATETIME(3), UTC
	Date                 // DATE
)

// Layouts of datetimes and dates in processed CSVs.
const (
	TimeLayout = "2006-01-02T15:04:05.000Z"
	DateLayout = "2006-01-02"
)

// Bookkeeping columns every table has besides its data columns.
const (
	CreatedDate  = "createdDate"  // set when the row is first inserted
	ModifiedDate = "modifiedDate" // NULL until a data column actually changes
	FetchedAt    = "fetched_at"   // when the source page was fetched; newer wins
)

// Column is one data column.
type Column struct {
	Name     string
	Kind     Kind
	Nullable bool
}

// Table is one warehouse table.
type Table struct {
	Name    string
	Columns []Column // data columns, in CSV order
	Key     []string // primary key columns
	// Versioned tables carry FetchedAt: an upsert only overwrites a row with
	// data fetched at the same time or later. Link tables are insert-only.
	Versioned bool
}

// Header returns the data column names, the header of the table's CSVs.
func (t Table) Header() []string {
	h := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		h[i] = c.Name
	}
	return h
}

// IsKey reports whether name is one of t's primary key columns.
func (t Table) IsKey(name string) bool {
	for _, k := range t.Key {
		if k == name {
			return true
		}
	}
	return false
}

// TextMaxChars is the length, in characters, of every Text column
// (VARCHAR(1024) utf8mb4): Transform and Load reject longer values as bad data.
const TextMaxChars = 1024

// Table names.
const (
	Locations         = "locations"
	Characters        = "characters"
	Episodes          = "episodes"
	CharacterEpisodes = "character_episodes"
)

// Tables returns every warehouse table, in load-friendly order.
func Tables() []Table {
	return []Table{
		{
			Name: Locations, Key: []string{"id"}, Versioned: true,
			Columns: []Column{
				{"id", Int, false}, {"name", Text, false}, {"type", Text, false}, {"dimension", Text, false},
				{"url", Text, false}, {"created", DateTime, false}, {FetchedAt, DateTime, false},
			},
		},
		{
			Name: Characters, Key: []string{"id"}, Versioned: true,
			Columns: []Column{
				{"id", Int, false}, {"name", Text, false}, {"status", Text, false}, {"species", Text, false},
				{"type", Text, false}, {"gender", Text, false},
				{"origin_id", Int, true}, {"origin_name", Text, false},
				{"location_id", Int, true}, {"location_name", Text, false},
				{"image", Text, false}, {"url", Text, false}, {"created", DateTime, false}, {FetchedAt, DateTime, false},
			},
		},
		{
			Name: Episodes, Key: []string{"id"}, Versioned: true,
			Columns: []Column{
				{"id", Int, false}, {"name", Text, false}, {"air_date", Date, false}, {"episode", Text, false},
				{"season", Int, false}, {"episode_number", Int, false},
				{"url", Text, false}, {"created", DateTime, false}, {FetchedAt, DateTime, false},
			},
		},
		{
			Name: CharacterEpisodes, Key: []string{"character_id", "episode_id"},
			Columns: []Column{{"character_id", Int, false}, {"episode_id", Int, false}},
		},
	}
}

// Lookup returns the table called name.
func Lookup(name string) (Table, bool) {
	for _, t := range Tables() {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

// FormatTime renders t as a processed-CSV datetime (UTC, milliseconds).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// FormatDate renders t as a processed-CSV date.
func FormatDate(t time.Time) string { return t.UTC().Format(DateLayout) }
