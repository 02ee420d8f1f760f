package envconfig

import (
	"strings"
	"testing"
	"time"
)

func TestEnvReportsEveryProblemAtOnce(t *testing.T) {
	vars := map[string]string{
		"COUNT":   "many",
		"RANGE":   "99",
		"FLAG":    "maybe",
		"WAIT":    "-3s",
		"MODE":    "loud",
		"PRESENT": " value ",
	}
	e := New(func(k string) string { return vars[k] })
	e.Int("COUNT", 1, 0, 10)
	e.Int("RANGE", 1, 0, 10)
	e.Bool("FLAG", false)
	e.Duration("WAIT", time.Second)
	e.OneOf("MODE", "quiet", "quiet", "normal")
	e.Required("MISSING")
	if got := e.Required("PRESENT"); got != "value" {
		t.Errorf("Required(PRESENT) = %q, want trimmed value", got)
	}
	err := e.Err()
	if err == nil {
		t.Fatal("Err() = nil, want every problem")
	}
	for _, name := range []string{"COUNT", "RANGE", "FLAG", "WAIT", "MODE", "MISSING"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if strings.Contains(err.Error(), "PRESENT") {
		t.Errorf("error %q names a valid variable", err)
	}
}

func TestEnvDefaultsAndValues(t *testing.T) {
	vars := map[string]string{"N": "7", "B": "yes", "D": "2m", "L": " a, ,b ,c", "S": "x"}
	e := New(func(k string) string { return vars[k] })
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"int", e.Int("N", 1, 0, 10), 7},
		{"int default", e.Int("NONE", 3, 0, 10), 3},
		{"bool", e.Bool("B", false), true},
		{"duration", e.Duration("D", 0), 2 * time.Minute},
		{"list", strings.Join(e.List("L", nil), "|"), "a|b|c"},
		{"list default", strings.Join(e.List("NONE", []string{"z"}), "|"), "z"},
		{"string", e.String("S", "d"), "x"},
		{"string default", e.String("NONE", "d"), "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	if err := e.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
}
