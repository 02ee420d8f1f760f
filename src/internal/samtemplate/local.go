//lint:file-ignore ST1005 messages start with the logical id or key of the template they are about

package samtemplate

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// The pseudo parameters `sam local invoke` evaluates a template with.
const (
	LocalStackName = "local"
	LocalAccountID = "123456789012"
	LocalRegion    = "us-east-1"
)

// LocalStack is the stack `sam local invoke` evaluates a template for: stack
// name "local", account 123456789012, region us-east-1, partition aws, and
// the parameter overrides given (the other parameters take their Default).
func LocalStack(overrides map[string]string) Stack {
	return Stack{Name: LocalStackName, AccountID: LocalAccountID, Region: LocalRegion, Partition: "aws", Parameters: maps.Clone(overrides)}
}

// Lambda's defaults for what a function leaves unset.
const (
	DefaultTimeout  = 3 * time.Second
	DefaultMemoryMB = 128
)

// FunctionConfig is a function's configuration as Lambda would run it,
// resolved for one stack.
type FunctionConfig struct {
	ID            string        // logical id
	Name          string        // FunctionName, or the logical id when it has none
	Handler       string        // Handler ("bootstrap" for provided runtimes)
	Runtime       string        // Runtime, e.g. provided.al2023
	Architectures []string      // Architectures; [x86_64] when unset
	Timeout       time.Duration // Timeout; 3 s when unset
	MemoryMB      int           // MemorySize; 128 when unset
	LogFormat     string        // LoggingConfig.LogFormat: Text (default) or JSON
	LogLevel      string        // LoggingConfig.ApplicationLogLevel; set only with LogFormat JSON
	LogGroup      string        // LoggingConfig.LogGroup's name, else /aws/lambda/<Name>
	// Environment holds every variable the function declares, with the value
	// `sam local invoke` gives it: a value known only at deploy time (a Ref
	// to a resource, Fn::GetAtt) is blank, and booleans are "true"/"false".
	Environment map[string]string
}

// FunctionConfig resolves the AWS::Serverless::Function id for the stack s,
// Globals merged.
func (t *Template) FunctionConfig(id string, s Stack) (FunctionConfig, error) {
	props, err := t.FunctionProperties(id)
	if err != nil {
		return FunctionConfig{}, err
	}
	c := FunctionConfig{ID: id, Name: id, Handler: "bootstrap", Architectures: []string{"x86_64"},
		Timeout: DefaultTimeout, MemoryMB: DefaultMemoryMB, LogFormat: "Text", Environment: map[string]string{}}
	text := func(key string, into *string) error {
		v, ok := props[key]
		if !ok {
			return nil
		}
		out, err := t.Resolve(v, s)
		if err != nil {
			return fmt.Errorf("%s %s: %w", id, key, err)
		}
		if str, ok := String(out); ok {
			*into = str
		}
		return nil
	}
	number := func(key string, into *int) error {
		v, ok := props[key]
		if !ok {
			return nil
		}
		out, err := t.Resolve(v, s)
		if err != nil {
			return fmt.Errorf("%s %s: %w", id, key, err)
		}
		n, ok := Int(out)
		if !ok || n <= 0 {
			return fmt.Errorf("%s %s: %v is not a positive whole number", id, key, out)
		}
		*into = n
		return nil
	}
	var timeout int
	for _, err := range []error{
		text("FunctionName", &c.Name), text("Handler", &c.Handler), text("Runtime", &c.Runtime),
		number("Timeout", &timeout), number("MemorySize", &c.MemoryMB),
	} {
		if err != nil {
			return FunctionConfig{}, err
		}
	}
	if timeout > 0 {
		c.Timeout = time.Duration(timeout) * time.Second
	}
	if v, ok := props["Architectures"]; ok {
		out, err := t.Resolve(v, s)
		if err != nil {
			return FunctionConfig{}, fmt.Errorf("%s Architectures: %w", id, err)
		}
		if archs, ok := Strings(out); ok && len(archs) > 0 {
			c.Architectures = archs
		}
	}
	if err := t.loggingConfig(&c, props["LoggingConfig"], s); err != nil {
		return FunctionConfig{}, err
	}
	vars, _ := Lookup(props, "Environment", "Variables")
	resolved, err := t.Resolve(vars, s)
	if err != nil {
		return FunctionConfig{}, fmt.Errorf("%s Environment: %w", id, err)
	}
	m, _ := resolved.(map[string]any)
	for name, v := range m {
		c.Environment[name] = localText(v)
	}
	return c, nil
}

func (t *Template) loggingConfig(c *FunctionConfig, raw any, s Stack) error {
	c.LogGroup = "/aws/lambda/" + c.Name
	if raw == nil {
		return nil
	}
	lc, err := t.Resolve(raw, s)
	if err != nil {
		return fmt.Errorf("%s LoggingConfig: %w", c.ID, err)
	}
	m, _ := lc.(map[string]any)
	if f, ok := String(m["LogFormat"]); ok && f != "" {
		c.LogFormat = f
	}
	if c.LogFormat == "JSON" {
		c.LogLevel = "INFO" // Lambda's default application level for JSON logs
		if l, ok := String(m["ApplicationLogLevel"]); ok && l != "" {
			c.LogLevel = l
		}
	}
	switch g := m["LogGroup"].(type) {
	case string:
		if g != "" {
			c.LogGroup = g
		}
	case map[string]any:
		// A Ref to a log group of the template: its LogGroupName, when that
		// is known before deployment.
		if id, ok := ReferencedResource(g); ok {
			if r := t.Resources[id]; r.Type == "AWS::Logs::LogGroup" {
				if name, err := t.ResolveString(r.Properties["LogGroupName"], s); err == nil && name != "" {
					c.LogGroup = name
				}
			}
		}
	}
	return nil
}

// localText is the text `sam local invoke` passes for a resolved value:
// scalars as CloudFormation writes them (booleans "true"/"false"), and
// anything else (a deploy-time reference, a list, null) blank.
func localText(v any) string {
	if isIntrinsic(v) {
		return ""
	}
	s, ok := String(v)
	if !ok {
		return ""
	}
	return s
}

// EnvVars is an --env-vars file of `sam local invoke`: for each function's
// logical id the values of its variables, and under "Parameters" values for
// every function (a function's own entry wins).
type EnvVars map[string]map[string]string

// ParseEnvVars reads an --env-vars file. Values may be text, numbers or
// booleans; they are passed as the text SAM passes.
func ParseEnvVars(data []byte) (EnvVars, error) {
	var raw map[string]map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("env vars: %w (want {\"FunctionLogicalId\": {\"NAME\": \"value\"}})", err)
	}
	out := EnvVars{}
	for fn, vars := range raw {
		out[fn] = map[string]string{}
		for name, v := range vars {
			switch x := v.(type) {
			case string:
				out[fn][name] = x
			case bool, float64:
				s, _ := String(x)
				out[fn][name] = s
			case nil:
				out[fn][name] = ""
			default:
				return nil, fmt.Errorf("env vars: %s.%s is %v, not text, a number or a boolean", fn, name, v)
			}
		}
	}
	return out, nil
}

// Apply overrides the variables of env (a function's declared environment)
// with the values the file gives the function id, as `sam local invoke`
// does: only declared variables are overridden. It returns the variables
// the file sets for id that env does not declare (SAM drops them too),
// sorted.
func (e EnvVars) Apply(id string, env map[string]string) (ignored []string) {
	for name, v := range e["Parameters"] {
		if _, declared := env[name]; declared {
			env[name] = v
		}
	}
	for name, v := range e[id] {
		if _, declared := env[name]; declared {
			env[name] = v
		} else {
			ignored = append(ignored, name)
		}
	}
	sort.Strings(ignored)
	return ignored
}

// ParseParameterOverrides reads the value of SAM's --parameter-overrides:
// "Key=Value" pairs separated by commas or spaces, or SAM's
// "ParameterKey=Key,ParameterValue=Value" form. A piece without "=" after a
// comma continues the previous value, so a CommaDelimitedList can be given
// as "SubnetIds=subnet-1,subnet-2".
func ParseParameterOverrides(s string) (map[string]string, error) {
	out := map[string]string{}
	var last string
	var pendingKey string // a ParameterKey= waiting for its ParameterValue=
	for _, field := range strings.Fields(s) {
		for _, piece := range strings.Split(field, ",") {
			k, v, ok := strings.Cut(piece, "=")
			switch {
			case !ok && last != "":
				out[last] += "," + piece
			case !ok:
				return nil, fmt.Errorf("parameter override %q is not Key=Value", piece)
			case k == "ParameterKey":
				pendingKey = v
			case k == "ParameterValue":
				if pendingKey == "" {
					return nil, fmt.Errorf("ParameterValue=%s without a ParameterKey before it", v)
				}
				out[pendingKey], last, pendingKey = v, pendingKey, ""
			case k == "":
				return nil, fmt.Errorf("parameter override %q has no name", piece)
			default:
				out[k], last = v, k
			}
		}
	}
	if pendingKey != "" {
		return nil, fmt.Errorf("ParameterKey=%s has no ParameterValue", pendingKey)
	}
	return out, nil
}

// CheckParameters checks values given for the template's parameters: each
// must name a parameter, be one of its AllowedValues and match its
// AllowedPattern, as CloudFormation requires. Every problem is reported.
func (t *Template) CheckParameters(values map[string]string) error {
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(values)) {
		v := values[name]
		p, ok := t.Parameters[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s is no parameter of the template", name))
			continue
		}
		if len(p.AllowedValues) > 0 && !slices.Contains(p.AllowedValues, v) {
			problems = append(problems, fmt.Sprintf("%s=%q is not one of %s", name, v, strings.Join(p.AllowedValues, ", ")))
		}
		if p.AllowedPattern != "" {
			re, err := regexp.Compile("^(?:" + p.AllowedPattern + ")$")
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: AllowedPattern %q: %v", name, p.AllowedPattern, err))
			} else if !re.MatchString(v) {
				problems = append(problems, fmt.Sprintf("%s=%q does not match %s", name, v, p.AllowedPattern))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("parameter overrides: %s", strings.Join(problems, "; "))
	}
	return nil
}
