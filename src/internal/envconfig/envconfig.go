// Package envconfig reads typed settings from the environment and reports every
// missing or invalid variable at once, so a misconfigured function fails its
// cold start with one complete error instead of one variable at a time.
package envconfig

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Env reads variables through Getenv and collects the problems it finds.
type Env struct {
	getenv func(string) string
	errs   []error
}

// New returns an Env reading variables with getenv (usually os.Getenv).
func New(getenv func(string) string) *Env {
	return &Env{getenv: getenv}
}

// Err returns every problem found so far, joined, or nil.
func (e *Env) Err() error {
	return errors.Join(e.errs...)
}

// Fail records a problem that a caller found while combining variables.
func (e *Env) Fail(format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf(format, args...))
}

func (e *Env) lookup(name string) string {
	return strings.TrimSpace(e.getenv(name))
}

// String returns the variable, or def when it is unset or empty.
func (e *Env) String(name, def string) string {
	if v := e.lookup(name); v != "" {
		return v
	}
	return def
}

// Required returns the variable and records an error when it is unset or empty.
func (e *Env) Required(name string) string {
	v := e.lookup(name)
	if v == "" {
		e.errs = append(e.errs, fmt.Errorf("%s is required", name))
	}
	return v
}

// Int returns the variable as an integer in [min, max], or def when unset.
func (e *Env) Int(name string, def, min, max int) int {
	v := e.lookup(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q is not an integer", name, v))
		return def
	}
	if n < min || n > max {
		e.errs = append(e.errs, fmt.Errorf("%s=%d is outside [%d, %d]", name, n, min, max))
		return def
	}
	return n
}

// Bool returns the variable as a boolean (true/false/1/0/yes/no), or def when unset.
func (e *Env) Bool(name string, def bool) bool {
	v := strings.ToLower(e.lookup(name))
	switch v {
	case "":
		return def
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	e.errs = append(e.errs, fmt.Errorf("%s=%q is not a boolean", name, v))
	return def
}

// Duration returns the variable as a non-negative duration ("30s", "5m"), or def when unset.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v := e.lookup(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.errs = append(e.errs, fmt.Errorf("%s=%q is not a non-negative duration such as 30s", name, v))
		return def
	}
	return d
}

// List returns the comma-separated variable with blanks dropped, or def when unset.
func (e *Env) List(name string, def []string) []string {
	v := e.lookup(name)
	if v == "" {
		return def
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// OneOf returns the variable when it is one of allowed, or def when unset.
func (e *Env) OneOf(name, def string, allowed ...string) string {
	v := e.lookup(name)
	if v == "" {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.errs = append(e.errs, fmt.Errorf("%s=%q must be one of %s", name, v, strings.Join(allowed, ", ")))
	return def
}
