// Package samtemplate reads an AWS SAM / CloudFormation template (YAML or
// JSON, with the YAML short-form tags such as !Ref, !Sub and !GetAtt) into a
// generic tree, and answers the questions that the template tests and the
// local runner ask of it: which resources exist, what a function looks like
// once Globals are applied, which S3 notifications route which keys where, and
// what a value evaluates to for given parameter values.
//
// The tree has the shape of the template's JSON form: map[string]any, []any,
// string, int, float64, bool and nil. Short forms become their full forms, so
// !Ref X is map[string]any{"Ref": "X"} and !GetAtt A.B is
// map[string]any{"Fn::GetAtt": []any{"A", "B"}}.
//lint:file-ignore ST1005 messages start with the logical id or key of the template they are about

package samtemplate

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
)

// Template is a parsed template. The typed fields are views of Tree, the
// whole document.
type Template struct {
	FormatVersion string
	Transforms    []string
	Description   string
	Parameters    map[string]Parameter
	Conditions    map[string]any
	Mappings      map[string]any
	Globals       map[string]any
	Resources     map[string]Resource
	Outputs       map[string]Output
	Tree          map[string]any
}

// Parameter is one entry of the Parameters section.
type Parameter struct {
	Type           string
	Default        string // meaningful only when HasDefault
	HasDefault     bool
	AllowedValues  []string
	AllowedPattern string
	Description    string
	Properties     map[string]any // every key as written (MinValue, NoEcho, ...)
}

// Resource is one entry of the Resources section.
type Resource struct {
	ID                  string
	Type                string
	Condition           string
	DependsOn           []string
	DeletionPolicy      string
	UpdateReplacePolicy string
	Properties          map[string]any // never nil
	Metadata            map[string]any // never nil
}

// Output is one entry of the Outputs section.
type Output struct {
	Description string
	Condition   string
	Value       any
	Export      any
}

// Load reads and parses the template file at path.
func Load(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading template: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return t, nil
}

// Parse parses a template held in memory. JSON is accepted too, being YAML.
func Parse(data []byte) (*Template, error) {
	tree, err := decodeYAML(data)
	if err != nil {
		return nil, err
	}
	root, ok := tree.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("template is not a mapping")
	}
	t := &Template{
		Tree:       root,
		Parameters: map[string]Parameter{},
		Resources:  map[string]Resource{},
		Outputs:    map[string]Output{},
	}
	t.FormatVersion, _ = root["AWSTemplateFormatVersion"].(string)
	t.Description, _ = root["Description"].(string)
	switch tr := root["Transform"].(type) {
	case string:
		t.Transforms = []string{tr}
	case []any:
		for _, x := range tr {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("Transform: entry %v is not a name", x)
			}
			t.Transforms = append(t.Transforms, s)
		}
	}
	if t.Conditions, err = section(root, "Conditions"); err != nil {
		return nil, err
	}
	if t.Mappings, err = section(root, "Mappings"); err != nil {
		return nil, err
	}
	if t.Globals, err = section(root, "Globals"); err != nil {
		return nil, err
	}

	params, err := section(root, "Parameters")
	if err != nil {
		return nil, err
	}
	for name, raw := range params {
		p, err := parseParameter(raw)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", name, err)
		}
		t.Parameters[name] = p
	}

	resources, err := section(root, "Resources")
	if err != nil {
		return nil, err
	}
	if len(resources) == 0 {
		return nil, fmt.Errorf("template has no Resources")
	}
	for id, raw := range resources {
		r, err := parseResource(id, raw)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", id, err)
		}
		t.Resources[id] = r
	}

	outputs, err := section(root, "Outputs")
	if err != nil {
		return nil, err
	}
	for name, raw := range outputs {
		m, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("output %s is not a mapping", name)
		}
		o := Output{Value: m["Value"], Export: m["Export"]}
		o.Description, _ = m["Description"].(string)
		o.Condition, _ = m["Condition"].(string)
		t.Outputs[name] = o
	}
	return t, nil
}

func section(root map[string]any, name string) (map[string]any, error) {
	v, ok := root[name]
	if !ok || v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is not a mapping", name)
	}
	return m, nil
}

func parseParameter(raw any) (Parameter, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return Parameter{}, fmt.Errorf("not a mapping")
	}
	p := Parameter{Properties: m}
	if p.Type, ok = m["Type"].(string); !ok {
		return Parameter{}, fmt.Errorf("has no Type")
	}
	p.Description, _ = m["Description"].(string)
	p.AllowedPattern, _ = m["AllowedPattern"].(string)
	if d, ok := m["Default"]; ok {
		s, err := scalarText(d)
		if err != nil {
			return Parameter{}, fmt.Errorf("Default: %w", err)
		}
		p.Default, p.HasDefault = s, true
	}
	if av, ok := m["AllowedValues"].([]any); ok {
		for _, v := range av {
			s, err := scalarText(v)
			if err != nil {
				return Parameter{}, fmt.Errorf("AllowedValues: %w", err)
			}
			p.AllowedValues = append(p.AllowedValues, s)
		}
	}
	return p, nil
}

func parseResource(id string, raw any) (Resource, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return Resource{}, fmt.Errorf("not a mapping")
	}
	r := Resource{ID: id, Properties: map[string]any{}, Metadata: map[string]any{}}
	if r.Type, ok = m["Type"].(string); !ok {
		return Resource{}, fmt.Errorf("has no Type")
	}
	r.Condition, _ = m["Condition"].(string)
	r.DeletionPolicy, _ = m["DeletionPolicy"].(string)
	r.UpdateReplacePolicy, _ = m["UpdateReplacePolicy"].(string)
	switch d := m["DependsOn"].(type) {
	case nil:
	case string:
		r.DependsOn = []string{d}
	case []any:
		for _, x := range d {
			s, ok := x.(string)
			if !ok {
				return Resource{}, fmt.Errorf("DependsOn entry %v is not a name", x)
			}
			r.DependsOn = append(r.DependsOn, s)
		}
	default:
		return Resource{}, fmt.Errorf("DependsOn is neither a name nor a list")
	}
	if p, ok := m["Properties"]; ok && p != nil {
		if r.Properties, ok = p.(map[string]any); !ok {
			return Resource{}, fmt.Errorf("Properties is not a mapping")
		}
	}
	if md, ok := m["Metadata"]; ok && md != nil {
		if r.Metadata, ok = md.(map[string]any); !ok {
			return Resource{}, fmt.Errorf("Metadata is not a mapping")
		}
	}
	return r, nil
}

// Resource returns the resource with the logical id, and whether it exists.
func (t *Template) Resource(id string) (Resource, bool) {
	r, ok := t.Resources[id]
	return r, ok
}

// ResourceIDs returns, sorted, the logical ids of the resources of type typ,
// or of every resource when typ is empty.
func (t *Template) ResourceIDs(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if typ == "" || r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// FunctionType is the resource type of a SAM function.
const FunctionType = "AWS::Serverless::Function"

// FunctionProperties returns the properties of the AWS::Serverless::Function
// id with Globals.Function merged in the way SAM merges them: a mapping is
// merged key by key, a list is appended to the global list, and any other
// value (an intrinsic function included) replaces the global one. The result
// is a copy; changing it does not change the template.
func (t *Template) FunctionProperties(id string) (map[string]any, error) {
	r, ok := t.Resources[id]
	if !ok {
		return nil, fmt.Errorf("no resource %s", id)
	}
	if r.Type != FunctionType {
		return nil, fmt.Errorf("resource %s is a %s, not a %s", id, r.Type, FunctionType)
	}
	global, _ := t.Globals["Function"].(map[string]any)
	merged, _ := mergeGlobal(global, r.Properties).(map[string]any)
	return merged, nil
}

func mergeGlobal(global, local any) any {
	gm, gIsMap := global.(map[string]any)
	lm, lIsMap := local.(map[string]any)
	if gIsMap && lIsMap && !isIntrinsic(gm) && !isIntrinsic(lm) {
		out := make(map[string]any, len(gm)+len(lm))
		for k, v := range gm {
			out[k] = deepCopy(v)
		}
		for k, v := range lm {
			if g, ok := gm[k]; ok {
				out[k] = mergeGlobal(g, v)
			} else {
				out[k] = deepCopy(v)
			}
		}
		return out
	}
	gl, gIsList := global.([]any)
	ll, lIsList := local.([]any)
	if gIsList && lIsList {
		out, _ := deepCopy(gl).([]any)
		for _, v := range ll {
			out = append(out, deepCopy(v))
		}
		return out
	}
	if local == nil && global != nil {
		return deepCopy(global)
	}
	return deepCopy(local)
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

// Lookup walks v through nested mappings by key (and through lists when a key
// is a decimal index) and returns what it finds there.
func Lookup(v any, path ...string) (any, bool) {
	for _, key := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[key]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// String returns v when it is text, and a number or boolean in the text
// CloudFormation would use for it.
func String(v any) (string, bool) {
	s, err := scalarText(v)
	return s, err == nil
}

// Int returns v as an integer when it is an integral number or the text of one
// (CloudFormation accepts "5" wherever 5 is meant).
func Int(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case uint64:
		return int(x), true
	case float64:
		if x == float64(int(x)) {
			return int(x), true
		}
	case string:
		if n, err := strconv.Atoi(x); err == nil {
			return n, true
		}
	}
	return 0, false
}

// Strings returns v as a list of text: a list of scalars, or one scalar as a
// list of one.
func Strings(v any) ([]string, bool) {
	if l, ok := v.([]any); ok {
		out := make([]string, 0, len(l))
		for _, e := range l {
			s, ok := String(e)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	if s, ok := String(v); ok {
		return []string{s}, true
	}
	return nil, false
}

func scalarText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("%v is not a scalar", v)
}

// ReferencedResource returns the logical id that v names when v is a
// {"Ref": id} or {"Fn::GetAtt": [id, attr]} (the usual ways to point at a
// resource of the same template).
func ReferencedResource(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	if id, ok := m["Ref"].(string); ok {
		return id, true
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
		id, ok := ga[0].(string)
		return id, ok
	}
	return "", false
}

// intrinsicKeys are the keys that make a one-key mapping a function call.
var intrinsicKeys = func() []string {
	keys := []string{"Ref", "Condition"}
	for _, k := range shortForms {
		if k != "Ref" && k != "Condition" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}()

// isIntrinsic reports whether v is a one-key mapping calling an intrinsic
// function ({"Ref": ...}, {"Fn::If": ...}, ...).
func isIntrinsic(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	for k := range m {
		_, found := slices.BinarySearch(intrinsicKeys, k)
		return found
	}
	return false
}
