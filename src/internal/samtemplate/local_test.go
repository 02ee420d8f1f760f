package samtemplate

import (
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"
)

const localTemplate = `
Parameters:
  Level: {Type: String, Default: INFO, AllowedValues: [DEBUG, INFO]}
  Name: {Type: String, Default: '', AllowedPattern: '^$|^[a-z]+$'}
Conditions:
  HasName: !Not [!Equals [!Ref Name, '']]
Globals:
  Function:
    Runtime: provided.al2023
    Architectures: [arm64]
    Handler: bootstrap
    MemorySize: 256
    Timeout: 60
    LoggingConfig:
      LogFormat: JSON
      ApplicationLogLevel: !Ref Level
    Environment:
      Variables:
        BUCKET: !If [HasName, !Ref Name, !Sub '${AWS::StackName}-data-${AWS::AccountId}-${AWS::Region}']
        LEVEL: !Ref Level
Resources:
  Queue: {Type: AWS::SQS::Queue}
  Logs:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: !Sub '/aws/lambda/${AWS::StackName}-fn'}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub '${AWS::StackName}-fn'
      Timeout: 120
      LoggingConfig: {LogGroup: !Ref Logs}
      Environment:
        Variables:
          QUEUE_URL: !Ref Queue
          QUEUE_ARN: !GetAtt Queue.Arn
          FLAG: true
          COUNT: 4
          EMPTY: ''
  Bare:
    Type: AWS::Serverless::Function
    Properties: {Timeout: 5, Environment: {Variables: {ONLY: x}}}
`

func TestFunctionConfigIsWhatSAMLocalRuns(t *testing.T) {
	tpl := mustParse(t, localTemplate)
	got, err := tpl.FunctionConfig("Fn", LocalStack(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := FunctionConfig{
		ID: "Fn", Name: "local-fn", Handler: "bootstrap", Runtime: "provided.al2023", Architectures: []string{"arm64"},
		Timeout: 120 * time.Second, MemoryMB: 256, LogFormat: "JSON", LogLevel: "INFO", LogGroup: "/aws/lambda/local-fn",
		Environment: map[string]string{
			"BUCKET":    "local-data-123456789012-us-east-1", // the pseudo parameters of sam local
			"LEVEL":     "INFO",
			"QUEUE_URL": "", // deploy-time values are blank, as SAM passes them
			"QUEUE_ARN": "",
			"FLAG":      "true",
			"COUNT":     "4",
			"EMPTY":     "",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FunctionConfig:\n got  %+v\n want %+v", got, want)
	}

	over, err := tpl.FunctionConfig("Fn", LocalStack(map[string]string{"Name": "mine", "Level": "DEBUG"}))
	if err != nil {
		t.Fatal(err)
	}
	if over.Environment["BUCKET"] != "mine" || over.Environment["LEVEL"] != "DEBUG" || over.LogLevel != "DEBUG" {
		t.Errorf("with overrides: %+v", over)
	}

	// Globals reach a function that sets little itself; Lambda's defaults
	// fill the rest.
	bare, err := tpl.FunctionConfig("Bare", LocalStack(nil))
	if err != nil {
		t.Fatal(err)
	}
	if bare.Name != "Bare" || bare.Timeout != 5*time.Second || bare.MemoryMB != 256 || bare.LogGroup != "/aws/lambda/Bare" ||
		len(bare.Environment) != 3 || bare.Environment["ONLY"] != "x" {
		t.Errorf("Bare: %+v", bare)
	}

	if _, err := tpl.FunctionConfig("Queue", LocalStack(nil)); err == nil {
		t.Error("a queue read as a function")
	}
}

func TestFunctionConfigRefusesNonsense(t *testing.T) {
	tpl := mustParse(t, `
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties: {Timeout: soon}
`)
	if _, err := tpl.FunctionConfig("Fn", LocalStack(nil)); err == nil || !strings.Contains(err.Error(), "Fn Timeout") {
		t.Errorf("err = %v, want one naming Fn Timeout", err)
	}
}

func TestEnvVarsOverrideOnlyDeclaredVariables(t *testing.T) {
	ev, err := ParseEnvVars([]byte(`{
	  "Parameters": {"LEVEL": "DEBUG", "NOT_DECLARED_ANYWHERE": "x"},
	  "Fn": {"BUCKET": "local-bucket", "COUNT": 8, "FLAG": false, "EXTRA": "ignored", "LEVEL": "WARN"},
	  "Other": {"BUCKET": "elsewhere"}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BUCKET": "b", "COUNT": "4", "FLAG": "true", "LEVEL": "INFO", "KEEP": "k"}
	ignored := ev.Apply("Fn", env)
	want := map[string]string{"BUCKET": "local-bucket", "COUNT": "8", "FLAG": "false", "LEVEL": "WARN", "KEEP": "k"}
	if !maps.Equal(env, want) {
		t.Errorf("env = %v, want %v", env, want)
	}
	if !reflect.DeepEqual(ignored, []string{"EXTRA"}) {
		t.Errorf("ignored = %v, want [EXTRA]", ignored)
	}

	env = map[string]string{"LEVEL": "INFO"}
	if ignored := ev.Apply("Absent", env); env["LEVEL"] != "DEBUG" || len(ignored) != 0 {
		t.Errorf("Parameters for every function: env %v, ignored %v", env, ignored)
	}

	for _, bad := range []string{`[]`, `{"Fn": {"X": [1]}}`, `{"Fn": "x"}`} {
		if _, err := ParseEnvVars([]byte(bad)); err == nil {
			t.Errorf("ParseEnvVars(%s) accepted", bad)
		}
	}
}

func TestParseParameterOverrides(t *testing.T) {
	for in, want := range map[string]map[string]string{
		"":                                  {},
		"A=1":                               {"A": "1"},
		"A=1,B=2":                           {"A": "1", "B": "2"},
		"A=1 B=2":                           {"A": "1", "B": "2"},
		"Subnets=s-1,s-2,B=x":               {"Subnets": "s-1,s-2", "B": "x"},
		"Cols=orders=updated_at:created_at": {"Cols": "orders=updated_at:created_at"},
		"ParameterKey=A,ParameterValue=1 ParameterKey=B,ParameterValue=2": {"A": "1", "B": "2"},
		"A=": {"A": ""},
	} {
		got, err := ParseParameterOverrides(in)
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("ParseParameterOverrides(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"A", "=1", "ParameterValue=1", "ParameterKey=A"} {
		if got, err := ParseParameterOverrides(bad); err == nil {
			t.Errorf("ParseParameterOverrides(%q) = %v, want an error", bad, got)
		}
	}
}

func TestCheckParameters(t *testing.T) {
	tpl := mustParse(t, localTemplate)
	if err := tpl.CheckParameters(map[string]string{"Level": "DEBUG", "Name": "abc"}); err != nil {
		t.Errorf("valid overrides refused: %v", err)
	}
	err := tpl.CheckParameters(map[string]string{"Level": "LOUD", "Name": "ABC", "Nope": "1"})
	if err == nil {
		t.Fatal("invalid overrides accepted")
	}
	for _, want := range []string{`Level="LOUD" is not one of DEBUG, INFO`, `Name="ABC" does not match`, "Nope is no parameter"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// The project's functions, as `sam local invoke` resolves them.
func TestProjectFunctionsLocally(t *testing.T) {
	tpl := projectTemplate(t)
	for _, fn := range pipelineFunctions {
		c, err := tpl.FunctionConfig(fn, LocalStack(nil))
		if err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		if c.Runtime != "provided.al2023" || c.Handler != "bootstrap" || !reflect.DeepEqual(c.Architectures, []string{"arm64"}) ||
			c.Timeout < time.Second || c.MemoryMB < 128 || c.LogFormat != "JSON" || c.LogLevel != "INFO" ||
			!strings.HasPrefix(c.Name, "local-") || c.LogGroup != "/aws/lambda/"+c.Name {
			t.Errorf("%s: %+v", fn, c)
		}
		if c.Environment["BUCKET"] != "local-data-123456789012-us-east-1" {
			t.Errorf("%s: BUCKET = %q", fn, c.Environment["BUCKET"])
		}
	}
}
