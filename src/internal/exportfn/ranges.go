package exportfn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
)

// HandleRanges is the range worker (ExportRangeFunction): each message of
// the range queue names one range of a fanned-out run, which it exports
// into its part files; the worker that stores a run's last range moves the
// table's watermark. A message that failed is reported in
// batchItemFailures, so SQS delivers it again and, after maxReceiveCount,
// dead-letters it; a message that cannot be read, or names a run that does
// not exist, fails every time and ends in the dead-letter queue too, where
// the alarm shows it.
func (h *Handler) HandleRanges(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	db, err := h.db.DB(ctx)
	if err != nil {
		h.log.ErrorContext(ctx, "range worker: no database", "error", err.Error(), "messages", len(ev.Records))
		return resp, fmt.Errorf("range worker: %w", err)
	}
	for _, rec := range ev.Records {
		fail := func(err error, attrs ...any) {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
			h.log.ErrorContext(ctx, "range export failed", append(attrs, "message_id", rec.MessageId, "error", err.Error())...)
		}
		m, err := ParseRangeMessage(rec.Body)
		if err != nil {
			fail(err)
			continue
		}
		e := &export.Exporter{
			DB: db, Bucket: h.bucket, Prefix: h.cfg.Prefix, ChunkRows: h.cfg.ChunkRows, RowGroupRows: h.cfg.RowGroupRows,
			Compression: h.cfg.Compression, DeadlineMargin: h.cfg.DeadlineMargin, Now: h.Now,
		}
		res := e.ExportRange(ctx, m)
		attrs := []any{"table", m.Table, "run", m.Run, "range", m.Range, "status", res.Status, "rows", res.Rows,
			"files", res.Files, "duration_ms", res.Duration.Milliseconds(), "receive_count", rec.Attributes["ApproximateReceiveCount"]}
		if err := res.Err(); err != nil {
			fail(err, attrs...)
			continue
		}
		h.log.InfoContext(ctx, "range exported", attrs...)
	}
	return resp, nil
}

// ParseRangeMessage reads a range queue message body strictly: the three
// fields of export.RangeMessage and nothing else.
func ParseRangeMessage(body string) (export.RangeMessage, error) {
	var m export.RangeMessage
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || dec.More() {
		return m, fmt.Errorf("range message %.80q: not {\"table\":...,\"run\":...,\"range\":n}", body)
	}
	if m.Table == "" || m.Run == "" || m.Range < 1 {
		return m, fmt.Errorf("range message %.80q: table, run and a range from 1 are required", body)
	}
	return m, nil
}

// RangeBody is the message body of m.
func RangeBody(m export.RangeMessage) string {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(m)
	return strings.TrimSpace(b.String())
}

// sqsAPI is what SQSSender uses; *sqs.Client has it.
type sqsAPI interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// SQSSender sends range messages to the range queue, ten per request.
type SQSSender struct {
	API      sqsAPI
	QueueURL string
}

// SendRanges sends one message per range.
func (s SQSSender) SendRanges(ctx context.Context, msgs []export.RangeMessage) error {
	for len(msgs) > 0 {
		n := min(len(msgs), 10)
		in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.QueueURL)}
		for i, m := range msgs[:n] {
			in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(RangeBody(m))})
		}
		out, err := s.API.SendMessageBatch(ctx, in)
		if err != nil {
			return fmt.Errorf("sending %d range messages to %s: %w", n, s.QueueURL, err)
		}
		var errs []error
		for _, f := range out.Failed {
			errs = append(errs, fmt.Errorf("message %s: %s %s", aws.ToString(f.Id), aws.ToString(f.Code), aws.ToString(f.Message)))
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("sending range messages to %s: %w", s.QueueURL, err)
		}
		msgs = msgs[n:]
	}
	return nil
}
