package locals3

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/textproto"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// Why not gofakes3's own s3afero backend: it writes objects in place (a
// failed or interrupted upload truncates the previous version), streams every
// upload under one global lock, merges the old object's metadata into a new
// PUT, ignores list pagination, keeps multipart parts in memory, and writes a
// probe file into the bucket folder. fsBackend keeps the same idea (plain files
// plus a metadata store beside them) without those problems.

const (
	// minPartSize is the smallest part S3 accepts, except for the last one.
	minPartSize = 5 << 20
	// defaultContentType is what S3 stores when a PUT names no Content-Type.
	defaultContentType = "binary/octet-stream"
	// etagHeader carries an ETag that is not a plain MD5 (multipart
	// uploads: "<md5 of part md5s>-<parts>") from the backend to the
	// middleware, because gofakes3 writes the ETag header as hex(Object.Hash).
	etagHeader = "X-Localstack-Etag"
	// requestHeadersHeader lists the metadata headers a CopyObject request
	// itself carried (set by the middleware): gofakes3 merges the source's
	// metadata into the request's, which MetadataDirective REPLACE must undo.
	requestHeadersHeader = "X-Amz-Localstack-Request-Headers"

	originAPI    = "api"
	originFolder = "folder"
)

// storedHeaders are the request headers kept as object metadata, besides
// every X-Amz-Meta-* header.
var storedHeaders = []string{"Content-Type", "Content-Disposition", "Content-Encoding", "Content-Language", "Cache-Control", "Expires"}

// fsBackend is a gofakes3.Backend and gofakes3.MultipartBackend that keeps each
// object as a plain file holding exactly its bytes at <root>/<bucket>/<key>,
// and its metadata (ETag, Content-Type, x-amz-meta-*) in a sidecar JSON file
// under <metaDir>/<bucket>/. Writes go to a temporary file in tmpDir (on the
// same file system) and are renamed into place, so an object file is always
// complete. A file whose size or modification time no longer match its
// sidecar was put there by someone else: it is served with no metadata and
// the MD5 of its content as ETag.
type fsBackend struct {
	root    string
	metaDir string
	tmpDir  string

	// mu orders commits (sidecar write + rename) against readers of a
	// (file, sidecar) pair, so a reader never pairs a new file with an old
	// sidecar or the reverse.
	mu sync.RWMutex

	hashMu sync.Mutex
	hashes map[string]cachedHash // MD5 of files without a matching sidecar, by path

	upMu    sync.Mutex
	uploads map[gofakes3.UploadID]*upload
}

var (
	_ gofakes3.Backend          = (*fsBackend)(nil)
	_ gofakes3.MultipartBackend = (*fsBackend)(nil)
)

type cachedHash struct {
	size    int64
	modTime time.Time
	sum     []byte
}

// sidecar is the metadata file of one object.
type sidecar struct {
	Key     string            `json:"key"`
	Size    int64             `json:"size"`
	ModTime time.Time         `json:"modTime"`
	ETag    string            `json:"etag"` // without quotes
	Headers map[string]string `json:"headers,omitempty"`
	Origin  string            `json:"origin"` // originAPI or originFolder
}

// objectInfo describes the current version of an object.
type objectInfo struct {
	Size    int64
	ModTime time.Time
	ETag    string // without quotes: hex MD5, or "<hex>-<parts>" after a multipart upload
	Headers map[string]string
	Known   bool // a sidecar matches the file: the server wrote or announced this version
}

func newFSBackend(root, metaDir, tmpDir string) *fsBackend {
	return &fsBackend{
		root:    root,
		metaDir: metaDir,
		tmpDir:  tmpDir,
		hashes:  make(map[string]cachedHash),
		uploads: make(map[gofakes3.UploadID]*upload),
	}
}

// checkKey reports whether key maps to exactly one file path. S3 allows keys
// that a folder cannot hold ("a//b", "a/./b", "dir/"); they are refused.
func checkKey(key string) error {
	if key == "" || len(key) > gofakes3.KeySizeLimit {
		return gofakes3.ResourceError(gofakes3.ErrKeyTooLong, key)
	}
	if strings.ContainsRune(key, 0) || strings.ContainsRune(key, '\\') {
		return gofakes3.ErrorInvalidArgument("key", key, "key cannot be stored as a file: it contains NUL or backslash")
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return gofakes3.ErrorInvalidArgument("key", key, `key cannot be stored as a file: empty, "." or ".." path segment`)
		case len(seg) > 255:
			return gofakes3.ErrorInvalidArgument("key", key, "key cannot be stored as a file: a path segment is longer than 255 bytes")
		}
	}
	return nil
}

func (b *fsBackend) bucketDir(bucket string) (string, error) {
	if err := gofakes3.ValidateBucketName(bucket); err != nil {
		return "", gofakes3.BucketNotFound(bucket)
	}
	return filepath.Join(b.root, bucket), nil
}

func (b *fsBackend) objectPath(bucket, key string) (string, error) {
	dir, err := b.bucketDir(bucket)
	if err != nil {
		return "", err
	}
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.FromSlash(key)), nil
}

func (b *fsBackend) sidecarPath(bucket, key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(b.metaDir, bucket, hex.EncodeToString(sum[:])+".json")
}

func (b *fsBackend) ensureBucket(bucket string) (string, error) {
	dir, err := b.bucketDir(bucket)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return "", gofakes3.BucketNotFound(bucket)
	}
	return dir, nil
}

// ListBuckets implements gofakes3.Backend.
func (b *fsBackend) ListBuckets() ([]gofakes3.BucketInfo, error) {
	entries, err := os.ReadDir(b.root)
	if err != nil {
		return nil, fmt.Errorf("listing buckets in %s: %w", b.root, err)
	}
	buckets := make([]gofakes3.BucketInfo, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() || gofakes3.ValidateBucketName(e.Name()) != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		buckets = append(buckets, gofakes3.BucketInfo{Name: e.Name(), CreationDate: gofakes3.NewContentTime(fi.ModTime())})
	}
	return buckets, nil
}

// CreateBucket implements gofakes3.Backend.
func (b *fsBackend) CreateBucket(name string) error {
	dir, err := b.bucketDir(name)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); errors.Is(err, fs.ErrExist) {
		return gofakes3.ResourceError(gofakes3.ErrBucketAlreadyExists, name)
	} else if err != nil {
		return fmt.Errorf("creating bucket folder %s: %w", dir, err)
	}
	return nil
}

// BucketExists implements gofakes3.Backend.
func (b *fsBackend) BucketExists(name string) (bool, error) {
	_, err := b.ensureBucket(name)
	return err == nil, nil
}

// DeleteBucket implements gofakes3.Backend.
func (b *fsBackend) DeleteBucket(name string) error {
	dir, err := b.ensureBucket(name)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading bucket folder %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return gofakes3.ResourceError(gofakes3.ErrBucketNotEmpty, name)
	}
	if err := os.Remove(dir); err != nil {
		return fmt.Errorf("removing bucket folder %s: %w", dir, err)
	}
	return os.RemoveAll(filepath.Join(b.metaDir, name))
}

// ForceDeleteBucket implements gofakes3.Backend.
func (b *fsBackend) ForceDeleteBucket(name string) error {
	dir, err := b.ensureBucket(name)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing bucket folder %s: %w", dir, err)
	}
	return os.RemoveAll(filepath.Join(b.metaDir, name))
}

// readSidecar returns the sidecar of key if it describes the file fi.
// The caller holds b.mu (read or write).
func (b *fsBackend) readSidecar(bucket, key string, fi os.FileInfo) (sidecar, bool) {
	data, err := os.ReadFile(b.sidecarPath(bucket, key))
	if err != nil {
		return sidecar{}, false
	}
	var sc sidecar
	if json.Unmarshal(data, &sc) != nil || sc.Key != key || sc.Size != fi.Size() || !sc.ModTime.Equal(fi.ModTime()) {
		return sidecar{}, false
	}
	return sc, true
}

// writeSidecar replaces the sidecar of key atomically. The caller holds b.mu.
func (b *fsBackend) writeSidecar(bucket string, sc sidecar) error {
	p := b.sidecarPath(bucket, sc.Key)
	data, err := json.Marshal(sc)
	if err != nil {
		return fmt.Errorf("encoding metadata of %s: %w", sc.Key, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("creating metadata folder: %w", err)
	}
	tmp, err := b.createTemp("meta-*")
	if err != nil {
		return fmt.Errorf("writing metadata of %s: %w", sc.Key, err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing metadata of %s: %w", sc.Key, err)
	}
	return nil
}

// info describes the object stored in the regular file fi. content, when not
// nil, reads the same file (an open descriptor) for hashing. The caller holds
// b.mu (read or write).
func (b *fsBackend) info(bucket, key, p string, fi os.FileInfo, content io.ReaderAt) (objectInfo, error) {
	if sc, ok := b.readSidecar(bucket, key, fi); ok {
		return objectInfo{Size: fi.Size(), ModTime: fi.ModTime(), ETag: sc.ETag, Headers: sc.Headers, Known: true}, nil
	}
	sum, err := b.hashFile(p, fi, content)
	if err != nil {
		return objectInfo{}, err
	}
	return objectInfo{
		Size:    fi.Size(),
		ModTime: fi.ModTime(),
		ETag:    hex.EncodeToString(sum),
		Headers: map[string]string{"Content-Type": contentTypeOf(key)},
	}, nil
}

// contentTypeOf guesses the Content-Type of a file copied into the folder
// from its extension, as `aws s3 cp` does.
func contentTypeOf(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return defaultContentType
}

func (b *fsBackend) hashFile(p string, fi os.FileInfo, content io.ReaderAt) ([]byte, error) {
	b.hashMu.Lock()
	c, ok := b.hashes[p]
	b.hashMu.Unlock()
	if ok && c.size == fi.Size() && c.modTime.Equal(fi.ModTime()) {
		return c.sum, nil
	}
	if content == nil {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("hashing %s: %w", p, err)
		}
		defer f.Close()
		content = f
	}
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(content, 0, fi.Size())); err != nil {
		return nil, fmt.Errorf("hashing %s: %w", p, err)
	}
	sum := h.Sum(nil)
	b.hashMu.Lock()
	b.hashes[p] = cachedHash{size: fi.Size(), modTime: fi.ModTime(), sum: sum}
	b.hashMu.Unlock()
	return sum, nil
}

// current returns the current version of key, or ok=false when there is none.
// The caller holds b.mu (read or write).
func (b *fsBackend) current(bucket, key string) (info objectInfo, ok bool, err error) {
	p, err := b.objectPath(bucket, key)
	if err != nil {
		return objectInfo{}, false, err
	}
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return objectInfo{}, false, nil
	}
	info, err = b.info(bucket, key, p, fi, nil)
	return info, err == nil, err
}

// head returns the current version of key (for the middleware).
func (b *fsBackend) head(bucket, key string) (objectInfo, bool, error) {
	if _, err := b.ensureBucket(bucket); err != nil {
		return objectInfo{}, false, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.current(bucket, key)
}

func (b *fsBackend) object(key string, info objectInfo) *gofakes3.Object {
	meta := make(map[string]string, len(info.Headers)+2)
	for k, v := range info.Headers {
		meta[k] = v
	}
	meta["Last-Modified"] = info.ModTime.UTC().Format(http.TimeFormat)
	md5hex, _, multipart := strings.Cut(info.ETag, "-")
	if multipart {
		meta[etagHeader] = `"` + info.ETag + `"`
	}
	hash, _ := hex.DecodeString(md5hex)
	return &gofakes3.Object{Name: key, Metadata: meta, Size: info.Size, Hash: hash}
}

// HeadObject implements gofakes3.Backend.
func (b *fsBackend) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	info, ok, err := b.head(bucket, key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, gofakes3.KeyNotFound(key)
	}
	obj := b.object(key, info)
	obj.Contents = io.NopCloser(bytes.NewReader(nil))
	return obj, nil
}

// GetObject implements gofakes3.Backend.
func (b *fsBackend) GetObject(bucket, key string, rangeRequest *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	if _, err := b.ensureBucket(bucket); err != nil {
		return nil, err
	}
	p, err := b.objectPath(bucket, key)
	if err != nil {
		return nil, gofakes3.KeyNotFound(key)
	}
	f, info, err := b.open(bucket, key, p)
	if err != nil {
		return nil, err
	}
	rng, err := rangeRequest.Range(info.Size)
	if err != nil {
		f.Close()
		return nil, err
	}
	obj := b.object(key, info)
	obj.Range = rng
	obj.Contents = f
	if rng != nil {
		obj.Contents = readCloser{io.NewSectionReader(f, rng.Start, rng.Length), f}
	}
	return obj, nil
}

// open opens the object file and describes the version it holds.
func (b *fsBackend) open(bucket, key, p string) (*os.File, objectInfo, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	f, err := os.Open(p)
	if err != nil {
		return nil, objectInfo{}, gofakes3.KeyNotFound(key)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, objectInfo{}, gofakes3.KeyNotFound(key)
	}
	info, err := b.info(bucket, key, p, fi, f)
	if err != nil {
		f.Close()
		return nil, objectInfo{}, err
	}
	return f, info, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// ListBucket implements gofakes3.Backend, with pagination: keys are sorted as
// S3 sorts them (UTF-8 byte order), a common prefix counts as one key.
func (b *fsBackend) ListBucket(bucket string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	dir, err := b.ensureBucket(bucket)
	if err != nil {
		return nil, err
	}
	var pfx gofakes3.Prefix
	if prefix != nil {
		pfx = *prefix
	}
	type file struct {
		key, path string
		fi        os.FileInfo
	}
	// Walk only the folder that holds every key with the prefix.
	start := dir
	if i := strings.LastIndexByte(pfx.Prefix, '/'); pfx.HasPrefix && i > 0 && checkKey(pfx.Prefix[:i]) == nil {
		start = filepath.Join(dir, filepath.FromSlash(pfx.Prefix[:i]))
	}
	var files []file
	err = filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if checkKey(key) != nil || !strings.HasPrefix(key, pfx.Prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		files = append(files, file{key: key, path: p, fi: fi})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", start, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].key < files[j].key })

	list := gofakes3.NewObjectList()
	var count int64
	var last, lastPrefix string
	for _, f := range files {
		var m gofakes3.PrefixMatch
		if !pfx.Match(f.key, &m) {
			continue
		}
		item := f.key
		if m.CommonPrefix {
			item = m.MatchedPart
			if item == lastPrefix {
				continue
			}
		}
		if page.HasMarker && item <= page.Marker {
			continue
		}
		if page.MaxKeys > 0 && count >= page.MaxKeys {
			list.IsTruncated = true
			list.NextMarker = last
			break
		}
		count++
		last = item
		if m.CommonPrefix {
			lastPrefix = item
			list.AddPrefix(item)
			continue
		}
		b.mu.RLock()
		info, err := b.info(bucket, f.key, f.path, f.fi, nil)
		b.mu.RUnlock()
		if err != nil {
			return nil, err
		}
		list.Add(&gofakes3.Content{
			Key:          f.key,
			LastModified: gofakes3.NewContentTime(info.ModTime),
			ETag:         `"` + info.ETag + `"`,
			Size:         info.Size,
			StorageClass: gofakes3.StorageStandard,
		})
	}
	return list, nil
}

// storableHeaders keeps the metadata headers of a request that S3 stores with
// an object.
func storableHeaders(meta map[string]string) map[string]string {
	out := make(map[string]string)
	for k, v := range meta {
		k = textproto.CanonicalMIMEHeaderKey(k)
		if strings.HasPrefix(k, "X-Amz-Meta-") {
			out[k] = v
		}
	}
	for _, k := range storedHeaders {
		if v, ok := meta[k]; ok && v != "" {
			out[k] = v
		}
	}
	if ce := removeToken(out["Content-Encoding"], "aws-chunked"); ce != "" {
		out["Content-Encoding"] = ce
	} else {
		delete(out, "Content-Encoding")
	}
	if out["Content-Type"] == "" {
		out["Content-Type"] = defaultContentType
	}
	return out
}

// removeToken removes token from a comma-separated header value.
func removeToken(value, token string) string {
	var kept []string
	for _, v := range strings.Split(value, ",") {
		if v = strings.TrimSpace(v); v != "" && !strings.EqualFold(v, token) {
			kept = append(kept, v)
		}
	}
	return strings.Join(kept, ",")
}

// createTemp creates a file in the scratch folder, recreating the folder if
// another process removed it as stale.
func (b *fsBackend) createTemp(pattern string) (*os.File, error) {
	f, err := os.CreateTemp(b.tmpDir, pattern)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(b.tmpDir, 0o755); err == nil {
			f, err = os.CreateTemp(b.tmpDir, pattern)
		}
	}
	return f, err
}

// writeTemp streams r into a new file in the scratch folder and returns its
// path, the MD5 of its content and its size.
func (b *fsBackend) writeTemp(r io.Reader) (string, []byte, int64, error) {
	f, err := b.createTemp("object-*")
	if err != nil {
		return "", nil, 0, fmt.Errorf("creating temporary file: %w", err)
	}
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", nil, 0, err
	}
	return f.Name(), h.Sum(nil), n, nil
}

// errKeyConflict is returned when a key cannot be stored because the folder
// layout holds a file where a folder is needed, or the reverse ("a" and "a/b").
func errKeyConflict(key string) error {
	return gofakes3.ErrorInvalidArgument("key", key,
		"key cannot be stored as a file: it conflicts with an existing object or folder (a key cannot be both \"a\" and the prefix of \"a/b\" here)")
}

// commit moves the complete file tmp into place as the new version of key,
// after checking cond against the current version. It always consumes tmp.
func (b *fsBackend) commit(bucket, key, tmp, etag string, headers map[string]string, origin string, cond *gofakes3.PutConditions) (fi os.FileInfo, err error) {
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	dst, err := b.objectPath(bucket, key)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cond != nil {
		cur, ok, err := b.current(bucket, key)
		if err != nil {
			return nil, err
		}
		if failedCondition(cond, cur, ok) != "" {
			return nil, gofakes3.ErrorMessage(gofakes3.ErrPreconditionFailed, gofakes3.ErrPreconditionFailed.Message())
		}
	}
	fi, err = os.Stat(tmp)
	if err != nil {
		return nil, fmt.Errorf("committing %s: %w", key, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, errKeyConflict(key)
	}
	if err := b.writeSidecar(bucket, sidecar{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), ETag: etag, Headers: headers, Origin: origin}); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if st, serr := os.Stat(dst); serr == nil && st.IsDir() {
			return nil, errKeyConflict(key)
		}
		return nil, fmt.Errorf("committing %s: %w", key, err)
	}
	return fi, nil
}

// failedCondition returns the name of the precondition header of a write
// that the current version of the key does not meet, or "" when all hold.
// If-None-Match: "*" requires that no version exists; If-Match: <etag> that
// the current version has that ETag ("*": that a version exists).
func failedCondition(cond *gofakes3.PutConditions, cur objectInfo, exists bool) string {
	if cond == nil {
		return ""
	}
	if cond.IfNoneMatch != nil && exists {
		return "If-None-Match"
	}
	if m := cond.IfMatch; m != nil && (!exists || (*m != "*" && strings.Trim(*m, `"`) != cur.ETag)) {
		return "If-Match"
	}
	return ""
}

// PutObject implements gofakes3.Backend. Unlike S3's PUT in gofakes3's
// bundled backends, it does not carry the previous version's metadata over.
func (b *fsBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	if _, err := b.ensureBucket(bucket); err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	if err := checkKey(key); err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	tmp, sum, n, err := b.writeTemp(input)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	if size >= 0 && n != size {
		os.Remove(tmp)
		return gofakes3.PutObjectResult{}, gofakes3.ErrIncompleteBody
	}
	_, err = b.commit(bucket, key, tmp, hex.EncodeToString(sum), storableHeaders(meta), originAPI, cond)
	return gofakes3.PutObjectResult{}, err
}

// CopyObject implements gofakes3.Backend with S3's MetadataDirective: COPY
// (the default) keeps the source's metadata, REPLACE takes the request's.
func (b *fsBackend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	if _, err := b.ensureBucket(srcBucket); err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	if _, err := b.ensureBucket(dstBucket); err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	src, err := b.objectPath(srcBucket, srcKey)
	if err != nil {
		return gofakes3.CopyObjectResult{}, gofakes3.KeyNotFound(srcKey)
	}
	if err := checkKey(dstKey); err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	f, info, err := b.open(srcBucket, srcKey, src)
	if err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	tmp, sum, _, err := b.writeTemp(f)
	f.Close()
	if err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	headers := info.Headers
	if strings.EqualFold(meta["X-Amz-Metadata-Directive"], "REPLACE") {
		requested := make(map[string]string)
		for _, k := range strings.Split(meta[requestHeadersHeader], ",") {
			if k = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)); k != "" {
				if v, ok := meta[k]; ok {
					requested[k] = v
				}
			}
		}
		headers = storableHeaders(requested)
	}
	etag := hex.EncodeToString(sum)
	fi, err := b.commit(dstBucket, dstKey, tmp, etag, headers, originAPI, nil)
	if err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	return gofakes3.CopyObjectResult{ETag: `"` + etag + `"`, LastModified: gofakes3.NewContentTime(fi.ModTime())}, nil
}

// DeleteObject implements gofakes3.Backend; deleting a missing key succeeds.
func (b *fsBackend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	dir, err := b.ensureBucket(bucket)
	if err != nil {
		return gofakes3.ObjectDeleteResult{}, err
	}
	if checkKey(key) != nil {
		return gofakes3.ObjectDeleteResult{}, nil
	}
	p := filepath.Join(dir, filepath.FromSlash(key))
	b.mu.Lock()
	defer b.mu.Unlock()
	fi, err := os.Lstat(p)
	if err != nil || fi.IsDir() {
		return gofakes3.ObjectDeleteResult{}, nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return gofakes3.ObjectDeleteResult{}, fmt.Errorf("deleting %s: %w", p, err)
	}
	if err := os.Remove(b.sidecarPath(bucket, key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return gofakes3.ObjectDeleteResult{}, fmt.Errorf("deleting metadata of %s: %w", key, err)
	}
	// Folders are only prefixes: drop the ones left empty.
	for d := filepath.Dir(p); d != dir && strings.HasPrefix(d, dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return gofakes3.ObjectDeleteResult{}, nil
}

// DeleteMulti implements gofakes3.Backend.
func (b *fsBackend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	var res gofakes3.MultiDeleteResult
	for _, k := range keys {
		if _, err := b.DeleteObject(bucket, k); err != nil {
			code := gofakes3.ErrInternal
			if e, ok := err.(gofakes3.Error); ok {
				code = e.ErrorCode()
			}
			res.Error = append(res.Error, gofakes3.ErrorResult{Key: k, Code: code, Message: err.Error()})
			continue
		}
		res.Deleted = append(res.Deleted, gofakes3.ObjectID{Key: k})
	}
	return res, nil
}

// upload is one multipart upload in progress; its parts are files in dir.
type upload struct {
	id        gofakes3.UploadID
	bucket    string
	key       string
	headers   map[string]string
	initiated time.Time
	dir       string

	mu    sync.Mutex
	parts map[int]uploadedPart
}

type uploadedPart struct {
	size     int64
	md5      []byte
	modified time.Time
}

func (u *upload) partPath(n int) string {
	return filepath.Join(u.dir, fmt.Sprintf("part-%05d", n))
}

func (b *fsBackend) upload(bucket, key string, id gofakes3.UploadID) (*upload, error) {
	b.upMu.Lock()
	defer b.upMu.Unlock()
	u, ok := b.uploads[id]
	if !ok || u.bucket != bucket || u.key != key {
		return nil, gofakes3.ErrNoSuchUpload
	}
	return u, nil
}

// CreateMultipartUpload implements gofakes3.MultipartBackend.
func (b *fsBackend) CreateMultipartUpload(bucket, key string, meta map[string]string) (gofakes3.UploadID, error) {
	if _, err := b.ensureBucket(bucket); err != nil {
		return "", err
	}
	if err := checkKey(key); err != nil {
		return "", err
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("creating upload id: %w", err)
	}
	id := gofakes3.UploadID(hex.EncodeToString(raw[:]))
	dir := filepath.Join(b.tmpDir, "upload-"+string(id))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating upload folder: %w", err)
	}
	u := &upload{id: id, bucket: bucket, key: key, headers: storableHeaders(meta), initiated: time.Now().UTC(), dir: dir, parts: make(map[int]uploadedPart)}
	b.upMu.Lock()
	b.uploads[id] = u
	b.upMu.Unlock()
	return id, nil
}

// UploadPart implements gofakes3.MultipartBackend; the part is streamed to disk.
func (b *fsBackend) UploadPart(bucket, key string, id gofakes3.UploadID, n int, contentLength int64, input io.Reader) (string, error) {
	if n < 1 || n > gofakes3.MaxUploadPartNumber {
		return "", gofakes3.ErrInvalidPart
	}
	u, err := b.upload(bucket, key, id)
	if err != nil {
		return "", err
	}
	tmp, sum, size, err := b.writeTemp(input)
	if err != nil {
		return "", err
	}
	if contentLength >= 0 && size != contentLength {
		os.Remove(tmp)
		return "", gofakes3.ErrIncompleteBody
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := os.Rename(tmp, u.partPath(n)); err != nil {
		os.Remove(tmp)
		return "", gofakes3.ErrNoSuchUpload // completed or aborted meanwhile
	}
	u.parts[n] = uploadedPart{size: size, md5: sum, modified: time.Now().UTC()}
	return `"` + hex.EncodeToString(sum) + `"`, nil
}

// ListParts implements gofakes3.MultipartBackend.
func (b *fsBackend) ListParts(bucket, key string, id gofakes3.UploadID, marker int, limit int64) (*gofakes3.ListMultipartUploadPartsResult, error) {
	u, err := b.upload(bucket, key, id)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	nums := make([]int, 0, len(u.parts))
	for n := range u.parts {
		if n > marker {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	res := &gofakes3.ListMultipartUploadPartsResult{Bucket: bucket, Key: key, UploadID: id, PartNumberMarker: marker, MaxParts: limit, StorageClass: gofakes3.StorageStandard}
	for _, n := range nums {
		if limit > 0 && int64(len(res.Parts)) >= limit {
			res.IsTruncated = true
			break
		}
		p := u.parts[n]
		res.Parts = append(res.Parts, gofakes3.ListMultipartUploadPartItem{PartNumber: n, LastModified: gofakes3.NewContentTime(p.modified), ETag: `"` + hex.EncodeToString(p.md5) + `"`, Size: p.size})
		res.NextPartNumberMarker = n
	}
	return res, nil
}

// ListMultipartUploads implements gofakes3.MultipartBackend.
func (b *fsBackend) ListMultipartUploads(bucket string, marker *gofakes3.UploadListMarker, prefix gofakes3.Prefix, limit int64) (*gofakes3.ListMultipartUploadsResult, error) {
	if _, err := b.ensureBucket(bucket); err != nil {
		return nil, err
	}
	b.upMu.Lock()
	var ups []*upload
	for _, u := range b.uploads {
		if u.bucket == bucket && prefix.Match(u.key, nil) {
			ups = append(ups, u)
		}
	}
	b.upMu.Unlock()
	sort.Slice(ups, func(i, j int) bool {
		if ups[i].key != ups[j].key {
			return ups[i].key < ups[j].key
		}
		return ups[i].id < ups[j].id
	})
	res := &gofakes3.ListMultipartUploadsResult{Bucket: bucket, Prefix: prefix.Prefix, Delimiter: prefix.Delimiter, MaxUploads: limit}
	if marker != nil {
		res.KeyMarker, res.UploadIDMarker = marker.Object, marker.UploadID
	}
	for _, u := range ups {
		if marker != nil && (u.key < marker.Object || (u.key == marker.Object && (marker.UploadID == "" || u.id <= marker.UploadID))) {
			continue
		}
		if limit > 0 && int64(len(res.Uploads)) >= limit {
			res.IsTruncated = true
			break
		}
		res.Uploads = append(res.Uploads, gofakes3.ListMultipartUploadItem{Key: u.key, UploadID: u.id, StorageClass: gofakes3.StorageStandard, Initiated: gofakes3.NewContentTime(u.initiated)})
		res.NextKeyMarker, res.NextUploadIDMarker = u.key, u.id
	}
	return res, nil
}

// AbortMultipartUpload implements gofakes3.MultipartBackend.
func (b *fsBackend) AbortMultipartUpload(bucket, key string, id gofakes3.UploadID) error {
	u, err := b.upload(bucket, key, id)
	if err != nil {
		return err
	}
	b.forget(u)
	return nil
}

func (b *fsBackend) forget(u *upload) {
	b.upMu.Lock()
	delete(b.uploads, u.id)
	b.upMu.Unlock()
	os.RemoveAll(u.dir)
}

// checkParts validates the part list of a CompleteMultipartUpload request as
// S3 does, with the S3 error code for each problem.
func (b *fsBackend) checkParts(bucket, key string, id gofakes3.UploadID, parts []gofakes3.CompletedPart) *s3Error {
	u, err := b.upload(bucket, key, id)
	if err != nil {
		return &s3Error{Status: http.StatusNotFound, Code: "NoSuchUpload", Message: "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."}
	}
	if len(parts) == 0 {
		return &s3Error{Status: http.StatusBadRequest, Code: "MalformedXML", Message: "The XML you provided was not well-formed or did not validate against our published schema"}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, p := range parts {
		if i > 0 && p.PartNumber <= parts[i-1].PartNumber {
			return &s3Error{Status: http.StatusBadRequest, Code: "InvalidPartOrder", Message: "The list of parts was not in ascending order. Parts must be ordered by part number."}
		}
		up, ok := u.parts[p.PartNumber]
		if !ok || strings.Trim(p.ETag, `"`) != hex.EncodeToString(up.md5) {
			return &s3Error{Status: http.StatusBadRequest, Code: "InvalidPart", Message: "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."}
		}
		if i < len(parts)-1 && up.size < minPartSize {
			return &s3Error{Status: http.StatusBadRequest, Code: "EntityTooSmall", Message: "Your proposed upload is smaller than the minimum allowed object size: part " + strconv.Itoa(p.PartNumber) + " is " + strconv.FormatInt(up.size, 10) + " bytes, every part but the last must be at least 5 MiB."}
		}
	}
	return nil
}

// CompleteMultipartUpload implements gofakes3.MultipartBackend. The object's
// ETag is S3's multipart ETag: the MD5 of the parts' MD5s, "-", the part count.
func (b *fsBackend) CompleteMultipartUpload(bucket, key string, id gofakes3.UploadID, in *gofakes3.CompleteMultipartUploadRequest) (gofakes3.VersionID, string, error) {
	if e := b.checkParts(bucket, key, id, in.Parts); e != nil {
		return "", "", gofakes3.ErrorMessage(gofakes3.ErrInvalidPart, e.Message)
	}
	u, err := b.upload(bucket, key, id)
	if err != nil {
		return "", "", err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	f, err := b.createTemp("object-*")
	if err != nil {
		return "", "", fmt.Errorf("creating temporary file: %w", err)
	}
	etag := md5.New()
	for _, p := range in.Parts {
		if err = appendFile(f, u.partPath(p.PartNumber)); err != nil {
			break
		}
		etag.Write(u.parts[p.PartNumber].md5)
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", "", fmt.Errorf("assembling %s: %w", key, err)
	}
	tag := hex.EncodeToString(etag.Sum(nil)) + "-" + strconv.Itoa(len(in.Parts))
	if _, err := b.commit(bucket, key, f.Name(), tag, u.headers, originAPI, nil); err != nil {
		return "", "", err
	}
	b.upMu.Lock()
	delete(b.uploads, u.id)
	b.upMu.Unlock()
	os.RemoveAll(u.dir)
	return "", `"` + tag + `"`, nil
}

func appendFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
