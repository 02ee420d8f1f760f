//lint:file-ignore ST1005 messages start with the logical id or key of the template they are about

package samtemplate

import (
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Stack supplies what a deployment would: the pseudo parameters and the
// parameter values given on the command line (the others take their Default).
type Stack struct {
	Name       string            // AWS::StackName
	AccountID  string            // AWS::AccountId
	Region     string            // AWS::Region
	Partition  string            // AWS::Partition; "aws" when empty
	Parameters map[string]string // parameter overrides
}

// ErrUnresolved reports a value that exists only once the stack is deployed,
// such as an Fn::GetAtt or a Ref to a resource.
var ErrUnresolved = errors.New("known only at deploy time")

// Resolve evaluates the intrinsic functions in v for the stack s, as
// CloudFormation would: parameters and pseudo parameters are substituted,
// conditions decide Fn::If, and a value that becomes AWS::NoValue is dropped
// from its mapping or list (at the top it resolves to nil).
//
// Values known only at deploy time (a Ref to a resource, Fn::GetAtt,
// Fn::ImportValue, Fn::GetAZs, Fn::Cidr) are kept as they are, and so is any
// function that takes one of them: an Fn::Sub keeps only its unresolved
// variables. The result is therefore a partial evaluation that still holds
// such references; ReferencedResource names their targets.
func (t *Template) Resolve(v any, s Stack) (any, error) {
	r := &resolver{t: t, s: s, conds: map[string]bool{}, busy: map[string]bool{}}
	out, err := r.value(v)
	if err != nil {
		return nil, err
	}
	if out == noValue {
		return nil, nil
	}
	return out, nil
}

// ResolveString resolves v and requires text as the result. A value that
// still holds a deploy-time reference gives an error wrapping ErrUnresolved.
func (t *Template) ResolveString(v any, s Stack) (string, error) {
	out, err := t.Resolve(v, s)
	if err != nil {
		return "", err
	}
	if isIntrinsic(out) {
		return "", fmt.Errorf("%s: %w", describe(out), ErrUnresolved)
	}
	str, ok := String(out)
	if !ok {
		return "", fmt.Errorf("%v is not text", out)
	}
	return str, nil
}

// Condition evaluates the named condition of the Conditions section.
func (t *Template) Condition(name string, s Stack) (bool, error) {
	r := &resolver{t: t, s: s, conds: map[string]bool{}, busy: map[string]bool{}}
	return r.condition(name)
}

// ParameterValue returns the value the stack gives the parameter: its
// override or else its default.
func (t *Template) ParameterValue(name string, s Stack) (string, error) {
	p, ok := t.Parameters[name]
	if !ok {
		return "", fmt.Errorf("no parameter %s", name)
	}
	if v, ok := s.Parameters[name]; ok {
		return v, nil
	}
	if !p.HasDefault {
		return "", fmt.Errorf("parameter %s has no default and no value was given", name)
	}
	return p.Default, nil
}

type noValueType struct{}

// noValue is what Ref AWS::NoValue evaluates to until its container drops it.
var noValue = noValueType{}

type resolver struct {
	t     *Template
	s     Stack
	conds map[string]bool
	busy  map[string]bool
}

func (r *resolver) partition() string {
	if r.s.Partition == "" {
		return "aws"
	}
	return r.s.Partition
}

func (r *resolver) value(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if isIntrinsic(x) {
			return r.intrinsic(x)
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			val, err := r.value(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if val != noValue {
				out[k] = val
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			val, err := r.value(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			if val != noValue {
				out = append(out, val)
			}
		}
		return out, nil
	}
	return v, nil
}

func (r *resolver) intrinsic(m map[string]any) (any, error) {
	for fn, arg := range m {
		switch fn {
		case "Ref":
			name, ok := arg.(string)
			if !ok {
				return nil, fmt.Errorf("Ref takes a name, not %v", arg)
			}
			return r.ref(name)
		case "Condition":
			name, ok := arg.(string)
			if !ok {
				return nil, fmt.Errorf("Condition takes a name, not %v", arg)
			}
			return r.condition(name)
		case "Fn::If":
			return r.fnIf(arg)
		case "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or":
			return r.boolean(map[string]any{fn: arg})
		case "Fn::Sub":
			return r.sub(arg)
		case "Fn::Join":
			return r.join(arg)
		case "Fn::Select":
			return r.selectFn(arg)
		case "Fn::Split":
			return r.split(arg)
		case "Fn::FindInMap":
			return r.findInMap(arg)
		case "Fn::Base64":
			val, err := r.value(arg)
			if err != nil {
				return nil, err
			}
			if isIntrinsic(val) {
				return map[string]any{fn: val}, nil
			}
			s, ok := String(val)
			if !ok {
				return nil, fmt.Errorf("Fn::Base64 takes text, not %v", val)
			}
			return base64.StdEncoding.EncodeToString([]byte(s)), nil
		case "Fn::GetAtt":
			id, ok := ReferencedResource(m)
			if !ok {
				return nil, fmt.Errorf("Fn::GetAtt takes [resource, attribute], not %v", arg)
			}
			if _, ok := r.t.Resources[id]; !ok {
				return nil, fmt.Errorf("Fn::GetAtt names no resource %q", id)
			}
			return m, nil
		default:
			// Fn::ImportValue, Fn::GetAZs, Fn::Cidr and the rest: deploy-time
			// values. Resolve their arguments and keep the call.
			val, err := r.value(arg)
			if err != nil {
				return nil, err
			}
			return map[string]any{fn: val}, nil
		}
	}
	return nil, fmt.Errorf("empty intrinsic")
}

func (r *resolver) ref(name string) (any, error) {
	switch name {
	case "AWS::NoValue":
		return noValue, nil
	case "AWS::StackName":
		return r.s.Name, nil
	case "AWS::AccountId":
		return r.s.AccountID, nil
	case "AWS::Region":
		return r.s.Region, nil
	case "AWS::Partition":
		return r.partition(), nil
	case "AWS::URLSuffix":
		if strings.HasPrefix(r.s.Region, "cn-") {
			return "amazonaws.com.cn", nil
		}
		return "amazonaws.com", nil
	case "AWS::StackId":
		return fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/00000000-0000-0000-0000-000000000000",
			r.partition(), r.s.Region, r.s.AccountID, r.s.Name), nil
	case "AWS::NotificationARNs":
		return []any{}, nil
	}
	if p, ok := r.t.Parameters[name]; ok {
		val, err := r.t.ParameterValue(name, r.s)
		if err != nil {
			return nil, err
		}
		if p.Type == "CommaDelimitedList" || strings.HasPrefix(p.Type, "List<") {
			var out []any
			for _, item := range strings.Split(val, ",") {
				out = append(out, strings.TrimSpace(item))
			}
			return out, nil
		}
		return val, nil
	}
	if _, ok := r.t.Resources[name]; ok {
		return map[string]any{"Ref": name}, nil
	}
	return nil, fmt.Errorf("Ref names no parameter or resource %q", name)
}

func (r *resolver) condition(name string) (bool, error) {
	if v, ok := r.conds[name]; ok {
		return v, nil
	}
	def, ok := r.t.Conditions[name]
	if !ok {
		return false, fmt.Errorf("no condition %q", name)
	}
	if r.busy[name] {
		return false, fmt.Errorf("condition %q refers to itself", name)
	}
	r.busy[name] = true
	defer delete(r.busy, name)
	v, err := r.boolean(def)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	r.conds[name] = v
	return v, nil
}

// boolean evaluates a condition expression.
func (r *resolver) boolean(v any) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return false, fmt.Errorf("%v is not a condition", v)
	}
	for fn, arg := range m {
		switch fn {
		case "Condition":
			name, ok := arg.(string)
			if !ok {
				return false, fmt.Errorf("Condition takes a name, not %v", arg)
			}
			return r.condition(name)
		case "Fn::Equals":
			l, ok := arg.([]any)
			if !ok || len(l) != 2 {
				return false, fmt.Errorf("Fn::Equals takes two values, not %v", arg)
			}
			a, err := r.value(l[0])
			if err != nil {
				return false, err
			}
			b, err := r.value(l[1])
			if err != nil {
				return false, err
			}
			if isIntrinsic(a) || isIntrinsic(b) {
				return false, fmt.Errorf("Fn::Equals: %w", ErrUnresolved)
			}
			as, aok := String(a)
			bs, bok := String(b)
			if !aok || !bok {
				return false, fmt.Errorf("Fn::Equals compares text, not %v and %v", a, b)
			}
			return as == bs, nil
		case "Fn::Not":
			l, ok := arg.([]any)
			if !ok || len(l) != 1 {
				return false, fmt.Errorf("Fn::Not takes one condition, not %v", arg)
			}
			b, err := r.boolean(l[0])
			return !b, err
		case "Fn::And", "Fn::Or":
			l, ok := arg.([]any)
			if !ok || len(l) < 2 || len(l) > 10 {
				return false, fmt.Errorf("%s takes 2 to 10 conditions, not %v", fn, arg)
			}
			and := fn == "Fn::And"
			for _, c := range l {
				b, err := r.boolean(c)
				if err != nil {
					return false, err
				}
				if b != and {
					return !and, nil
				}
			}
			return and, nil
		}
		return false, fmt.Errorf("%s is not a condition function", fn)
	}
	return false, nil
}

func (r *resolver) fnIf(arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) != 3 {
		return nil, fmt.Errorf("Fn::If takes [condition, then, else], not %v", arg)
	}
	name, ok := l[0].(string)
	if !ok {
		return nil, fmt.Errorf("Fn::If takes a condition name, not %v", l[0])
	}
	b, err := r.condition(name)
	if err != nil {
		return nil, err
	}
	if b {
		return r.value(l[1])
	}
	return r.value(l[2])
}

func (r *resolver) sub(arg any) (any, error) {
	var tmpl string
	vars := map[string]any{}
	switch x := arg.(type) {
	case string:
		tmpl = x
	case []any:
		if len(x) != 2 {
			return nil, fmt.Errorf("Fn::Sub takes a string or [string, variables]")
		}
		s, ok := x[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Sub template %v is not text", x[0])
		}
		tmpl = s
		m, ok := x[1].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Sub variables %v are not a mapping", x[1])
		}
		for k, v := range m {
			val, err := r.value(v)
			if err != nil {
				return nil, fmt.Errorf("Fn::Sub variable %s: %w", k, err)
			}
			vars[k] = val
		}
	default:
		return nil, fmt.Errorf("Fn::Sub takes a string or [string, variables], not %v", arg)
	}

	var b strings.Builder
	unresolved := map[string]any{}
	rest := tmpl
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		j := strings.Index(rest[i:], "}")
		if j < 0 {
			return nil, fmt.Errorf("Fn::Sub %q: unclosed ${", tmpl)
		}
		name := rest[i+2 : i+j]
		rest = rest[i+j+1:]
		if strings.HasPrefix(name, "!") { // ${!Literal} is the text ${Literal}
			b.WriteString("${!" + name[1:] + "}")
			continue
		}
		val, err := r.subVariable(name, vars)
		if err != nil {
			return nil, fmt.Errorf("Fn::Sub %q: %w", tmpl, err)
		}
		if isIntrinsic(val) {
			if _, isVar := vars[name]; isVar {
				unresolved[name] = val
			}
			b.WriteString("${" + name + "}")
			continue
		}
		s, ok := String(val)
		if !ok {
			return nil, fmt.Errorf("Fn::Sub %q: ${%s} is %v, not text", tmpl, name, val)
		}
		// Escape what would read as a variable if the result were
		// substituted again.
		b.WriteString(strings.ReplaceAll(s, "${", "${!"))
	}
	out := b.String()
	if strings.Contains(out, "${") && hasVariables(out) {
		if len(unresolved) > 0 {
			return map[string]any{"Fn::Sub": []any{out, unresolved}}, nil
		}
		return map[string]any{"Fn::Sub": out}, nil
	}
	return strings.ReplaceAll(out, "${!", "${"), nil
}

// hasVariables reports whether s still holds a ${Name} that is not ${!...}.
func hasVariables(s string) bool {
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return false
		}
		if !strings.HasPrefix(s[i+2:], "!") {
			return true
		}
		s = s[i+2:]
	}
}

func (r *resolver) subVariable(name string, vars map[string]any) (any, error) {
	if v, ok := vars[name]; ok {
		if v == noValue {
			return nil, fmt.Errorf("${%s} is AWS::NoValue", name)
		}
		return v, nil
	}
	if res, attr, ok := strings.Cut(name, "."); ok {
		if _, isRes := r.t.Resources[res]; !isRes {
			return nil, fmt.Errorf("${%s} names no resource %q", name, res)
		}
		return map[string]any{"Fn::GetAtt": []any{res, attr}}, nil
	}
	v, err := r.ref(name)
	if err != nil {
		return nil, err
	}
	if v == noValue {
		return nil, fmt.Errorf("${%s} is AWS::NoValue", name)
	}
	if l, ok := v.([]any); ok {
		return nil, fmt.Errorf("${%s} is the list %v, not text", name, l)
	}
	return v, nil
}

func (r *resolver) join(arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) != 2 {
		return nil, fmt.Errorf("Fn::Join takes [delimiter, list], not %v", arg)
	}
	delim, ok := l[0].(string)
	if !ok {
		return nil, fmt.Errorf("Fn::Join delimiter %v is not text", l[0])
	}
	val, err := r.value(l[1])
	if err != nil {
		return nil, err
	}
	items, ok := val.([]any)
	if !ok {
		if isIntrinsic(val) {
			return map[string]any{"Fn::Join": []any{delim, val}}, nil
		}
		return nil, fmt.Errorf("Fn::Join takes a list, not %v", val)
	}
	parts := make([]string, 0, len(items))
	for _, it := range items {
		if isIntrinsic(it) {
			return map[string]any{"Fn::Join": []any{delim, items}}, nil
		}
		s, ok := String(it)
		if !ok {
			return nil, fmt.Errorf("Fn::Join item %v is not text", it)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, delim), nil
}

func (r *resolver) selectFn(arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) != 2 {
		return nil, fmt.Errorf("Fn::Select takes [index, list], not %v", arg)
	}
	idxVal, err := r.value(l[0])
	if err != nil {
		return nil, err
	}
	listVal, err := r.value(l[1])
	if err != nil {
		return nil, err
	}
	if isIntrinsic(idxVal) || isIntrinsic(listVal) {
		return map[string]any{"Fn::Select": []any{idxVal, listVal}}, nil
	}
	idx, ok := Int(idxVal)
	if !ok {
		return nil, fmt.Errorf("Fn::Select index %v is not a number", idxVal)
	}
	items, ok := listVal.([]any)
	if !ok {
		return nil, fmt.Errorf("Fn::Select takes a list, not %v", listVal)
	}
	if idx < 0 || idx >= len(items) {
		return nil, fmt.Errorf("Fn::Select index %d is outside a list of %d", idx, len(items))
	}
	return items[idx], nil
}

func (r *resolver) split(arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) != 2 {
		return nil, fmt.Errorf("Fn::Split takes [delimiter, text], not %v", arg)
	}
	delim, ok := l[0].(string)
	if !ok || delim == "" {
		return nil, fmt.Errorf("Fn::Split delimiter %v is not text", l[0])
	}
	val, err := r.value(l[1])
	if err != nil {
		return nil, err
	}
	if isIntrinsic(val) {
		return map[string]any{"Fn::Split": []any{delim, val}}, nil
	}
	s, ok := String(val)
	if !ok {
		return nil, fmt.Errorf("Fn::Split takes text, not %v", val)
	}
	var out []any
	for _, p := range strings.Split(s, delim) {
		out = append(out, p)
	}
	return out, nil
}

func (r *resolver) findInMap(arg any) (any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) < 3 {
		return nil, fmt.Errorf("Fn::FindInMap takes [map, top key, second key], not %v", arg)
	}
	keys := make([]string, 3)
	for i := range keys {
		val, err := r.value(l[i])
		if err != nil {
			return nil, err
		}
		if isIntrinsic(val) {
			return map[string]any{"Fn::FindInMap": []any{l[0], l[1], l[2]}}, nil
		}
		s, ok := String(val)
		if !ok {
			return nil, fmt.Errorf("Fn::FindInMap key %v is not text", val)
		}
		keys[i] = s
	}
	found, ok := Lookup(r.t.Mappings, keys...)
	if !ok {
		return nil, fmt.Errorf("Fn::FindInMap: no %s", strings.Join(keys, "."))
	}
	return found, nil
}

// describe renders a deploy-time reference for an error message.
func describe(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprint(v)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %v", k, m[k])
	}
	return b.String()
}
