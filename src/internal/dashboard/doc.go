// Package dashboard shows the local pipeline to a person: the live page of
// `pipeline serve` (the chain as a picture with live counts, each table, the
// last events, quarantined and rejected objects, and actions), its JSON twin
// GET /api/status for scripts, and the self-contained HTML report that every
// `pipeline run` leaves behind.
//
// The page and the report are plain HTML, CSS and a little JavaScript (the
// report has none), embedded with go:embed: nothing is built with Node and
// nothing is loaded from the network. Everything that comes from objects,
// keys and reports is put in the page as text (textContent, html/template),
// never as markup, and a Content-Security-Policy forbids inline script.
//
// The package is local only: it reads the chain of localrun and is never
// linked into a Lambda binary.
package dashboard
