package bucket

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// API lists the S3 operations a Bucket uses; *s3.Client has them.
type API interface {
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, optFns ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, optFns ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// Bucket is one S3 bucket as the pipeline uses it. Its errors are *Error,
// naming the object and wrapping what S3's answer means (ErrGone,
// ErrNoBucket, ...).
type Bucket struct {
	api  API
	name string
}

// New returns the bucket called name, reached through api (an *s3.Client).
func New(api API, name string) *Bucket {
	return &Bucket{api: api, name: name}
}

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// URL is s3://bucket/key, for messages.
func (b *Bucket) URL(key string) string { return "s3://" + b.name + "/" + key }

// fail wraps err, the failure of op on key, with its meaning. A 404 with no
// error code (a HEAD's) is a missing object unless the bucket is missing.
func (b *Bucket) fail(ctx context.Context, op, key string, err error) error {
	meaning, ambiguous := classify(err)
	if ambiguous {
		meaning = ErrGone
		if _, herr := b.api.HeadBucket(context.WithoutCancel(ctx), &s3.HeadBucketInput{Bucket: aws.String(b.name)}); herr != nil {
			if m, amb := classify(herr); m == ErrNoBucket || amb {
				meaning = ErrNoBucket
			}
		}
	}
	return &Error{Op: op, Bucket: b.name, Key: key, Meaning: meaning, Err: err}
}

// Info describes a stored object version.
type Info struct {
	Key          string
	Size         int64
	ETag         string // as S3 gives it, quoted
	VersionID    string // empty when the bucket is not versioned
	LastModified time.Time
	Metadata     map[string]string
	// Headers stored with the object (Head fills them all, Get the type).
	ContentType, ContentEncoding, ContentDisposition, ContentLanguage, CacheControl string
	StorageClass                                                                    types.StorageClass
}

// Meta returns the user metadata called name, whatever its case (servers
// and SDK versions differ in how they case x-amz-meta-* names).
func (i Info) Meta(name string) string {
	if v, ok := i.Metadata[name]; ok {
		return v
	}
	for k, v := range i.Metadata {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// Version selects the version of an object to read: by id, else the one
// with this ETag (If-Match), else the current one.
type Version struct {
	ID   string
	ETag string
}

func versionless(id string) bool { return id == "" || id == "null" }

// QuoteETag returns e in quotes, as If-Match wants it.
func QuoteETag(e string) string { return `"` + strings.Trim(e, `"`) + `"` }

// Head returns what is stored at key.
func (b *Bucket) Head(ctx context.Context, key string) (Info, error) {
	out, err := b.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
	if err != nil {
		return Info{}, b.fail(ctx, "checking", key, err)
	}
	return Info{
		Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId),
		LastModified: aws.ToTime(out.LastModified), Metadata: out.Metadata,
		ContentType: aws.ToString(out.ContentType), ContentEncoding: aws.ToString(out.ContentEncoding),
		ContentDisposition: aws.ToString(out.ContentDisposition), ContentLanguage: aws.ToString(out.ContentLanguage),
		CacheControl: aws.ToString(out.CacheControl), StorageClass: types.StorageClass(out.StorageClass),
	}, nil
}

// Exists reports whether an object is stored at key.
func (b *Bucket) Exists(ctx context.Context, key string) (bool, error) {
	_, err := b.Head(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrGone):
		return false, nil
	}
	return false, err
}

// Get opens version v of key. The caller closes the body.
func (b *Bucket) Get(ctx context.Context, key string, v Version) (io.ReadCloser, Info, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)}
	switch {
	case !versionless(v.ID):
		in.VersionId = aws.String(v.ID)
	case v.ETag != "":
		in.IfMatch = aws.String(QuoteETag(v.ETag))
	}
	out, err := b.api.GetObject(ctx, in)
	if err != nil {
		return nil, Info{}, b.fail(ctx, "getting", key, err)
	}
	info := Info{
		Key: key, Size: -1, ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId),
		ContentType: aws.ToString(out.ContentType), LastModified: aws.ToTime(out.LastModified), Metadata: out.Metadata,
	}
	if out.ContentLength != nil {
		info.Size = *out.ContentLength
	}
	if versionless(v.ID) && v.ETag != "" && strings.Trim(info.ETag, `"`) != strings.Trim(v.ETag, `"`) {
		// A server that ignores If-Match served another version.
		out.Body.Close()
		return nil, Info{}, &Error{Op: "getting", Bucket: b.name, Key: key, Meaning: ErrPrecondition,
			Err: fmt.Errorf("the object's ETag is %s, not %s", info.ETag, QuoteETag(v.ETag))}
	}
	return out.Body, info, nil
}

// ReadAll returns the content of key (current version), at most limit bytes.
func (b *Bucket) ReadAll(ctx context.Context, key string, limit int64) ([]byte, Info, error) {
	body, info, err := b.Get(ctx, key, Version{})
	if err != nil {
		return nil, Info{}, err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, Info{}, &Error{Op: "reading", Bucket: b.name, Key: key, Meaning: ErrUnavailable, Err: err}
	}
	if int64(len(data)) > limit {
		return nil, Info{}, &Error{Op: "reading", Bucket: b.name, Key: key, Err: fmt.Errorf("larger than %d bytes", limit)}
	}
	return data, info, nil
}

// PutOptions are the headers of a put.
type PutOptions struct {
	ContentType string
	Metadata    map[string]string
	// IfMatch stores only if the object still has this ETag; IfNoneMatch
	// only if there is no object (ErrPrecondition otherwise).
	IfMatch     string
	IfNoneMatch bool
}

// unsignedPayload skips SigV4's SHA-256 of a body whose integrity S3
// checks through Content-MD5 instead (one hash, not two).
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

func contentMD5(p []byte) *string {
	sum := md5.Sum(p)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

// Put stores body at key, checked by S3 against its MD5, and returns the
// new ETag.
func (b *Bucket) Put(ctx context.Context, key string, body []byte, o PutOptions) (string, error) {
	in := &s3.PutObjectInput{
		Bucket: aws.String(b.name), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentMD5: contentMD5(body), Metadata: o.Metadata,
	}
	if o.ContentType != "" {
		in.ContentType = aws.String(o.ContentType)
	}
	switch {
	case o.IfNoneMatch:
		in.IfNoneMatch = aws.String("*")
	case o.IfMatch != "":
		in.IfMatch = aws.String(QuoteETag(o.IfMatch))
	}
	out, err := b.api.PutObject(ctx, in, unsignedPayload)
	if err != nil {
		return "", b.fail(ctx, "putting", key, err)
	}
	return aws.ToString(out.ETag), nil
}

// Delete removes key (nothing when it does not exist).
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if _, err := b.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)}); err != nil {
		return b.fail(ctx, "deleting", key, err)
	}
	return nil
}

// CopyOptions say how Copy treats the copy's headers.
type CopyOptions struct {
	// ReplaceWith, when set, gives the copy these headers and metadata
	// (S3's MetadataDirective REPLACE, which copying an object onto itself
	// needs); otherwise the source's are copied.
	ReplaceWith *Info
}

// Copy copies version src of srcKey to dst. Without a version id the copy
// is made only if the source still has src.ETag (when given):
// ErrPrecondition otherwise.
func (b *Bucket) Copy(ctx context.Context, srcKey string, src Version, dst string, o CopyOptions) (string, error) {
	in := &s3.CopyObjectInput{
		Bucket: aws.String(b.name), Key: aws.String(dst),
		CopySource: aws.String(CopySource(b.name, srcKey, src.ID)),
	}
	if versionless(src.ID) && src.ETag != "" {
		in.CopySourceIfMatch = aws.String(QuoteETag(src.ETag))
	}
	if h := o.ReplaceWith; h != nil {
		in.MetadataDirective = types.MetadataDirectiveReplace
		in.Metadata = h.Metadata
		in.ContentType = nonEmpty(h.ContentType)
		in.ContentEncoding = nonEmpty(h.ContentEncoding)
		in.ContentDisposition = nonEmpty(h.ContentDisposition)
		in.ContentLanguage = nonEmpty(h.ContentLanguage)
		in.CacheControl = nonEmpty(h.CacheControl)
		in.StorageClass = h.StorageClass // empty (STANDARD) unless another class
	}
	out, err := b.api.CopyObject(ctx, in)
	if err != nil {
		e := b.fail(ctx, "copying", dst, err).(*Error)
		e.From = srcKey
		return "", e
	}
	if out.CopyObjectResult != nil {
		return aws.ToString(out.CopyObjectResult.ETag), nil
	}
	return "", nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// List calls fn with every object under prefix, in key order.
func (b *Bucket) List(ctx context.Context, prefix string, fn func(Info) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(b.name), Prefix: aws.String(prefix)}
	for {
		out, err := b.api.ListObjectsV2(ctx, in)
		if err != nil {
			return b.fail(ctx, "listing", prefix, err)
		}
		for _, o := range out.Contents {
			if err := fn(Info{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag),
				LastModified: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}
