package main

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/dataeng/rickmorty-pipeline/src/internal/awsclient"
	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
)

// The kinds of event `pipeline event` writes.
const (
	eventS3Put    = "s3-put"
	eventSQS      = "sqs"
	eventSchedule = "schedule"
)

// s3SenderID is the SenderId of the messages S3 sends to a queue.
const s3SenderID = "AIDAJHIPRHEMV73VRJEBU"

// eventOptions are the flags of `pipeline event`.
type eventOptions struct {
	keys       stringList
	bucket     string
	noLocal    bool
	anyVersion bool
	testEvent  bool
	detail     string
	function   string
	template   string
	now        func() time.Time
}

func eventCommand() *command {
	return &command{
		name:    "event",
		summary: "write an event in AWS's shape for real objects of the local stack (sam local generate-event with real values)",
		args:    "s3-put|sqs|schedule",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			o := &eventOptions{now: time.Now}
			fs.Var(&o.keys, "key", "object key (s3-put, sqs; may repeat: one record, or one message, per key)")
			fs.StringVar(&o.bucket, "bucket", "", "bucket of the objects (default: the local stack's; with --no-local, $BUCKET)")
			fs.BoolVar(&o.noLocal, "no-local", false, "read the objects with your AWS configuration (AWS_ENDPOINT_URL_S3, S3_FORCE_PATH_STYLE=true for MinIO) instead of the local stack")
			fs.BoolVar(&o.anyVersion, "any-version", false, "leave out eTag, versionId and sequencer: the event then names whatever version of the key is current when it runs")
			fs.BoolVar(&o.testEvent, "s3-test-event", false, "sqs: add the s3:TestEvent message S3 sends when a notification is configured")
			fs.StringVar(&o.detail, "detail", "{}", "schedule: the event's detail, a JSON object (e.g. {\"force\":true})")
			fs.StringVar(&o.function, "function", extractID, "schedule: the function whose Schedule rule the event names")
			fs.StringVar(&o.template, "template", "", "template.yaml (default: ./template.yaml or the nearest parent's)")
			return func(ctx context.Context) (result, error) {
				kind, err := g.oneArg(fs, fmt.Sprintf("name the event: pipeline event %s|%s|%s", eventS3Put, eventSQS, eventSchedule))
				if err != nil {
					return nil, err
				}
				return makeEvent(ctx, g, o, kind)
			}
		},
	}
}

// eventResult is the event, written as indented JSON either way.
type eventResult struct{ event any }

func (r *eventResult) Human(w io.Writer) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(r.event) //nolint:errcheck // as fmt.Fprint would
}

func (r *eventResult) MarshalJSON() ([]byte, error) { return json.Marshal(r.event) }

func makeEvent(ctx context.Context, g *globals, o *eventOptions, kind string) (result, error) {
	tpl, _, err := (&sourceFlags{template: o.template}).loadTemplate()
	if err != nil {
		return nil, err
	}
	switch kind {
	case eventSchedule:
		if len(o.keys) > 0 {
			return nil, errors.New("schedule: --key is for s3-put and sqs")
		}
		ev, err := o.schedule(tpl)
		if err != nil {
			return nil, err
		}
		return &eventResult{ev}, nil
	case eventS3Put, eventSQS:
	default:
		return nil, fmt.Errorf("unknown event %q: %s, %s or %s", kind, eventS3Put, eventSQS, eventSchedule)
	}
	if len(o.keys) == 0 && !(kind == eventSQS && o.testEvent) {
		return nil, fmt.Errorf("%s: give the objects with --key", kind)
	}
	if o.testEvent && kind != eventSQS {
		return nil, errors.New("--s3-test-event is for sqs")
	}
	notes, err := tpl.Notifications()
	if err != nil {
		return nil, err
	}
	b, region, closeStack, err := o.openBucket(ctx, g)
	if err != nil {
		return nil, err
	}
	defer closeStack()

	var records []map[string]any
	var targets []string
	for _, key := range o.keys {
		target := ""
		for _, n := range notes {
			if n.Matches("s3:ObjectCreated:Put", key) {
				target = n.Target
				break
			}
		}
		if kind == eventSQS && !isQueue(tpl, target) {
			return nil, fmt.Errorf("no notification of the template sends %s to a queue (to %q): an SQS event of it would never happen", key, target)
		}
		info, err := b.Head(ctx, key)
		if err != nil {
			return nil, err
		}
		rec := bucket.EventRecord(bucket.Created{Bucket: b.Name(), Key: key, Size: info.Size, ETag: info.ETag, VersionID: info.VersionID,
			Sequencer: fmt.Sprintf("%016X", info.LastModified.UnixNano()), ConfigID: target, Region: region, Time: info.LastModified})
		if o.anyVersion {
			rec.S3.Object.ETag, rec.S3.Object.VersionID, rec.S3.Object.Sequencer = "", "", ""
		}
		shaped, err := s3Shape(rec)
		if err != nil {
			return nil, err
		}
		records = append(records, shaped)
		targets = append(targets, target)
	}
	if kind == eventS3Put {
		if targets[0] == "" {
			fmt.Fprintf(g.stderr, "pipeline event: no notification of the template sends %s anywhere\n", o.keys[0])
		}
		return &eventResult{map[string]any{"Records": records}}, nil
	}

	var msgs []events.SQSMessage
	for i, rec := range records {
		body, err := json.Marshal(map[string]any{"Records": []any{rec}})
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, o.sqsMessage(string(body), queueARN(tpl, targets[i], region), region))
	}
	if o.testEvent {
		queue := "LoadQueue"
		if len(targets) > 0 {
			queue = targets[0]
		}
		body, err := json.Marshal(map[string]string{"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": o.now().UTC().Format("2006-01-02T15:04:05.000Z"),
			"Bucket": b.Name(), "RequestId": strings.ToUpper(randomHex(8)), "HostId": base64.StdEncoding.EncodeToString(randomBytes(56))})
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, o.sqsMessage(string(body), queueARN(tpl, queue, region), region))
	}
	return &eventResult{events.SQSEvent{Records: msgs}}, nil
}

// s3Shape is rec as S3 writes it: aws-lambda-go's type adds a
// urlDecodedKey that S3 never sends and empty fields S3 leaves out (the
// versionId of an unversioned bucket), and has no response elements.
func s3Shape(rec events.S3EventRecord) (map[string]any, error) {
	var m map[string]any
	b, err := json.Marshal(rec)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return nil, fmt.Errorf("shaping the S3 record of %s: %w", rec.S3.Object.Key, err)
	}
	obj, _ := samtemplate.Lookup(m, "s3", "object")
	if o, ok := obj.(map[string]any); ok {
		delete(o, "urlDecodedKey")
		for _, k := range []string{"versionId", "eTag", "sequencer"} {
			if o[k] == "" {
				delete(o, k)
			}
		}
	}
	m["responseElements"] = map[string]string{"x-amz-request-id": strings.ToUpper(randomHex(8)), "x-amz-id-2": base64.StdEncoding.EncodeToString(randomBytes(48))}
	return m, nil
}

// openBucket is the bucket the objects are read from: the local stack's, or
// with --no-local the one --bucket (or $BUCKET) names, through the caller's
// AWS configuration.
func (o *eventOptions) openBucket(ctx context.Context, g *globals) (*bucket.Bucket, string, func(), error) {
	if !o.noLocal {
		st, err := g.openStack(ctx, false)
		if err != nil {
			return nil, "", nil, err
		}
		name := st.Bucket
		if o.bucket != "" {
			name = o.bucket
		}
		return bucket.New(st.S3, name), samtemplate.LocalRegion, func() { st.Close() }, nil
	}
	name := o.bucket
	if name == "" {
		name = os.Getenv("BUCKET")
	}
	if name == "" {
		return nil, "", nil, errors.New("--no-local: name the bucket with --bucket (or BUCKET)")
	}
	cfg, err := awsclient.Load(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	pathStyle, _ := strconv.ParseBool(os.Getenv("S3_FORCE_PATH_STYLE"))
	region := cfg.Region
	if region == "" {
		region = samtemplate.LocalRegion
	}
	return bucket.New(s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle }), name), region, func() {}, nil
}

// sqsMessage is a message of the SQS event source's batch, as Lambda
// delivers it.
func (o *eventOptions) sqsMessage(body, queueARN, region string) events.SQSMessage {
	sum := md5.Sum([]byte(body))
	now := strconv.FormatInt(o.now().UnixMilli(), 10)
	return events.SQSMessage{
		MessageId: uuid.NewString(), ReceiptHandle: base64.StdEncoding.EncodeToString(randomBytes(96)), Body: body, Md5OfBody: hex.EncodeToString(sum[:]),
		Attributes:        map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": now, "SenderId": s3SenderID, "ApproximateFirstReceiveTimestamp": now},
		MessageAttributes: map[string]events.SQSMessageAttribute{}, EventSource: "aws:sqs", EventSourceARN: queueARN, AWSRegion: region,
	}
}

// schedule is the EventBridge scheduled event of the function's Schedule
// rule.
func (o *eventOptions) schedule(tpl *samtemplate.Template) (events.EventBridgeEvent, error) {
	var detail map[string]any
	if err := json.Unmarshal([]byte(o.detail), &detail); err != nil || detail == nil {
		return events.EventBridgeEvent{}, fmt.Errorf("--detail %q is not a JSON object", o.detail)
	}
	props, err := tpl.FunctionProperties(o.function)
	if err != nil {
		return events.EventBridgeEvent{}, err
	}
	rule := ""
	evs, _ := props["Events"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(evs)) {
		if m, _ := evs[name].(map[string]any); m["Type"] == "Schedule" {
			rule = o.function + name
			if v, ok := samtemplate.Lookup(m, "Properties", "Name"); ok {
				if s, err := tpl.ResolveString(v, samtemplate.LocalStack(nil)); err == nil {
					rule = s
				}
			}
			break
		}
	}
	if rule == "" {
		return events.EventBridgeEvent{}, fmt.Errorf("%s has no Schedule event in the template", o.function)
	}
	raw, _ := json.Marshal(detail)
	return events.EventBridgeEvent{Version: "0", ID: uuid.NewString(), DetailType: "Scheduled Event", Source: "aws.events",
		AccountID: samtemplate.LocalAccountID, Time: o.now().UTC().Truncate(time.Second), Region: samtemplate.LocalRegion,
		Resources: []string{fmt.Sprintf("arn:aws:events:%s:%s:rule/%s", samtemplate.LocalRegion, samtemplate.LocalAccountID, rule)},
		Detail:    raw}, nil
}

func isQueue(tpl *samtemplate.Template, id string) bool {
	r, ok := tpl.Resource(id)
	return ok && r.Type == "AWS::SQS::Queue"
}

// queueARN is the ARN of the template's queue id in the local stack: its
// QueueName, or the name CloudFormation would start it with.
func queueARN(tpl *samtemplate.Template, id, region string) string {
	name := samtemplate.LocalStackName + "-" + id
	if r, ok := tpl.Resource(id); ok {
		if v, ok := r.Properties["QueueName"]; ok {
			if s, err := tpl.ResolveString(v, samtemplate.LocalStack(nil)); err == nil && s != "" {
				name = s
			}
		}
	}
	return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", region, samtemplate.LocalAccountID, name)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
