package bucket

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// EncodeKey encodes a key as S3 event notifications carry it: form encoding
// of each segment (a space becomes "+"), slashes kept. aws-lambda-go's
// URLDecodedKey reverses it.
func EncodeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.QueryEscape(s)
	}
	return strings.Join(segs, "/")
}

// CopySource is the x-amz-copy-source of an object: bucket/key with the key
// URL-encoded byte by byte, everything but unreserved characters and '/'
// (a '+' left alone reads as a space on some servers), and the version when
// there is one ("null" is S3's name for none).
func CopySource(bucket, key, versionID string) string {
	var b strings.Builder
	b.WriteString(bucket)
	b.WriteByte('/')
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if versionID != "" && versionID != "null" {
		b.WriteString("?versionId=" + url.QueryEscape(versionID))
	}
	return b.String()
}

// Created describes a new object version as S3 announces it.
type Created struct {
	Bucket    string
	Key       string
	Size      int64
	ETag      string // with or without quotes
	VersionID string // empty or "null": unversioned
	Sequencer string
	EventName string // default "ObjectCreated:Put"
	ConfigID  string // the notification configuration's id
	Region    string // default us-east-1
	Time      time.Time
}

// EventRecord is the S3 event notification record of c, in the shape S3
// sends (key form-encoded, ETag unquoted, no versionId when unversioned).
func EventRecord(c Created) events.S3EventRecord {
	if c.EventName == "" {
		c.EventName = "ObjectCreated:Put"
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.VersionID == "null" {
		c.VersionID = ""
	}
	return events.S3EventRecord{
		EventVersion:      "2.1",
		EventSource:       "aws:s3",
		AWSRegion:         c.Region,
		EventTime:         c.Time.UTC(),
		EventName:         c.EventName,
		PrincipalID:       events.S3UserIdentity{PrincipalID: "local"},
		RequestParameters: events.S3RequestParameters{SourceIPAddress: "127.0.0.1"},
		S3: events.S3Entity{
			SchemaVersion:   "1.0",
			ConfigurationID: c.ConfigID,
			Bucket:          events.S3Bucket{Name: c.Bucket, OwnerIdentity: events.S3UserIdentity{PrincipalID: "local"}, Arn: "arn:aws:s3:::" + c.Bucket},
			Object: events.S3Object{Key: EncodeKey(c.Key), Size: c.Size, ETag: strings.Trim(c.ETag, `"`),
				VersionID: c.VersionID, Sequencer: c.Sequencer},
		},
	}
}
