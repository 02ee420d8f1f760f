//lint:file-ignore ST1005 messages start with the logical id or key of the template they are about

package samtemplate

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Notification is one S3 event notification of a bucket of the template: the
// objects created (or removed) under Prefix and ending in Suffix go to Target.
type Notification struct {
	Bucket     string   // logical id of the bucket
	Target     string   // logical id of the function, queue or topic (or its ARN when it is outside the template)
	TargetType string   // resource type of Target; empty when Target is outside the template
	Events     []string // S3 event types, such as "s3:ObjectCreated:*"
	Prefix     string   // key prefix filter; empty matches every key
	Suffix     string   // key suffix filter; empty matches every key
}

// Matches reports whether an object event with this key is sent to the
// target. event is an S3 event type either as configured
// ("s3:ObjectCreated:Put") or as it appears in an event record's eventName
// ("ObjectCreated:Put").
func (n Notification) Matches(event, key string) bool {
	if !strings.HasPrefix(key, n.Prefix) || !strings.HasSuffix(key, n.Suffix) {
		return false
	}
	if !strings.HasPrefix(event, "s3:") {
		event = "s3:" + event
	}
	for _, pattern := range n.Events {
		if ok, _ := path.Match(pattern, event); ok {
			return true
		}
	}
	return false
}

// Notifications returns every S3 notification the deployed template would
// configure, gathered from the two places a SAM template declares them: the
// S3 events of AWS::Serverless::Function resources (which SAM turns into
// LambdaConfigurations of the bucket) and the NotificationConfiguration of
// each AWS::S3::Bucket (its LambdaConfigurations, QueueConfigurations and
// TopicConfigurations). Filters must be literal text.
func (t *Template) Notifications() ([]Notification, error) {
	var out []Notification
	for _, fn := range t.ResourceIDs(FunctionType) {
		events, _ := t.Resources[fn].Properties["Events"].(map[string]any)
		for _, name := range sortedKeys(events) {
			ev, _ := events[name].(map[string]any)
			if ev["Type"] != "S3" {
				continue
			}
			props, _ := ev["Properties"].(map[string]any)
			bucket, ok := props["Bucket"].(map[string]any)
			bucketID, _ := bucket["Ref"].(string)
			if !ok || len(bucket) != 1 || bucketID == "" {
				return nil, fmt.Errorf("%s event %s: Bucket must be a Ref to a bucket of the template", fn, name)
			}
			if r, ok := t.Resources[bucketID]; !ok || r.Type != "AWS::S3::Bucket" {
				return nil, fmt.Errorf("%s event %s: %s is not an AWS::S3::Bucket of the template", fn, name, bucketID)
			}
			types, ok := Strings(props["Events"])
			if !ok || len(types) == 0 {
				return nil, fmt.Errorf("%s event %s: Events must be text or a list of text", fn, name)
			}
			n := Notification{Bucket: bucketID, Target: fn, TargetType: FunctionType, Events: types}
			if err := applyFilter(&n, props["Filter"]); err != nil {
				return nil, fmt.Errorf("%s event %s: %w", fn, name, err)
			}
			out = append(out, n)
		}
	}

	kinds := []struct{ list, target string }{
		{"LambdaConfigurations", "Function"},
		{"QueueConfigurations", "Queue"},
		{"TopicConfigurations", "Topic"},
	}
	for _, b := range t.ResourceIDs("AWS::S3::Bucket") {
		nc, ok := t.Resources[b].Properties["NotificationConfiguration"]
		if !ok {
			continue
		}
		ncm, ok := nc.(map[string]any)
		if !ok || isIntrinsic(ncm) {
			return nil, fmt.Errorf("%s: NotificationConfiguration must be a literal mapping (SAM merges its S3 events into it)", b)
		}
		for _, k := range kinds {
			raw, ok := ncm[k.list]
			if !ok {
				continue
			}
			list, ok := raw.([]any)
			if !ok {
				return nil, fmt.Errorf("%s: %s is not a list", b, k.list)
			}
			for i, e := range list {
				cfg, ok := e.(map[string]any)
				if !ok || isIntrinsic(cfg) {
					return nil, fmt.Errorf("%s: %s[%d] must be a literal mapping", b, k.list, i)
				}
				event, ok := cfg["Event"].(string)
				if !ok {
					return nil, fmt.Errorf("%s: %s[%d].Event is not text", b, k.list, i)
				}
				n := Notification{Bucket: b, Events: []string{event}}
				if id, ok := ReferencedResource(cfg[k.target]); ok {
					r, exists := t.Resources[id]
					if !exists {
						return nil, fmt.Errorf("%s: %s[%d].%s names no resource %s", b, k.list, i, k.target, id)
					}
					n.Target, n.TargetType = id, r.Type
				} else if arn, ok := cfg[k.target].(string); ok {
					n.Target = arn
				} else {
					return nil, fmt.Errorf("%s: %s[%d].%s is neither a reference nor an ARN", b, k.list, i, k.target)
				}
				if err := applyFilter(&n, cfg["Filter"]); err != nil {
					return nil, fmt.Errorf("%s: %s[%d]: %w", b, k.list, i, err)
				}
				out = append(out, n)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Bucket != b.Bucket {
			return a.Bucket < b.Bucket
		}
		if a.Prefix != b.Prefix {
			return a.Prefix < b.Prefix
		}
		if a.Suffix != b.Suffix {
			return a.Suffix < b.Suffix
		}
		return a.Target < b.Target
	})
	return out, nil
}

// applyFilter reads a {S3Key: {Rules: [{Name: prefix|suffix, Value: ...}]}}.
func applyFilter(n *Notification, filter any) error {
	if filter == nil {
		return nil
	}
	rules, ok := Lookup(filter, "S3Key", "Rules")
	if !ok {
		return fmt.Errorf("Filter has no S3Key.Rules")
	}
	list, ok := rules.([]any)
	if !ok {
		return fmt.Errorf("Filter.S3Key.Rules is not a list")
	}
	seen := map[string]bool{}
	for _, e := range list {
		rule, _ := e.(map[string]any)
		name, nameOK := rule["Name"].(string)
		value, valueOK := rule["Value"].(string)
		if !nameOK || !valueOK {
			return fmt.Errorf("filter rule %v must have literal Name and Value", e)
		}
		name = strings.ToLower(name)
		if seen[name] {
			return fmt.Errorf("filter has two %s rules", name)
		}
		seen[name] = true
		switch name {
		case "prefix":
			n.Prefix = value
		case "suffix":
			n.Suffix = value
		default:
			return fmt.Errorf("filter rule name %q is neither prefix nor suffix", name)
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
