package locals3

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
)

// Credentials and region to use with the local S3 endpoint. The endpoint does
// not check signatures, so any access key works; these are the ones that
// Server.AWSConfig, Server.Client and Server.Env hand out.
const (
	AccessKeyID     = "local"
	SecretAccessKey = "localsecret"
	Region          = "us-east-1"
)

// Event names of ObjectCreated, as in S3 event notifications.
const (
	EventPut       = "ObjectCreated:Put"
	EventCopy      = "ObjectCreated:Copy"
	EventMultipart = "ObjectCreated:CompleteMultipartUpload"
)

// Origins of an ObjectCreated event.
const (
	SourceAPI    = "api"    // written through the S3 endpoint
	SourceFolder = "folder" // copied into the folder by someone else; see Watcher
)

// staleScratch is the age after which a scratch folder left by another
// process (one that was killed) is removed at start.
const staleScratch = 24 * time.Hour

// Options configures Start.
type Options struct {
	// DataDir holds the objects under DataDir/s3/<bucket>/<key>, their
	// metadata under DataDir/s3meta and unfinished writes under DataDir/s3tmp.
	DataDir string
	// Bucket is created when missing. Other buckets may be created by clients.
	Bucket string
	// Addr is the listen address; default "127.0.0.1:0" (a free port).
	Addr string
	// Logger receives the endpoint's internal errors; nil discards them.
	Logger *slog.Logger
}

// ObjectCreated describes one new object version, like the record of an S3
// event notification.
type ObjectCreated struct {
	EventName string    // EventPut, EventCopy or EventMultipart
	Bucket    string    //
	Key       string    // plain, not URL-encoded (S3 events carry it URL-encoded)
	Size      int64     //
	ETag      string    // without quotes, as in S3 events
	Sequencer string    // 16 hex digits; orders the events of one key, as in S3 events
	Time      time.Time // when the object was committed (its LastModified)
	Source    string    // SourceAPI or SourceFolder
}

// Server is an S3-compatible HTTP endpoint (path-style addressing) backed by
// plain files: the object s3://<bucket>/<key> is the file
// <DataDir>/s3/<bucket>/<key>, holding exactly its bytes.
//
// The S3 protocol is gofakes3's; in front of it (ServeHTTP) the Server adds
// conditional writes (If-None-Match: * and If-Match on PutObject, CopyObject
// and CompleteMultipartUpload, atomic per key), decoding of aws-chunked
// uploads, S3's checks on CompleteMultipartUpload and on copying an object
// onto itself, and ObjectCreated notifications. One Server per data dir at a
// time: conditional writes are atomic within one process only.
type Server struct {
	dataDir  string
	bucket   string
	backend  *fsBackend
	s3       http.Handler
	http     *http.Server
	endpoint string
	served   chan error
	log      *slog.Logger

	locks keyLocks
	seq   atomic.Uint64

	hookMu sync.Mutex
	hooks  []func(ObjectCreated)

	connMu sync.Mutex
	unused map[net.Conn]bool // connections in http.StateNew

	closeOnce sync.Once
	closeErr  error
}

// Start creates the folders and the bucket if needed and starts serving on
// Options.Addr. ctx bounds the start only; stop the server with Close.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("starting local S3: no data dir")
	}
	if err := gofakes3.ValidateBucketName(opts.Bucket); err != nil {
		return nil, fmt.Errorf("starting local S3: bucket %q: %w", opts.Bucket, err)
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root := filepath.Join(opts.DataDir, "s3")
	metaDir := filepath.Join(opts.DataDir, "s3meta")
	scratch := filepath.Join(opts.DataDir, "s3tmp")
	for _, d := range []string{root, metaDir, scratch} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("starting local S3: %w", err)
		}
	}
	removeStale(scratch, time.Now().Add(-staleScratch))
	tmpDir, err := os.MkdirTemp(scratch, "run-")
	if err != nil {
		return nil, fmt.Errorf("starting local S3: %w", err)
	}
	backend := newFSBackend(root, metaDir, tmpDir)
	if err := backend.CreateBucket(opts.Bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
		os.RemoveAll(tmpDir)
		return nil, fmt.Errorf("starting local S3: %w", err)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		os.RemoveAll(tmpDir)
		return nil, fmt.Errorf("starting local S3: %w", err)
	}
	s := &Server{
		dataDir:  opts.DataDir,
		bucket:   opts.Bucket,
		backend:  backend,
		endpoint: "http://" + ln.Addr().String(),
		served:   make(chan error, 1),
		log:      log,
	}
	s.seq.Store(uint64(time.Now().UnixNano()))
	s.s3 = gofakes3.New(backend,
		gofakes3.WithoutVersioning(),
		gofakes3.WithLogger(slogLogger{log}),
	).Server()
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState:         s.trackConn,
	}
	go func() { s.served <- s.http.Serve(ln) }()
	return s, nil
}

// removeStale removes the scratch folders of earlier processes not touched since before.
func removeStale(scratch string, before time.Time) {
	entries, _ := os.ReadDir(scratch)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(before) {
			os.RemoveAll(filepath.Join(scratch, e.Name()))
		}
	}
}

// Endpoint returns the base URL of the endpoint, http://127.0.0.1:PORT.
func (s *Server) Endpoint() string { return s.endpoint }

// Bucket returns the bucket named in Options.
func (s *Server) Bucket() string { return s.bucket }

// Dir returns the folder that holds the objects of bucket.
func (s *Server) Dir(bucket string) string { return filepath.Join(s.dataDir, "s3", bucket) }

// AWSConfig returns an SDK configuration for the endpoint: its BaseEndpoint,
// static credentials (AccessKeyID, SecretAccessKey), Region, and checksums
// computed and validated only when an operation requires them. Use it with
// s3.NewFromConfig and UsePathStyle = true, or call Client.
func (s *Server) AWSConfig() aws.Config {
	return aws.Config{
		Region:                     Region,
		Credentials:                credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		BaseEndpoint:               aws.String(s.endpoint),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
}

// Client returns an S3 client for the endpoint with path-style addressing.
func (s *Server) Client(optFns ...func(*s3.Options)) *s3.Client {
	return s3.NewFromConfig(s.AWSConfig(), append([]func(*s3.Options){func(o *s3.Options) { o.UsePathStyle = true }}, optFns...)...)
}

// Env returns the environment ("KEY=value") that points the AWS SDKs and CLI,
// and the pipeline's handlers, at the endpoint: AWS_ENDPOINT_URL_S3,
// credentials, region, "when required" checksums, S3_FORCE_PATH_STYLE and
// BUCKET.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_S3=" + s.endpoint,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_REGION=" + Region,
		"AWS_REQUEST_CHECKSUM_CALCULATION=when_required",
		"AWS_RESPONSE_CHECKSUM_VALIDATION=when_required",
		"S3_FORCE_PATH_STYLE=true",
		"BUCKET=" + s.bucket,
	}
}

// OnObjectCreated registers fn to be called for every new object version: a
// successful PutObject, CopyObject or CompleteMultipartUpload, and a file
// that a Watcher finds in the folder. For writes through the endpoint, fn is
// called after the object is in place and before the client gets its
// response, so when a PUT returns, its event has been handled. fn may be
// called from several goroutines at once and must return quickly (hand the
// event to a queue); it may use the endpoint.
func (s *Server) OnObjectCreated(fn func(ObjectCreated)) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	s.hooks = append(s.hooks, fn)
}

func (s *Server) emit(ev ObjectCreated) {
	s.hookMu.Lock()
	hooks := slices.Clone(s.hooks)
	s.hookMu.Unlock()
	for _, fn := range hooks {
		fn(ev)
	}
}

func (s *Server) nextSequencer() string {
	return fmt.Sprintf("%016X", s.seq.Add(1))
}

// Close stops the endpoint gracefully: it stops accepting connections, waits
// up to 10 seconds for requests in flight, and removes unfinished uploads.
// Objects are never half-written, even when the process is killed.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.closeUnused()
		err := s.http.Shutdown(ctx)
		if err != nil {
			s.http.Close()
		}
		if serr := <-s.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		if rerr := os.RemoveAll(s.backend.tmpDir); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
		if err != nil {
			s.closeErr = fmt.Errorf("closing local S3: %w", err)
		}
	})
	return s.closeErr
}

// trackConn remembers the connections that have not carried a request yet.
func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.unused == nil {
		s.unused = map[net.Conn]bool{}
	}
	if state == http.StateNew {
		s.unused[c] = true
	} else {
		delete(s.unused, c)
	}
}

// closeUnused closes the connections no request has used. An HTTP client
// often dials one it ends up not needing; Shutdown would wait five seconds
// for each such connection before treating it as idle.
func (s *Server) closeUnused() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c := range s.unused {
		c.Close()
	}
}

// slogLogger adapts slog to gofakes3.Logger; only errors are logged.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Print(level gofakes3.LogLevel, v ...any) {
	if level == gofakes3.LogErr {
		l.log.Error("local S3 error", "error", strings.TrimSpace(fmt.Sprintln(v...)))
	}
}

// keyLocks serializes writes to one key.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func (l *keyLocks) lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*keyLock)
	}
	k := l.m[key]
	if k == nil {
		k = &keyLock{}
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()
	k.mu.Lock()
	return func() {
		k.mu.Unlock()
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
}
