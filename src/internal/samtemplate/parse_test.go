package samtemplate

import (
	"reflect"
	"strings"
	"testing"
)

func mustParse(tb testing.TB, src string) *Template {
	tb.Helper()
	t, err := Parse([]byte(src))
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return t
}

func TestParseShortForms(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want any
	}{
		{"Ref", `!Ref Bucket`, map[string]any{"Ref": "Bucket"}},
		{"Condition", `!Condition HasVpc`, map[string]any{"Condition": "HasVpc"}},
		{"Sub string", `!Sub '${AWS::StackName}-x'`, map[string]any{"Fn::Sub": "${AWS::StackName}-x"}},
		{"Sub list", "!Sub\n  - '${A}'\n  - A: !Ref B", map[string]any{"Fn::Sub": []any{"${A}", map[string]any{"A": map[string]any{"Ref": "B"}}}}},
		{"GetAtt dotted", `!GetAtt Queue.Arn`, map[string]any{"Fn::GetAtt": []any{"Queue", "Arn"}}},
		{"GetAtt nested attribute", `!GetAtt Stack.Outputs.Name`, map[string]any{"Fn::GetAtt": []any{"Stack", "Outputs.Name"}}},
		{"GetAtt list", `!GetAtt [Queue, Arn]`, map[string]any{"Fn::GetAtt": []any{"Queue", "Arn"}}},
		{"If", `!If [C, a, !Ref AWS::NoValue]`, map[string]any{"Fn::If": []any{"C", "a", map[string]any{"Ref": "AWS::NoValue"}}}},
		{"Equals", `!Equals [!Ref P, '']`, map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "P"}, ""}}},
		{"Not", `!Not [!Condition C]`, map[string]any{"Fn::Not": []any{map[string]any{"Condition": "C"}}}},
		{"And", `!And [!Condition A, !Condition B]`, map[string]any{"Fn::And": []any{map[string]any{"Condition": "A"}, map[string]any{"Condition": "B"}}}},
		{"Or", `!Or [!Condition A, !Condition B]`, map[string]any{"Fn::Or": []any{map[string]any{"Condition": "A"}, map[string]any{"Condition": "B"}}}},
		{"Select", `!Select [0, !GetAZs '']`, map[string]any{"Fn::Select": []any{0, map[string]any{"Fn::GetAZs": ""}}}},
		{"Join", `!Join [',', [a, b]]`, map[string]any{"Fn::Join": []any{",", []any{"a", "b"}}}},
		{"Split", `!Split [',', 'a,b']`, map[string]any{"Fn::Split": []any{",", "a,b"}}},
		{"FindInMap", `!FindInMap [M, k1, k2]`, map[string]any{"Fn::FindInMap": []any{"M", "k1", "k2"}}},
		{"ImportValue", `!ImportValue shared-vpc`, map[string]any{"Fn::ImportValue": "shared-vpc"}},
		{"Base64", `!Base64 hello`, map[string]any{"Fn::Base64": "hello"}},
		{"Cidr", `!Cidr ['10.0.0.0/16', 4, 8]`, map[string]any{"Fn::Cidr": []any{"10.0.0.0/16", 4, 8}}},
		{"GetAZs", `!GetAZs ''`, map[string]any{"Fn::GetAZs": ""}},
		{"tagged number stays text", `!Ref 5`, map[string]any{"Ref": "5"}},
		{"date stays text", `2010-09-09`, "2010-09-09"},
		{"plain scalars", `[1, 1.5, true, null, "x"]`, []any{1, 1.5, true, nil, "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeYAML([]byte(tt.yaml))
			if err != nil {
				t.Fatalf("decodeYAML: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"unknown tag", "a: !Reff X", "unknown tag !Reff"},
		{"alias", "a: &x 1\nb: *x", "aliases are not allowed"},
		{"merge key", "a: &x {k: 1}\nb:\n  <<: {k: 2}", "merge keys are not allowed"},
		{"duplicate key", "a: 1\na: 2", `duplicate key "a"`},
		{"Ref of a list", "a: !Ref [x]", "!Ref takes a name"},
		{"GetAtt without attribute", "a: !GetAtt Queue", "is not Resource.Attribute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeYAML([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

const smallTemplate = `
AWSTemplateFormatVersion: 2010-09-09
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Count: {Type: Number, Default: 3}
  Subnets: {Type: CommaDelimitedList, Default: ''}
  Required: {Type: String}
Globals:
  Function:
    Runtime: provided.al2023
    Architectures: [arm64]
    Layers: [global-layer]
    Environment:
      Variables: {A: global, B: global}
    VpcConfig: {SubnetIds: [s-global]}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    DependsOn: Queue
    Metadata: {BuildMethod: makefile}
    Properties:
      Layers: [local-layer]
      Environment:
        Variables: {B: local, C: local}
      VpcConfig: !If [Never, {SubnetIds: [s-local]}, !Ref AWS::NoValue]
  Queue:
    Type: AWS::SQS::Queue
    DependsOn: [A, B]
Outputs:
  QueueUrl: {Value: !Ref Queue, Description: the queue}
`

func TestParseSections(t *testing.T) {
	tpl := mustParse(t, smallTemplate)
	if tpl.FormatVersion != "2010-09-09" {
		t.Errorf("FormatVersion = %q", tpl.FormatVersion)
	}
	if !reflect.DeepEqual(tpl.Transforms, []string{"AWS::Serverless-2016-10-31"}) {
		t.Errorf("Transforms = %v", tpl.Transforms)
	}
	if p := tpl.Parameters["Count"]; !p.HasDefault || p.Default != "3" || p.Type != "Number" {
		t.Errorf("Count = %+v, want Number with default 3", p)
	}
	if p := tpl.Parameters["Stage"]; !reflect.DeepEqual(p.AllowedValues, []string{"dev", "prod"}) {
		t.Errorf("Stage.AllowedValues = %v", p.AllowedValues)
	}
	if p := tpl.Parameters["Required"]; p.HasDefault {
		t.Errorf("Required has a default: %+v", p)
	}
	fn, ok := tpl.Resource("Fn")
	if !ok || fn.Type != FunctionType || fn.Metadata["BuildMethod"] != "makefile" {
		t.Fatalf("Fn = %+v, %v", fn, ok)
	}
	if !reflect.DeepEqual(fn.DependsOn, []string{"Queue"}) {
		t.Errorf("Fn.DependsOn = %v, want [Queue]", fn.DependsOn)
	}
	if q, _ := tpl.Resource("Queue"); !reflect.DeepEqual(q.DependsOn, []string{"A", "B"}) {
		t.Errorf("Queue.DependsOn = %v, want [A B]", q.DependsOn)
	}
	if _, ok := tpl.Resource("Missing"); ok {
		t.Error("Resource(Missing) reported found")
	}
	if got := tpl.ResourceIDs(""); !reflect.DeepEqual(got, []string{"Fn", "Queue"}) {
		t.Errorf("ResourceIDs = %v", got)
	}
	if got := tpl.ResourceIDs("AWS::SQS::Queue"); !reflect.DeepEqual(got, []string{"Queue"}) {
		t.Errorf("ResourceIDs(queue) = %v", got)
	}
	if o := tpl.Outputs["QueueUrl"]; o.Description != "the queue" || !reflect.DeepEqual(o.Value, map[string]any{"Ref": "Queue"}) {
		t.Errorf("Outputs.QueueUrl = %+v", o)
	}
}

func TestFunctionPropertiesMergesGlobalsLikeSAM(t *testing.T) {
	tpl := mustParse(t, smallTemplate)
	got, err := tpl.FunctionProperties("Fn")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		path []string
		want any
	}{
		{[]string{"Runtime"}, "provided.al2023"},                                                                                                                // global only
		{[]string{"Layers"}, []any{"global-layer", "local-layer"}},                                                                                              // lists append
		{[]string{"Environment", "Variables"}, map[string]any{"A": "global", "B": "local", "C": "local"}},                                                       // maps merge
		{[]string{"VpcConfig"}, map[string]any{"Fn::If": []any{"Never", map[string]any{"SubnetIds": []any{"s-local"}}, map[string]any{"Ref": "AWS::NoValue"}}}}, // an intrinsic replaces
	}
	for _, c := range checks {
		v, _ := Lookup(got, c.path...)
		if !reflect.DeepEqual(v, c.want) {
			t.Errorf("%s = %#v, want %#v", strings.Join(c.path, "."), v, c.want)
		}
	}
	// The merge is a copy.
	got["Runtime"] = "changed"
	if again, _ := tpl.FunctionProperties("Fn"); again["Runtime"] != "provided.al2023" {
		t.Error("changing the merged properties changed the template")
	}
	if _, err := tpl.FunctionProperties("Queue"); err == nil {
		t.Error("FunctionProperties(Queue) succeeded on a queue")
	}
}

func TestScalarAccessors(t *testing.T) {
	if n, ok := Int("5"); !ok || n != 5 {
		t.Errorf(`Int("5") = %d, %v`, n, ok)
	}
	if n, ok := Int(5.0); !ok || n != 5 {
		t.Errorf("Int(5.0) = %d, %v", n, ok)
	}
	if _, ok := Int(5.5); ok {
		t.Error("Int(5.5) succeeded")
	}
	if s, ok := String(true); !ok || s != "true" {
		t.Errorf("String(true) = %q, %v", s, ok)
	}
	if l, ok := Strings("a"); !ok || !reflect.DeepEqual(l, []string{"a"}) {
		t.Errorf(`Strings("a") = %v, %v`, l, ok)
	}
	if _, ok := Strings([]any{"a", map[string]any{}}); ok {
		t.Error("Strings accepted a mapping")
	}
	if id, ok := ReferencedResource(map[string]any{"Fn::GetAtt": []any{"Q", "Arn"}}); !ok || id != "Q" {
		t.Errorf("ReferencedResource(GetAtt) = %q, %v", id, ok)
	}
	if _, ok := ReferencedResource(map[string]any{"Ref": "Q", "x": 1}); ok {
		t.Error("ReferencedResource accepted a two-key mapping")
	}
}
