package locals3

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// WatchOptions configures a Watcher.
type WatchOptions struct {
	// Interval between two scans in Run; default 500ms.
	Interval time.Duration
	// Settle is how long a file's size and modification time must have
	// stayed unchanged before it is reported; default 1s. A file is also
	// reported only after two scans in a row saw it unchanged.
	Settle time.Duration
	// ReportExisting also reports the files found by the first scan that
	// the server has neither written nor announced before (they have no
	// matching metadata), such as files copied in while it was not running.
	// By default the first scan takes the folder as it is, and only files
	// that appear or change later are reported.
	ReportExisting bool
	// Now returns the current time; default time.Now.
	Now func() time.Time
}

// Watcher finds the files that a person or a program copies directly into
// the bucket folders (<DataDir>/s3/<bucket>/...) and announces them through
// the Server's OnObjectCreated hooks as EventPut with Source SourceFolder.
// Files written through the endpoint are not announced twice, temporary files
// (names starting with "." "~" "#", ending with "~", ".tmp", ".part",
// ".crdownload", ".swp", ...) and hidden folders are ignored, and a file is
// announced again only when its size or modification time change. Such files
// have no metadata; their ETag is the MD5 of their content.
type Watcher struct {
	s    *Server
	opts WatchOptions

	mu      sync.Mutex
	started bool
	seen    map[string]fileState // path → version already announced, written or taken as is
	pending map[string]fileState // path → version seen by the last scan, not yet stable
}

type fileState struct {
	bucket, key string
	size        int64
	modTime     time.Time
}

func (a fileState) same(b fileState) bool {
	return a.size == b.size && a.modTime.Equal(b.modTime)
}

// NewWatcher returns a Watcher of the server's bucket folders.
func (s *Server) NewWatcher(opts WatchOptions) *Watcher {
	if opts.Interval <= 0 {
		opts.Interval = 500 * time.Millisecond
	}
	if opts.Settle < 0 {
		opts.Settle = 0
	} else if opts.Settle == 0 {
		opts.Settle = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Watcher{s: s, opts: opts, seen: make(map[string]fileState), pending: make(map[string]fileState)}
}

// Run scans every Interval until ctx is done, then returns nil. A failed scan
// is logged and retried at the next interval.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		if _, err := w.Scan(ctx); err != nil && ctx.Err() == nil {
			w.s.log.Warn("local S3: scanning bucket folders", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Scan looks at the bucket folders once, announces the files that are new or
// changed and stable, and returns their events.
func (w *Watcher) Scan(ctx context.Context) ([]ObjectCreated, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	current, err := w.s.backend.files(ctx)
	if err != nil {
		return nil, err
	}
	now := w.opts.Now()
	first := !w.started
	w.started = true
	var events []ObjectCreated
	for p, st := range current {
		if seen, ok := w.seen[p]; ok && seen.same(st) {
			delete(w.pending, p)
			continue
		}
		if first && !w.opts.ReportExisting {
			w.seen[p] = st
			continue
		}
		prev, ok := w.pending[p]
		if !ok || !prev.same(st) || now.Sub(st.modTime) < w.opts.Settle {
			w.pending[p] = st
			continue
		}
		info, isNew, err := w.s.backend.adopt(st.bucket, st.key, p, st)
		if errors.Is(err, errChanged) {
			delete(w.pending, p)
			continue
		}
		if err != nil {
			w.s.log.Warn("local S3: reading copied file", "path", p, "error", err)
			continue
		}
		delete(w.pending, p)
		w.seen[p] = st
		if isNew {
			events = append(events, ObjectCreated{EventName: EventPut, Bucket: st.bucket, Key: st.key, Size: info.Size,
				ETag: info.ETag, Sequencer: w.s.nextSequencer(), Time: info.ModTime.UTC(), Source: SourceFolder})
		}
	}
	for p := range w.seen {
		if _, ok := current[p]; !ok {
			delete(w.seen, p)
		}
	}
	for p := range w.pending {
		if _, ok := current[p]; !ok {
			delete(w.pending, p)
		}
	}
	for _, ev := range events {
		w.s.emit(ev)
	}
	return events, nil
}

// isTempName reports whether a file or folder name looks like a temporary
// file of a copy in progress, an editor or the OS.
func isTempName(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~") || strings.HasPrefix(name, "#") || strings.HasSuffix(name, "~") {
		return true
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".swp", ".swx", ".filepart":
		return true
	}
	return false
}

// files returns the regular files of every bucket folder that can be objects.
func (b *fsBackend) files(ctx context.Context) (map[string]fileState, error) {
	buckets, err := b.ListBuckets()
	if err != nil {
		return nil, err
	}
	out := make(map[string]fileState)
	for _, bk := range buckets {
		dir := filepath.Join(b.root, bk.Name)
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if p == dir {
				return nil
			}
			if isTempName(d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			key := filepath.ToSlash(rel)
			if checkKey(key) != nil {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil // removed meanwhile
			}
			out[p] = fileState{bucket: bk.Name, key: key, size: fi.Size(), modTime: fi.ModTime()}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// errChanged reports that a file changed while it was being adopted.
var errChanged = errors.New("file changed")

// adopt makes the version st of a file found in the folder known: unless a
// sidecar already describes it (the endpoint wrote it, or it was adopted
// before), it writes a sidecar with no metadata and reports isNew.
func (b *fsBackend) adopt(bucket, key, p string, st fileState) (objectInfo, bool, error) {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return objectInfo{}, false, errChanged
	}
	if !st.same(fileState{size: fi.Size(), modTime: fi.ModTime()}) {
		return objectInfo{}, false, errChanged
	}
	b.mu.RLock()
	info, err := b.info(bucket, key, p, fi, nil)
	b.mu.RUnlock()
	if err != nil || info.Known {
		return info, false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	fi2, err := os.Stat(p)
	if err != nil || !st.same(fileState{size: fi2.Size(), modTime: fi2.ModTime()}) {
		return objectInfo{}, false, errChanged
	}
	if _, ok := b.readSidecar(bucket, key, fi2); ok {
		return info, false, nil // written through the endpoint meanwhile
	}
	sc := sidecar{Key: key, Size: fi2.Size(), ModTime: fi2.ModTime(), ETag: info.ETag, Headers: info.Headers, Origin: originFolder}
	if err := b.writeSidecar(bucket, sc); err != nil {
		return objectInfo{}, false, err
	}
	return info, true, nil
}
