package bucket

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// The bucket's areas. raw/ and processed/ trigger functions (Transform and
// Load); the others are written by the pipeline and trigger nothing.
const (
	RawPrefix        = "raw/"        // API responses, as served: Extract writes, anyone may drop
	ProcessedPrefix  = "processed/"  // warehouse-table CSVs: Transform writes, Load reads
	RejectedPrefix   = "rejected/"   // records Transform rejected, JSON lines with the reason
	QuarantinePrefix = "quarantine/" // objects that cannot be read or loaded, each with a report
	ManifestPrefix   = "manifests/"  // run manifests (extract runs, export runs)
	// DefaultExportPrefix is where the exporter writes unless told otherwise.
	DefaultExportPrefix = "exports/"
)

// reserved are the areas an export prefix must stay out of: an export under
// raw/ or processed/ would start a Transform or a Load.
var reserved = []string{RawPrefix, ProcessedPrefix, RejectedPrefix, QuarantinePrefix, ManifestPrefix}

// MaxKeyBytes is the longest object key S3 accepts.
const MaxKeyBytes = 1024

// Object metadata (S3 user metadata, sent as x-amz-meta-<name>).
const (
	MetaSourceURL = "source-url" // raw page: the URL it was fetched from
	MetaFetchedAt = "fetched-at" // raw page and its outputs: when the page was received, FetchedAtLayout
	MetaSHA256    = "sha256"     // raw page: lowercase hex SHA-256 of the body
	MetaSourceKey = "source-key" // processed and rejected: the raw key they come from (percent-encoded)
	MetaSourceTag = "source-etag"
	MetaSourceVer = "source-version-id"
	MetaRunID     = "run-id" // exports: the run that wrote them
	MetaTable     = "table"  // exports: the MySQL table
)

// FetchedAtLayout is the layout of the fetched-at metadata: RFC 3339, UTC,
// milliseconds.
const FetchedAtLayout = "2006-01-02T15:04:05.000Z"

// PageKey is where page n of an API resource is staged:
// raw/character/page-0007.json.
func PageKey(resource string, n int) string {
	return fmt.Sprintf("%s%s/page-%04d.json", RawPrefix, resource, n)
}

// ExtractManifestKey is the manifest of an extract run.
func ExtractManifestKey(runID string) string {
	return ManifestPrefix + "extract/" + runID + ".json"
}

// ExportManifestKey is the manifest of an export run of table (the ranges of
// a fanned-out export and their state).
func ExportManifestKey(table, runID string) string {
	return ExportManifestPrefix(table) + runID + ".json"
}

// ExportManifestPrefix is where the export run manifests of table are:
// listed in key order, the last is the latest run when run ids sort by time.
func ExportManifestPrefix(table string) string {
	return ManifestPrefix + "export/" + table + "/"
}

// RawResource returns the first folder of a raw key, which names the API
// resource by convention: raw/<resource>/... .
func RawResource(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, RawPrefix)
	if !ok {
		return "", false
	}
	seg, _, ok := strings.Cut(rest, "/")
	return seg, ok && seg != ""
}

// rawStem is a raw key without "raw/" and without ".json".
func rawStem(rawKey string) string {
	return strings.TrimSuffix(strings.TrimPrefix(rawKey, RawPrefix), ".json")
}

// ProcessedKey is where the CSV of table made from rawKey goes:
// processed/<table>/<raw key without "raw/" and ".json">.csv.
func ProcessedKey(table, rawKey string) string {
	return ProcessedPrefix + table + "/" + rawStem(rawKey) + ".csv"
}

// ProcessedTable returns the table a processed key is for:
// processed/<table>/... .
func ProcessedTable(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, ProcessedPrefix)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, "/")
	return name, ok
}

// RejectedKey is where the records of rawKey that Transform rejected go:
// rejected/<raw key without "raw/" and ".json">.jsonl.
func RejectedKey(rawKey string) string {
	return RejectedPrefix + rawStem(rawKey) + ".jsonl"
}

// reportSuffix ends the key of a quarantine report.
const reportSuffix = ".error.json"

// QuarantineKey is where an object that cannot be read or loaded is copied:
// quarantine/<its key>, e.g. quarantine/raw/character/page-0001.json or
// quarantine/processed/characters/x.csv. When that key and its report's
// would be longer than S3 allows, it is quarantine/long-keys/<SHA-256 of the
// key>.<extension> (the report names the key).
func QuarantineKey(key string) string {
	k := QuarantinePrefix + key
	if len(k)+len(reportSuffix) > MaxKeyBytes {
		sum := sha256.Sum256([]byte(key))
		ext := ""
		if i := strings.LastIndexByte(key, '.'); i >= 0 && i > strings.LastIndexByte(key, '/') && len(key)-i <= 16 {
			ext = key[i:]
		}
		k = QuarantinePrefix + "long-keys/" + hex.EncodeToString(sum[:]) + ext
	}
	return k
}

// ReportKey is the report beside the quarantined copy of key.
func ReportKey(key string) string {
	return QuarantineKey(key) + reportSuffix
}

// QuarantinedCopy returns the quarantined copy a report sits beside, and
// whether key is a report at all: for quarantine/<...>.error.json, the key
// without the suffix. It is how a reader of quarantine/ pairs the two (a
// copy under long-keys/ has no other way back to its report).
func QuarantinedCopy(key string) (string, bool) {
	if !strings.HasPrefix(key, QuarantinePrefix) || !strings.HasSuffix(key, reportSuffix) || len(key) == len(QuarantinePrefix)+len(reportSuffix) {
		return "", false
	}
	return strings.TrimSuffix(key, reportSuffix), true
}

// CopyReportKey is the report beside the quarantined copy at copyKey (the
// inverse of QuarantinedCopy).
func CopyReportKey(copyKey string) string {
	return copyKey + reportSuffix
}

// CheckOutputKeys returns an error when an output of rawKey (the CSV of one
// of tables, or its rejected file) would have a key longer than S3 accepts:
// a permanent problem of the object.
func CheckOutputKeys(rawKey string, tables []string) error {
	outs := []string{RejectedKey(rawKey)}
	for _, t := range tables {
		outs = append(outs, ProcessedKey(t, rawKey))
	}
	for _, k := range outs {
		if len(k) > MaxKeyBytes {
			return fmt.Errorf("the key is %d bytes: its output %.40s... would be %d bytes, over S3's %d", len(rawKey), k, len(k), MaxKeyBytes)
		}
	}
	return nil
}

// ValidateExportPrefix checks an export prefix: not empty, ending in "/", no
// leading "/", no empty, "." or ".." segment, and outside every area the
// pipeline itself uses (raw/ and processed/ trigger its functions).
func ValidateExportPrefix(p string) error {
	if p == "" || !strings.HasSuffix(p, "/") || strings.HasPrefix(p, "/") {
		return fmt.Errorf("export prefix %q must be non-empty, end with \"/\" and not start with \"/\" (e.g. %s)", p, DefaultExportPrefix)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("export prefix %q has an empty, \".\" or \"..\" segment", p)
		}
	}
	for _, r := range reserved {
		if strings.HasPrefix(p, r) || strings.HasPrefix(r, p) {
			return fmt.Errorf("export prefix %q overlaps %s, which the pipeline uses (raw/ and processed/ trigger its functions)", p, r)
		}
	}
	return nil
}

// Export formats: each has its own folder under <prefix><table>/.
const (
	CSV     = "csv"
	Parquet = "parquet"
)

// ExportKey is an export file: <prefix><table>/<format>/<stem>.<format>,
// e.g. exports/characters/csv/characters_data_20240506_070809.csv.
func ExportKey(prefix, table, format, stem string) string {
	return prefix + table + "/" + format + "/" + stem + "." + format
}

// WatermarkKey is the watermark of table's exports:
// <prefix><table>/csv/last_extract.txt.
func WatermarkKey(prefix, table string) string {
	return prefix + table + "/" + CSV + "/last_extract.txt"
}

// ExportStem is the name of a run's files of table, without the extension:
// <table>_data_<YYYYMMDD_HHMMSS>, then _1, _2, ... when that name is taken.
func ExportStem(table, stamp string, attempt int) string {
	s := table + "_data_" + stamp
	if attempt > 0 {
		s += fmt.Sprintf("_%d", attempt)
	}
	return s
}

// ExportPartStem is the name of part n (1-based) of a fanned-out export run:
// <table>_data_<YYYYMMDD_HHMMSS>_part-NNNN.
func ExportPartStem(table, stamp string, n int) string {
	return fmt.Sprintf("%s_data_%s_part-%04d", table, stamp, n)
}
