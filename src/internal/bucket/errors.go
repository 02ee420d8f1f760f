package bucket

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// What an S3 error means to the pipeline. Every error a Bucket returns
// wraps at most one of them (test with errors.Is); an error that wraps none
// is an unexpected failure, to be retried like ErrUnavailable.
var (
	// ErrGone: the object, or the version asked for, does not exist (it was
	// deleted or overwritten after its notification). Nothing to do.
	ErrGone = errors.New("object or version gone")
	// ErrNoBucket: the bucket does not exist (a typo, a deleted bucket, a
	// wrong account). Never read as "gone": the data is not lost.
	ErrNoBucket = errors.New("bucket missing")
	// ErrDenied: access denied (a policy, credentials, KMS). Never "gone".
	ErrDenied = errors.New("access denied")
	// ErrUnavailable: throttled, or S3 unavailable or unreachable; retry.
	ErrUnavailable = errors.New("throttled or unavailable")
	// ErrPrecondition: a conditional request lost (If-Match,
	// If-None-Match), or a concurrent conditional write to the key won.
	ErrPrecondition = errors.New("precondition failed")
)

// Error is an S3 request that failed: what was being done, to which object,
// what it means, and the SDK's own error.
type Error struct {
	Op      string // "getting", "putting", ...
	Bucket  string
	Key     string // empty: the bucket itself
	From    string // copies: the source key
	Meaning error  // one of the Err* values, or nil
	Err     error
}

func (e *Error) Error() string {
	where := "s3://" + e.Bucket + "/" + e.Key
	switch {
	case e.From == e.Key && e.From != "":
		where += " onto itself"
	case e.From != "":
		where = "s3://" + e.Bucket + "/" + e.From + " to " + where
	}
	if e.Meaning == nil {
		return fmt.Sprintf("%s %s: %v", e.Op, where, e.Err)
	}
	if e.Meaning == ErrNoBucket {
		return fmt.Sprintf("%s %s: bucket %q does not exist: %v", e.Op, where, e.Bucket, e.Err)
	}
	return fmt.Sprintf("%s %s: %v: %v", e.Op, where, e.Meaning, e.Err)
}

// Unwrap gives errors.Is and errors.As both the meaning and the SDK's error.
func (e *Error) Unwrap() []error {
	if e.Meaning == nil {
		return []error{e.Err}
	}
	return []error{e.Meaning, e.Err}
}

// classify returns the meaning of an S3 error, or nil when it has none of
// them. A 404 without an error code (HEAD responses have no body) is
// ambiguous between a missing object and a missing bucket: notFound is
// returned for it, and the caller asks the bucket.
func classify(err error) (meaning error, ambiguous404 bool) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil, false // the caller stopped: not S3's answer
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NoSuchVersion":
			return ErrGone, false
		case "NoSuchBucket":
			return ErrNoBucket, false
		case "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
			"AccountProblem", "InvalidObjectState", "KMS.AccessDeniedException":
			return ErrDenied, false
		case "PreconditionFailed", "ConditionalRequestConflict":
			return ErrPrecondition, false
		case "SlowDown", "SlowDownWrite", "SlowDownRead", "ServiceUnavailable", "InternalError",
			"RequestTimeout", "Throttling", "ThrottlingException", "RequestLimitExceeded", "XMinioServerNotInitialized":
			return ErrUnavailable, false
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch s := re.HTTPStatusCode(); {
		case s == 0: // no response: the request could not be sent
			return ErrUnavailable, false
		case s == http.StatusNotFound:
			return nil, true
		case s == http.StatusForbidden:
			return ErrDenied, false
		case s == http.StatusPreconditionFailed:
			return ErrPrecondition, false
		case s == http.StatusTooManyRequests || s >= 500:
			return ErrUnavailable, false
		}
		return nil, false
	}
	// No HTTP response at all: the endpoint is unreachable, or the request
	// timed out; the SDK has already retried.
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		return ErrUnavailable, false
	}
	return nil, false
}
