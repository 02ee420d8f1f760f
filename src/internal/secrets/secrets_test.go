package secrets_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets/secretstest"
)

const password = "s3cr3t-Pa55-ζ"

func TestCredentialsThroughTheRealSDK(t *testing.T) {
	fake := secretstest.New(t)
	fake.SetParameter(t, "/rm/db/user", "etl")
	fake.SetParameter(t, "/rm/db/password", password)
	arn := fake.SetSecret(t, "rds!db-1", `{"username":"admin","password":"`+password+`","engine":"mysql","host":"db","port":3306}`)

	tests := []struct {
		name string
		src  secrets.Source
		want secrets.Credentials
	}{
		{"ssm user and password", secrets.Source{UserParam: "/rm/db/user", PasswordParam: "/rm/db/password"}, secrets.Credentials{User: "etl", Password: password}},
		{"ssm password with literal user", secrets.Source{User: "app", PasswordParam: "/rm/db/password"}, secrets.Credentials{User: "app", Password: password}},
		{"secrets manager rds secret", secrets.Source{SecretARN: arn}, secrets.Credentials{User: "admin", Password: password}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &secrets.Resolver{SSM: fake.SSM(), SecretsManager: fake.SecretsManager()}
			got, err := r.Credentials(context.Background(), tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCredentialsAreCachedUntilInvalidated(t *testing.T) {
	fake := secretstest.New(t)
	fake.SetParameter(t, "/p", password)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &secrets.Resolver{SSM: fake.SSM(), TTL: time.Hour, Now: func() time.Time { return now }}
	src := secrets.Source{User: "u", PasswordParam: "/p"}
	for range 3 {
		if _, err := r.Credentials(context.Background(), src); err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.Calls(); got != 1 {
		t.Errorf("warm calls hit the API %d times, want 1", got)
	}
	fake.SetParameter(t, "/p", "rotated")
	r.Invalidate()
	c, err := r.Credentials(context.Background(), src)
	if err != nil || c.Password != "rotated" {
		t.Errorf("after Invalidate got %v, %v; want the rotated password", c, err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := r.Credentials(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if got := fake.Calls(); got != 3 {
		t.Errorf("API calls = %d, want 3 (first, after invalidate, after TTL)", got)
	}
}

func TestErrorsNameTheSourceButNeverTheValue(t *testing.T) {
	fake := secretstest.New(t)
	fake.SetSecret(t, "bad-json", "{not json "+password)
	fake.SetSecret(t, "no-password", `{"username":"u"}`)
	tests := []struct {
		name string
		src  secrets.Source
		want string
	}{
		{"missing parameter", secrets.Source{User: "u", PasswordParam: "/missing"}, "/missing"},
		{"missing secret", secrets.Source{SecretARN: "arn:missing"}, "arn:missing"},
		{"malformed secret", secrets.Source{SecretARN: "bad-json"}, "not a JSON object"},
		{"secret without password", secrets.Source{SecretARN: "no-password"}, "no password"},
		{"no source", secrets.Source{User: "u"}, "DB_SECRET_ARN or DB_PASSWORD_PARAM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &secrets.Resolver{SSM: fake.SSM(), SecretsManager: fake.SecretsManager()}
			_, err := r.Credentials(context.Background(), tt.src)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestCredentialsNeverPrintThePassword(t *testing.T) {
	c := secrets.Credentials{User: "u", Password: password}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, password) {
			t.Errorf("formatted credentials leak the password: %s", s)
		}
	}
}
