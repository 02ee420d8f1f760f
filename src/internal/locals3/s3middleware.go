package locals3

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

// maxCompleteBody bounds the XML body of CompleteMultipartUpload (10,000
// parts take about 1 MB).
const maxCompleteBody = 4 << 20

// unsupportedSubresources are the object subresources gofakes3 does not know
// and would mistake for plain object operations.
var unsupportedSubresources = []string{"tagging", "acl", "retention", "legal-hold", "torrent", "restore", "select", "attributes"}

// s3Error is an S3 error response written by the middleware itself.
type s3Error struct {
	Status    int
	Code      string
	Message   string
	Condition string // the failed precondition header, for PreconditionFailed
}

func (e *s3Error) Error() string { return e.Code + ": " + e.Message }

func (e *s3Error) write(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return
	}
	body := struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string
		Message   string
		Condition string `xml:",omitempty"`
		Resource  string
	}{Code: e.Code, Message: e.Message, Condition: e.Condition, Resource: r.URL.Path}
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(body)
}

// ServeHTTP implements http.Handler: the S3 API with path-style addressing.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e := decodeAWSChunked(r); e != nil {
		e.write(w, r)
		return
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	if key != "" {
		for _, sub := range unsupportedSubresources {
			if q.Has(sub) {
				// gofakes3 would take PUT ?tagging for a PutObject and replace the object.
				(&s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented",
					Message: "The local S3 endpoint does not implement the ?" + sub + " subresource"}).write(w, r)
				return
			}
		}
	}
	switch {
	case key == "" || q.Has("uploads") || q.Has("versionId"):
		s.s3.ServeHTTP(w, r)
	case q.Has("uploadId"):
		if r.Method == http.MethodPost {
			s.write(w, r, bucket, key, EventMultipart)
			return
		}
		s.s3.ServeHTTP(w, r)
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		s.write(w, r, bucket, key, EventCopy)
	case r.Method == http.MethodPut:
		s.write(w, r, bucket, key, EventPut)
	case r.Method == http.MethodDelete:
		s.write(w, r, bucket, key, "")
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		if e := s.readCondition(r, bucket, key); e != nil {
			e.write(w, r)
			return
		}
		ew := &etagWriter{ResponseWriter: w}
		s.s3.ServeHTTP(ew, r)
		ew.fix()
	default:
		s.s3.ServeHTTP(w, r)
	}
}

// write handles a write to one key: it holds the key's lock while it checks
// the preconditions and gofakes3 writes, then announces the new version
// (event != "") before the client gets its response.
func (s *Server) write(w http.ResponseWriter, r *http.Request, bucket, key, event string) {
	unlock := s.locks.lock(bucket + "/" + key)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	if e := s.precheck(r, bucket, key, event); e != nil {
		e.write(w, r)
		return
	}
	rec := &bufferedResponse{header: w.Header()}
	s.s3.ServeHTTP(rec, r)
	var ev ObjectCreated
	announce := false
	if rec.code() == http.StatusOK && event != "" {
		info, ok, err := s.backend.head(bucket, key)
		if err != nil {
			s.log.Error("local S3: reading new object", "bucket", bucket, "key", key, "error", err)
		}
		if ok {
			announce = true
			ev = ObjectCreated{EventName: event, Bucket: bucket, Key: key, Size: info.Size, ETag: info.ETag,
				Sequencer: s.nextSequencer(), Time: info.ModTime.UTC(), Source: SourceAPI}
		}
	}
	unlock()
	locked = false
	if announce {
		s.emit(ev)
	}
	rec.flush(w)
}

// precheck runs the checks that gofakes3 lacks, under the key's lock.
func (s *Server) precheck(r *http.Request, bucket, key, event string) *s3Error {
	if event == "" {
		return nil
	}
	cond, e := putConditions(r.Header)
	if e != nil {
		return e
	}
	if cond != nil {
		cur, exists, err := s.backend.head(bucket, key)
		if err != nil {
			return nil // no such bucket, invalid key: gofakes3 answers
		}
		if name := failedCondition(cond, cur, exists); name != "" {
			return &s3Error{Status: http.StatusPreconditionFailed, Code: "PreconditionFailed",
				Message: "At least one of the pre-conditions you specified did not hold", Condition: name}
		}
		// Checked; gofakes3 must not read them as GET conditions.
		r.Header.Del("If-None-Match")
		r.Header.Del("If-Match")
	}
	switch event {
	case EventCopy:
		srcBucket, srcKey := copySource(r.Header.Get("X-Amz-Copy-Source"))
		if want := r.Header.Get("X-Amz-Copy-Source-If-Match"); want != "" {
			// Checked against the source as it is now (the source's key is not
			// locked: a write racing this copy may still win, as the
			// local stack does not keep versions).
			if cur, ok, err := s.backend.head(srcBucket, srcKey); err == nil && ok && !etagMatches(want, cur.ETag) {
				return &s3Error{Status: http.StatusPreconditionFailed, Code: "PreconditionFailed",
					Message: "At least one of the pre-conditions you specified did not hold", Condition: "x-amz-copy-source-If-Match"}
			}
			r.Header.Del("X-Amz-Copy-Source-If-Match")
		}
		replace := strings.EqualFold(r.Header.Get("X-Amz-Metadata-Directive"), "REPLACE")
		if srcBucket == bucket && srcKey == key && !replace {
			return &s3Error{Status: http.StatusBadRequest, Code: "InvalidRequest",
				Message: "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."}
		}
		var names []string
		for k := range r.Header {
			if strings.HasPrefix(k, "X-Amz-Meta-") || isStoredHeader(k) {
				names = append(names, k)
			}
		}
		r.Header.Set(requestHeadersHeader, strings.Join(names, ","))
	case EventMultipart:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxCompleteBody))
		if err != nil {
			return &s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: err.Error()}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var in gofakes3.CompleteMultipartUploadRequest
		if xml.Unmarshal(body, &in) != nil {
			return nil // gofakes3 answers MalformedXML
		}
		if e := s.backend.checkParts(bucket, key, gofakes3.UploadID(r.URL.Query().Get("uploadId")), in.Parts); e != nil {
			return e
		}
	}
	return nil
}

// readCondition answers 412 to a GET or HEAD whose If-Match names another
// ETag than the object's (gofakes3 ignores the header).
func (s *Server) readCondition(r *http.Request, bucket, key string) *s3Error {
	want := r.Header.Get("If-Match")
	if want == "" {
		return nil
	}
	cur, ok, err := s.backend.head(bucket, key)
	if err != nil || !ok {
		return nil // gofakes3 answers NoSuchBucket or NoSuchKey
	}
	r.Header.Del("If-Match")
	if etagMatches(want, cur.ETag) {
		return nil
	}
	return &s3Error{Status: http.StatusPreconditionFailed, Code: "PreconditionFailed",
		Message: "At least one of the pre-conditions you specified did not hold", Condition: "If-Match"}
}

// etagMatches reports whether an If-Match value (one ETag or "*") names etag.
func etagMatches(want, etag string) bool {
	want = strings.TrimSpace(want)
	return want == "*" || strings.Trim(want, `"`) == strings.Trim(etag, `"`)
}

func isStoredHeader(k string) bool {
	for _, h := range storedHeaders {
		if h == k {
			return true
		}
	}
	return false
}

// putConditions reads If-None-Match and If-Match of a write. Like S3, it
// accepts only "*" for If-None-Match.
func putConditions(h http.Header) (*gofakes3.PutConditions, *s3Error) {
	var cond gofakes3.PutConditions
	if v := h.Get("If-None-Match"); v != "" {
		if v != "*" {
			return nil, &s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented",
				Message: "A header you provided implies functionality that is not implemented: If-None-Match accepts only *"}
		}
		cond.IfNoneMatch = &v
	}
	if v := h.Get("If-Match"); v != "" {
		cond.IfMatch = &v
	}
	if cond.IfNoneMatch == nil && cond.IfMatch == nil {
		return nil, nil
	}
	return &cond, nil
}

// copySource parses X-Amz-Copy-Source ("[/]bucket/key[?versionId=...]",
// URL-encoded) as gofakes3 does.
func copySource(v string) (bucket, key string) {
	bucket, key, ok := strings.Cut(strings.TrimPrefix(v, "/"), "/")
	if !ok {
		if dec, err := url.QueryUnescape(v); err == nil {
			bucket, key, _ = strings.Cut(strings.TrimPrefix(dec, "/"), "/")
			return bucket, strings.SplitN(key, "?", 2)[0]
		}
	}
	key = strings.SplitN(key, "?", 2)[0]
	if dec, err := url.QueryUnescape(key); err == nil {
		key = dec
	}
	return bucket, key
}

// bufferedResponse holds gofakes3's response until the event is announced.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

func (b *bufferedResponse) code() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

func (b *bufferedResponse) flush(w http.ResponseWriter) {
	w.Header().Set("Content-Length", strconv.Itoa(b.body.Len()))
	w.WriteHeader(b.code())
	w.Write(b.body.Bytes())
}

// etagWriter puts the ETag of a multipart object, which the backend passes
// in etagHeader, into the ETag header of a GET or HEAD response.
type etagWriter struct {
	http.ResponseWriter
	fixed bool
}

func (e *etagWriter) fix() {
	if e.fixed {
		return
	}
	e.fixed = true
	h := e.Header()
	if v := h.Get(etagHeader); v != "" {
		h.Set("ETag", v)
	}
	h.Del(etagHeader)
}

func (e *etagWriter) WriteHeader(code int) {
	e.fix()
	e.ResponseWriter.WriteHeader(code)
}

func (e *etagWriter) Write(p []byte) (int, error) {
	e.fix()
	return e.ResponseWriter.Write(p)
}

// decodeAWSChunked turns an aws-chunked upload (SigV4 streaming, signed or
// unsigned, with or without trailing checksums) into a plain body, which
// gofakes3 only partly understands. Chunk signatures and trailing checksums
// are not verified.
func decodeAWSChunked(r *http.Request) *s3Error {
	sha := r.Header.Get("X-Amz-Content-Sha256")
	chunked := strings.HasPrefix(sha, "STREAMING-")
	for _, ce := range r.Header.Values("Content-Encoding") {
		chunked = chunked || strings.Contains(strings.ToLower(ce), "aws-chunked")
	}
	if !chunked || r.Method != http.MethodPut {
		return nil
	}
	size, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
	if err != nil || size < 0 {
		return &s3Error{Status: http.StatusLengthRequired, Code: "MissingContentLength", Message: "You must provide the X-Amz-Decoded-Content-Length HTTP header for aws-chunked uploads."}
	}
	r.Body = readCloser{&awsChunkedReader{r: bufio.NewReader(r.Body), size: size}, r.Body}
	r.ContentLength = size
	r.Header.Set("Content-Length", strconv.FormatInt(size, 10))
	r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	r.Header.Del("X-Amz-Decoded-Content-Length")
	r.Header.Del("X-Amz-Trailer")
	if ce := removeToken(strings.Join(r.Header.Values("Content-Encoding"), ","), "aws-chunked"); ce != "" {
		r.Header.Set("Content-Encoding", ce)
	} else {
		r.Header.Del("Content-Encoding")
	}
	return nil
}

// awsChunkedReader decodes "<hex size>[;chunk-signature=...]\r\n<data>\r\n"
// chunks up to the zero-size chunk and its trailer lines.
type awsChunkedReader struct {
	r      *bufio.Reader
	size   int64 // declared decoded size
	read   int64
	left   int64 // bytes left in the current chunk
	inside bool  // a chunk's data has been read: its CRLF follows
	done   bool
}

var errChunkFormat = errors.New("malformed aws-chunked body")

func (c *awsChunkedReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			if c.read != c.size {
				return 0, fmt.Errorf("%w: %d bytes decoded, %d declared", errChunkFormat, c.read, c.size)
			}
			return 0, io.EOF
		}
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	c.read += int64(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (c *awsChunkedReader) line() (string, error) {
	var b strings.Builder
	for {
		part, isPrefix, err := c.r.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		b.Write(part)
		if b.Len() > 64<<10 {
			return "", errChunkFormat
		}
		if !isPrefix {
			return b.String(), nil
		}
	}
}

func (c *awsChunkedReader) next() error {
	if c.inside {
		if l, err := c.line(); err != nil || l != "" {
			return errChunkFormat
		}
		c.inside = false
	}
	l, err := c.line()
	if err != nil {
		return err
	}
	hexSize, _, _ := strings.Cut(l, ";")
	n, err := strconv.ParseInt(strings.TrimSpace(hexSize), 16, 64)
	if err != nil || n < 0 {
		return errChunkFormat
	}
	if n > 0 {
		c.left, c.inside = n, true
		return nil
	}
	// Trailer lines (x-amz-checksum-*, x-amz-trailer-signature) up to an
	// empty line or the end of the body.
	for {
		l, err := c.line()
		if errors.Is(err, io.ErrUnexpectedEOF) || (err == nil && l == "") {
			break
		}
		if err != nil {
			return err
		}
		if name, _, ok := strings.Cut(l, ":"); !ok || textproto.TrimString(name) == "" {
			return errChunkFormat
		}
	}
	c.done = true
	return nil
}
