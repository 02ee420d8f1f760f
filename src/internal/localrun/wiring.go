package localrun

import (
	"fmt"
	"sort"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
)

// queueType is the resource type of an SQS queue.
const queueType = "AWS::SQS::Queue"

// Wiring is how template.yaml connects a bucket's notifications to the
// functions: read once from the template so the local chain and the deployed
// stack cannot drift apart.
type Wiring struct {
	Bucket        string                      // logical id of the bucket
	Notifications []samtemplate.Notification  // the bucket's notifications, in template order
	Functions     map[string]FunctionSettings // every function a notification or a queue invokes
	Queues        map[string]QueueSettings    // every queue a notification targets
}

// FunctionSettings are the settings of a function that matter to how it is
// invoked.
type FunctionSettings struct {
	Timeout time.Duration // the function's Timeout: each invocation's deadline
	// Retries is EventInvokeConfig.MaximumRetryAttempts: how often an
	// asynchronous invocation that failed is tried again (Lambda's default 2).
	Retries int
}

// QueueSettings are a queue's delivery settings and the event source mapping
// that feeds it to a function.
type QueueSettings struct {
	VisibilityTimeout  time.Duration
	MaxReceiveCount    int    // the redrive policy's; 0 without a dead-letter queue
	Consumer           string // logical id of the function reading it
	BatchSize          int
	BatchWindow        time.Duration // MaximumBatchingWindowInSeconds
	MaxConcurrency     int           // ScalingConfig.MaximumConcurrency; 0 when unset
	ReportItemFailures bool          // FunctionResponseTypes holds ReportBatchItemFailures
}

// ReadWiring gathers the notifications of the bucket bucketID and the settings
// of their targets, resolving parameters for stack (their defaults unless
// overridden).
func ReadWiring(t *samtemplate.Template, bucketID string, stack samtemplate.Stack) (Wiring, error) {
	all, err := t.Notifications()
	if err != nil {
		return Wiring{}, err
	}
	w := Wiring{Bucket: bucketID, Functions: map[string]FunctionSettings{}, Queues: map[string]QueueSettings{}}
	for _, n := range all {
		if n.Bucket != bucketID {
			continue
		}
		w.Notifications = append(w.Notifications, n)
		switch n.TargetType {
		case samtemplate.FunctionType:
			if err := w.addFunction(t, n.Target, stack); err != nil {
				return Wiring{}, err
			}
		case queueType:
			q, err := readQueue(t, n.Target, stack)
			if err != nil {
				return Wiring{}, err
			}
			w.Queues[n.Target] = q
			if err := w.addFunction(t, q.Consumer, stack); err != nil {
				return Wiring{}, err
			}
		default:
			return Wiring{}, fmt.Errorf("notification of %s to %s: only functions and queues of the template run locally", bucketID, n.Target)
		}
	}
	if len(w.Notifications) == 0 {
		return Wiring{}, fmt.Errorf("the template configures no notification on %s", bucketID)
	}
	return w, nil
}

func (w *Wiring) addFunction(t *samtemplate.Template, id string, stack samtemplate.Stack) error {
	if _, ok := w.Functions[id]; ok {
		return nil
	}
	fs, err := ReadFunction(t, id, stack)
	if err != nil {
		return err
	}
	w.Functions[id] = fs
	return nil
}

// ReadFunction returns the invocation settings of the function id: its
// Timeout as samtemplate resolves it for Lambda, and its retries.
func ReadFunction(t *samtemplate.Template, id string, stack samtemplate.Stack) (FunctionSettings, error) {
	fs := FunctionSettings{Timeout: samtemplate.DefaultTimeout, Retries: 2} // Lambda's defaults
	c, err := t.FunctionConfig(id, stack)
	if err != nil {
		return fs, err
	}
	fs.Timeout = c.Timeout
	props, err := t.FunctionProperties(id)
	if err != nil {
		return fs, err
	}
	if v, ok := samtemplate.Lookup(props, "EventInvokeConfig", "MaximumRetryAttempts"); ok {
		n, err := resolveInt(t, v, stack)
		if err != nil {
			return fs, fmt.Errorf("%s MaximumRetryAttempts: %w", id, err)
		}
		fs.Retries = n
	}
	return fs, nil
}

func readQueue(t *samtemplate.Template, id string, stack samtemplate.Stack) (QueueSettings, error) {
	r, _ := t.Resource(id)
	q := QueueSettings{VisibilityTimeout: 30 * time.Second, BatchSize: 10} // SQS's and the mapping's defaults
	if v, ok := r.Properties["VisibilityTimeout"]; ok {
		n, err := resolveInt(t, v, stack)
		if err != nil {
			return q, fmt.Errorf("%s VisibilityTimeout: %w", id, err)
		}
		q.VisibilityTimeout = time.Duration(n) * time.Second
	}
	if v, ok := samtemplate.Lookup(r.Properties, "RedrivePolicy", "maxReceiveCount"); ok {
		n, err := resolveInt(t, v, stack)
		if err != nil {
			return q, fmt.Errorf("%s maxReceiveCount: %w", id, err)
		}
		q.MaxReceiveCount = n
	}
	// The consumer is the function with an SQS event on this queue.
	var consumers []string
	for _, fn := range t.ResourceIDs(samtemplate.FunctionType) {
		props, err := t.FunctionProperties(fn)
		if err != nil {
			return q, err
		}
		evs, _ := props["Events"].(map[string]any)
		names := make([]string, 0, len(evs))
		for name := range evs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ev, _ := evs[name].(map[string]any)
			if ev["Type"] != "SQS" {
				continue
			}
			p, _ := ev["Properties"].(map[string]any)
			if target, ok := samtemplate.ReferencedResource(p["Queue"]); !ok || target != id {
				continue
			}
			consumers = append(consumers, fn)
			if v, ok := p["BatchSize"]; ok {
				n, err := resolveInt(t, v, stack)
				if err != nil {
					return q, fmt.Errorf("%s event %s BatchSize: %w", fn, name, err)
				}
				q.BatchSize = n
			}
			if v, ok := p["MaximumBatchingWindowInSeconds"]; ok {
				n, err := resolveInt(t, v, stack)
				if err != nil {
					return q, fmt.Errorf("%s event %s MaximumBatchingWindowInSeconds: %w", fn, name, err)
				}
				q.BatchWindow = time.Duration(n) * time.Second
			}
			if v, ok := samtemplate.Lookup(p, "ScalingConfig", "MaximumConcurrency"); ok {
				n, err := resolveInt(t, v, stack)
				if err != nil {
					return q, fmt.Errorf("%s event %s MaximumConcurrency: %w", fn, name, err)
				}
				q.MaxConcurrency = n
			}
			types, _ := samtemplate.Strings(p["FunctionResponseTypes"])
			for _, ty := range types {
				q.ReportItemFailures = q.ReportItemFailures || ty == "ReportBatchItemFailures"
			}
		}
	}
	if len(consumers) != 1 {
		return q, fmt.Errorf("queue %s has %d consuming functions in the template (%v); the local chain needs exactly one", id, len(consumers), consumers)
	}
	q.Consumer = consumers[0]
	return q, nil
}

func resolveInt(t *samtemplate.Template, v any, stack samtemplate.Stack) (int, error) {
	out, err := t.Resolve(v, stack)
	if err != nil {
		return 0, err
	}
	if n, ok := samtemplate.Int(out); ok {
		return n, nil
	}
	return 0, fmt.Errorf("%v is not a whole number", out)
}
