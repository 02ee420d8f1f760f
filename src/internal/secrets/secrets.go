// Package secrets resolves database credentials from AWS Systems Manager
// Parameter Store (SecureString, decrypted) or AWS Secrets Manager (the JSON
// secret RDS writes), and caches them across warm invocations.
//
// Values are never logged and never appear in errors: errors name the
// parameter or secret, not its content.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

type ssmAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

type secretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Source says where the credentials live. Exactly one of SecretARN or
// PasswordParam is expected; User or UserParam supply the user name when the
// password comes from Parameter Store.
type Source struct {
	User          string // literal user name
	UserParam     string // SSM parameter holding the user name
	PasswordParam string // SSM SecureString parameter holding the password
	SecretARN     string // Secrets Manager secret (JSON with username and password)
}

// Empty reports whether the source names no secret store at all.
func (s Source) Empty() bool {
	return s.UserParam == "" && s.PasswordParam == "" && s.SecretARN == ""
}

// Credentials is a user name and its password.
type Credentials struct {
	User     string
	Password string
}

// String never shows the password, so a credential printed by mistake leaks nothing.
func (c Credentials) String() string { return "Credentials{User:" + c.User + ", Password:<redacted>}" }

// GoString never shows the password either (%#v).
func (c Credentials) GoString() string { return c.String() }

// Resolver fetches credentials and keeps them for TTL.
type Resolver struct {
	SSM            ssmAPI
	SecretsManager secretsManagerAPI
	TTL            time.Duration    // 0 means keep until Invalidate
	Now            func() time.Time // injected for tests; defaults to time.Now

	mu      sync.Mutex
	cached  Credentials
	fetched time.Time
	ok      bool
}

// Credentials returns the cached credentials or fetches them from src.
func (r *Resolver) Credentials(ctx context.Context, src Source) (Credentials, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if r.ok && (r.TTL == 0 || now().Sub(r.fetched) < r.TTL) {
		return r.cached, nil
	}
	c, err := r.fetch(ctx, src)
	if err != nil {
		return Credentials{}, err
	}
	r.cached, r.fetched, r.ok = c, now(), true
	return c, nil
}

// Invalidate drops the cached credentials, for example after the database
// rejected them because the secret was rotated.
func (r *Resolver) Invalidate() {
	r.mu.Lock()
	r.ok = false
	r.cached = Credentials{}
	r.mu.Unlock()
}

func (r *Resolver) fetch(ctx context.Context, src Source) (Credentials, error) {
	if src.SecretARN != "" {
		return r.fromSecretsManager(ctx, src)
	}
	if src.PasswordParam == "" {
		return Credentials{}, errors.New("no credential source: set DB_SECRET_ARN or DB_PASSWORD_PARAM")
	}
	if r.SSM == nil {
		return Credentials{}, errors.New("no SSM client configured")
	}
	c := Credentials{User: src.User}
	if src.UserParam != "" {
		u, err := r.parameter(ctx, src.UserParam)
		if err != nil {
			return Credentials{}, err
		}
		c.User = u
	}
	if c.User == "" {
		return Credentials{}, errors.New("no database user: set DB_USER or DB_USER_PARAM")
	}
	p, err := r.parameter(ctx, src.PasswordParam)
	if err != nil {
		return Credentials{}, err
	}
	c.Password = p
	return c, nil
}

func (r *Resolver) parameter(ctx context.Context, name string) (string, error) {
	out, err := r.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("reading SSM parameter %s: %w", name, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil || *out.Parameter.Value == "" {
		return "", fmt.Errorf("reading SSM parameter %s: empty value", name)
	}
	return *out.Parameter.Value, nil
}

// rdsSecret is the JSON document RDS and Secrets Manager rotation write.
type rdsSecret struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (r *Resolver) fromSecretsManager(ctx context.Context, src Source) (Credentials, error) {
	if r.SecretsManager == nil {
		return Credentials{}, errors.New("no Secrets Manager client configured")
	}
	out, err := r.SecretsManager.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(src.SecretARN)})
	if err != nil {
		return Credentials{}, fmt.Errorf("reading secret %s: %w", src.SecretARN, err)
	}
	if out.SecretString == nil {
		return Credentials{}, fmt.Errorf("reading secret %s: no SecretString", src.SecretARN)
	}
	var s rdsSecret
	// The decoder's error would quote part of the secret: report only that it is malformed.
	if json.Unmarshal([]byte(*out.SecretString), &s) != nil {
		return Credentials{}, fmt.Errorf("reading secret %s: not a JSON object with username and password", src.SecretARN)
	}
	if s.Password == "" {
		return Credentials{}, fmt.Errorf("reading secret %s: no password field", src.SecretARN)
	}
	c := Credentials{User: s.Username, Password: s.Password}
	if c.User == "" {
		c.User = src.User
	}
	if c.User == "" {
		return Credentials{}, fmt.Errorf("reading secret %s: no username field and no DB_USER", src.SecretARN)
	}
	return c, nil
}
