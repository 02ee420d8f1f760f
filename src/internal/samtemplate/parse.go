package samtemplate

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// shortForms maps each CloudFormation YAML short-form tag to the key of its
// full form: !Ref X is {"Ref": X}, !Sub S is {"Fn::Sub": S}, and so on.
var shortForms = map[string]string{
	"!Ref":       "Ref",
	"!Condition": "Condition",

	"!Base64":      "Fn::Base64",
	"!Cidr":        "Fn::Cidr",
	"!FindInMap":   "Fn::FindInMap",
	"!GetAtt":      "Fn::GetAtt",
	"!GetAZs":      "Fn::GetAZs",
	"!ImportValue": "Fn::ImportValue",
	"!Join":        "Fn::Join",
	"!Select":      "Fn::Select",
	"!Split":       "Fn::Split",
	"!Sub":         "Fn::Sub",
	"!Transform":   "Fn::Transform",

	// Condition functions.
	"!And":    "Fn::And",
	"!Equals": "Fn::Equals",
	"!If":     "Fn::If",
	"!Not":    "Fn::Not",
	"!Or":     "Fn::Or",

	// Rule functions and the AWS::LanguageExtensions transform.
	"!Contains":         "Fn::Contains",
	"!EachMemberEquals": "Fn::EachMemberEquals",
	"!EachMemberIn":     "Fn::EachMemberIn",
	"!RefAll":           "Fn::RefAll",
	"!ValueOf":          "Fn::ValueOf",
	"!ValueOfAll":       "Fn::ValueOfAll",
	"!Length":           "Fn::Length",
	"!ToJsonString":     "Fn::ToJsonString",
}

// decodeYAML turns a YAML document into the generic tree that the JSON form
// of the same template would give: map[string]any, []any, string, int,
// float64, bool and nil, with every short-form tag rewritten to its full form.
func decodeYAML(data []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 {
		return nil, nil // empty input
	}
	return decodeNode(&doc)
}

func decodeNode(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		// CloudFormation itself answers "YAML aliases are not allowed in
		// CloudFormation templates"; refuse them here too, so a template that
		// passes these tests also deploys without a packaging step.
		return nil, fmt.Errorf("line %d: YAML aliases are not allowed in CloudFormation templates", n.Line)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return decodeShortForm(n)
	}
	return decodePlain(n)
}

// decodePlain decodes a node, ignoring any local tag it carries.
func decodePlain(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return decodeNode(n.Content[0])
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: mapping key is not a scalar", k.Line)
			}
			if k.Value == "<<" && k.Tag == "!!merge" {
				return nil, fmt.Errorf("line %d: YAML merge keys are not allowed in CloudFormation templates", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			val, err := decodeNode(v)
			if err != nil {
				return nil, err
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := decodeNode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		return s, nil
	case yaml.ScalarNode:
		return decodeScalar(n)
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node kind %d", n.Line, n.Kind)
}

func decodeScalar(n *yaml.Node) (any, error) {
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return n.Value, nil // the content of a short form is text
	}
	switch n.ShortTag() {
	case "!!str", "!!timestamp", "!!binary":
		// Dates such as AWSTemplateFormatVersion stay text, as in JSON.
		return n.Value, nil
	case "!!null":
		return nil, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("line %d: %w", n.Line, err)
	}
	return v, nil
}

func decodeShortForm(n *yaml.Node) (any, error) {
	key, ok := shortForms[n.Tag]
	if !ok {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	val, err := decodePlain(n)
	if err != nil {
		return nil, err
	}
	switch key {
	case "Ref", "Condition":
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: %s takes a name", n.Line, n.Tag)
		}
	case "Fn::GetAtt":
		// !GetAtt Resource.Attribute is the short form of
		// {"Fn::GetAtt": ["Resource", "Attribute"]}; the attribute may itself
		// contain dots (Outputs.Name), so split on the first one only.
		if s, isText := val.(string); isText {
			res, attr, found := strings.Cut(s, ".")
			if !found || res == "" || attr == "" {
				return nil, fmt.Errorf("line %d: !GetAtt %q is not Resource.Attribute", n.Line, s)
			}
			val = []any{res, attr}
		}
	}
	return map[string]any{key: val}, nil
}
