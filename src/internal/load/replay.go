package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Reopener is implemented by a reader that can be read again from the start
// by fetching its object again (an S3 body: GetObject of the same version).
// Apply reruns a transaction on a fresh reader from Reopen rather than keep a
// copy of what it read.
type Reopener interface {
	Reopen(ctx context.Context) (io.ReadCloser, error)
}

// replay reads a stream once and can read it again from the start, so a
// transaction that hit a deadlock can be rerun. In order of preference it
// seeks back a seekable source, reopens a Reopener, or else keeps what it has
// read: in memory up to memLimit bytes, the rest in an unlinked temporary
// file, so memory stays bounded and small objects never touch the disk.
type replay struct {
	src      io.Reader
	seeker   io.Seeker
	start    int64 // the seeker's offset when replay began
	reopener Reopener
	reopened io.ReadCloser // the current reader after a reopen
	memLimit int

	mem  []byte
	file *os.File
	size int64 // bytes captured (mem then file)
	pos  int64 // read position of the current pass
}

func newReplay(src io.Reader, memLimit int) *replay {
	r := &replay{src: src, memLimit: memLimit}
	if s, ok := src.(io.Seeker); ok {
		if off, err := s.Seek(0, io.SeekCurrent); err == nil {
			r.seeker, r.start = s, off
			return r
		}
	}
	if ro, ok := src.(Reopener); ok {
		r.reopener = ro
	}
	return r
}

func (r *replay) Read(p []byte) (int, error) {
	switch {
	case r.seeker != nil:
		return r.src.Read(p)
	case r.reopener != nil:
		if r.reopened != nil {
			return r.reopened.Read(p)
		}
		return r.src.Read(p)
	case r.pos < r.size:
		return r.readCaptured(p)
	}
	n, err := r.src.Read(p)
	if n > 0 {
		if cerr := r.capture(p[:n]); cerr != nil {
			return 0, cerr
		}
		r.pos += int64(n)
	}
	return n, err
}

func (r *replay) readCaptured(p []byte) (int, error) {
	if r.pos < int64(len(r.mem)) {
		n := copy(p, r.mem[r.pos:])
		r.pos += int64(n)
		return n, nil
	}
	p = p[:min(int64(len(p)), r.size-r.pos)]
	n, err := r.file.ReadAt(p, r.pos-int64(len(r.mem)))
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *replay) capture(b []byte) error {
	if r.file == nil {
		if len(r.mem)+len(b) <= r.memLimit {
			r.mem = append(r.mem, b...)
			r.size += int64(len(b))
			return nil
		}
		f, err := os.CreateTemp("", "load-replay-*")
		if err != nil {
			return fmt.Errorf("keeping the object for a retry: %w", err)
		}
		_ = os.Remove(f.Name()) // unlinked: gone when closed, even after a crash
		r.file = f
	}
	if _, err := r.file.WriteAt(b, r.size-int64(len(r.mem))); err != nil {
		return fmt.Errorf("keeping the object for a retry: %w", err)
	}
	r.size += int64(len(b))
	return nil
}

// rewind starts a new pass from the beginning. After a pass that stopped
// early, a spooling replay reads its capture, then the rest of the source.
func (r *replay) rewind(ctx context.Context) error {
	switch {
	case r.seeker != nil:
		_, err := r.seeker.Seek(r.start, io.SeekStart)
		return err
	case r.reopener != nil:
		if r.reopened != nil {
			_ = r.reopened.Close()
			r.reopened = nil
		}
		rc, err := r.reopener.Reopen(ctx)
		if err != nil {
			return err
		}
		r.reopened = rc
		return nil
	}
	r.pos = 0
	return nil
}

// Close releases the spool file or the reopened reader.
func (r *replay) Close() error {
	var errs []error
	if r.reopened != nil {
		errs = append(errs, r.reopened.Close())
		r.reopened = nil
	}
	if r.file != nil {
		errs = append(errs, r.file.Close())
		r.file = nil
	}
	return errors.Join(errs...)
}
