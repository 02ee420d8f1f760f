package samtemplate

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const resolveTemplate = `
Parameters:
  Name: {Type: String, Default: ''}
  Size: {Type: Number, Default: 4}
  Subnets: {Type: CommaDelimitedList, Default: ''}
  NoDefault: {Type: String}
Mappings:
  Regions:
    eu-west-1: {Short: euw1}
Conditions:
  HasName: !Not [!Equals [!Ref Name, '']]
  HasSubnets: !Not [!Equals [!Join ['', !Ref Subnets], '']]
  Both: !And [!Condition HasName, !Condition HasSubnets]
  Either: !Or [!Condition HasName, !Condition HasSubnets]
  Loop: !Not [!Condition Loop]
Resources:
  Queue: {Type: AWS::SQS::Queue}
`

var testStack = Stack{Name: "st", AccountID: "123456789012", Region: "eu-west-1"}

func withParams(s Stack, kv ...string) Stack {
	s.Parameters = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Parameters[kv[i]] = kv[i+1]
	}
	return s
}

func TestResolve(t *testing.T) {
	tpl := mustParse(t, resolveTemplate)
	named := withParams(testStack, "Name", "given", "Subnets", "s-1, s-2")
	tests := []struct {
		name  string
		yaml  string
		stack Stack
		want  any
	}{
		{"pseudo parameters", `!Sub '${AWS::StackName}-${AWS::AccountId}-${AWS::Region}-${AWS::Partition}'`, testStack, "st-123456789012-eu-west-1-aws"},
		{"default", `!Ref Size`, testStack, "4"},
		{"override", `!Ref Name`, named, "given"},
		{"list parameter is split and trimmed", `!Ref Subnets`, named, []any{"s-1", "s-2"}},
		{"empty list parameter", `!Ref Subnets`, testStack, []any{""}},
		{"If false", `!If [HasName, !Ref Name, !Sub '${AWS::StackName}-data']`, testStack, "st-data"},
		{"If true", `!If [HasName, !Ref Name, !Sub '${AWS::StackName}-data']`, named, "given"},
		{"And", `!If [Both, yes, no]`, named, "yes"},
		{"And false", `!If [Both, yes, no]`, withParams(testStack, "Name", "x"), "no"},
		{"Or", `!If [Either, yes, no]`, withParams(testStack, "Name", "x"), "yes"},
		{"NoValue drops a key", `{a: 1, b: !Ref AWS::NoValue}`, testStack, map[string]any{"a": 1}},
		{"NoValue drops a list item", `[a, !If [HasName, b, !Ref AWS::NoValue]]`, testStack, []any{"a"}},
		{"NoValue at the top", `!If [HasName, x, !Ref AWS::NoValue]`, testStack, nil},
		{"Sub with variables", "!Sub\n  - 'arn:${AWS::Partition}:s3:::${B}/raw/*'\n  - B: !If [HasName, !Ref Name, fallback]", testStack, "arn:aws:s3:::fallback/raw/*"},
		{"Sub literal", `!Sub '${!Literal}-${Size}'`, testStack, "${Literal}-4"},
		{"Sub keeps GetAtt", `!Sub '${Queue.Arn}/${Size}'`, testStack, map[string]any{"Fn::Sub": "${Queue.Arn}/4"}},
		{"Sub keeps Ref to resource", `!Sub '${Queue}-${AWS::Region}'`, testStack, map[string]any{"Fn::Sub": "${Queue}-eu-west-1"}},
		{"Sub keeps unresolved variable", "!Sub ['${Q}-${Size}', {Q: !GetAtt Queue.Arn}]", testStack,
			map[string]any{"Fn::Sub": []any{"${Q}-4", map[string]any{"Q": map[string]any{"Fn::GetAtt": []any{"Queue", "Arn"}}}}}},
		{"GetAtt kept", `!GetAtt Queue.Arn`, testStack, map[string]any{"Fn::GetAtt": []any{"Queue", "Arn"}}},
		{"Ref to resource kept", `!Ref Queue`, testStack, map[string]any{"Ref": "Queue"}},
		{"Join", `!Join ['-', [a, !Ref Size]]`, testStack, "a-4"},
		{"Join with deploy-time item", `!Join ['-', [a, !Ref Queue]]`, testStack, map[string]any{"Fn::Join": []any{"-", []any{"a", map[string]any{"Ref": "Queue"}}}}},
		{"Select", `!Select [1, !Ref Subnets]`, named, "s-2"},
		{"Split", `!Split [',', 'a,b']`, testStack, []any{"a", "b"}},
		{"FindInMap", `!FindInMap [Regions, !Ref AWS::Region, Short]`, testStack, "euw1"},
		{"Base64", `!Base64 hi`, testStack, "aGk="},
		{"ImportValue kept", `!ImportValue {'Fn::Sub': '${AWS::Region}-x'}`, testStack, map[string]any{"Fn::ImportValue": "eu-west-1-x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decodeYAML([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got, err := tpl.Resolve(v, tt.stack)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tpl := mustParse(t, resolveTemplate)
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"unknown Ref", `!Ref Nope`, `no parameter or resource "Nope"`},
		{"parameter without value", `!Ref NoDefault`, "has no default"},
		{"unknown condition", `!If [Nope, a, b]`, `no condition "Nope"`},
		{"self-referring condition", `!If [Loop, a, b]`, "refers to itself"},
		{"Sub of unknown resource attribute", `!Sub '${Nope.Arn}'`, `names no resource "Nope"`},
		{"Sub of a list", `!Sub '${Subnets}'`, "is the list"},
		{"GetAtt of unknown resource", `!GetAtt Nope.Arn`, `names no resource "Nope"`},
		{"Select out of range", `!Select [3, [a]]`, "outside a list of 1"},
		{"If arity", `!If [HasName, a]`, "takes [condition, then, else]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decodeYAML([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			_, err = tpl.Resolve(v, testStack)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestResolveString(t *testing.T) {
	tpl := mustParse(t, resolveTemplate)
	if s, err := tpl.ResolveString(map[string]any{"Ref": "Size"}, testStack); err != nil || s != "4" {
		t.Errorf("ResolveString(Ref Size) = %q, %v", s, err)
	}
	_, err := tpl.ResolveString(map[string]any{"Fn::GetAtt": []any{"Queue", "Arn"}}, testStack)
	if !errors.Is(err, ErrUnresolved) {
		t.Errorf("ResolveString(GetAtt) err = %v, want ErrUnresolved", err)
	}
}

func TestCondition(t *testing.T) {
	tpl := mustParse(t, resolveTemplate)
	tests := []struct {
		cond  string
		stack Stack
		want  bool
	}{
		{"HasName", testStack, false},
		{"HasName", withParams(testStack, "Name", "x"), true},
		{"HasSubnets", testStack, false},
		{"HasSubnets", withParams(testStack, "Subnets", "s-1"), true},
		{"Both", withParams(testStack, "Subnets", "s-1"), false},
		{"Both", withParams(testStack, "Name", "x", "Subnets", "s-1"), true},
	}
	for _, tt := range tests {
		got, err := tpl.Condition(tt.cond, tt.stack)
		if err != nil || got != tt.want {
			t.Errorf("Condition(%s, %v) = %v, %v; want %v", tt.cond, tt.stack.Parameters, got, err, tt.want)
		}
	}
}
