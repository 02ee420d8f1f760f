// Package secretstest serves the JSON protocol of SSM Parameter Store and
// Secrets Manager over HTTP, so tests exercise the real AWS SDK clients
// (signing, serialization, error decoding) without AWS.
package secretstest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Server is a fake SSM + Secrets Manager endpoint.
type Server struct {
	*httptest.Server
	mu         sync.Mutex
	parameters map[string]string // name -> value (SecureString)
	secrets    map[string]string // ARN or name -> SecretString
	calls      atomic.Int64
}

// New starts a fake endpoint; Close it when done.
func New() *Server {
	s := &Server{parameters: map[string]string{}, secrets: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// SetParameter stores a SecureString parameter.
func (s *Server) SetParameter(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parameters[name] = value
}

// SetSecret stores a secret string under id (an ARN or a name).
func (s *Server) SetSecret(id, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[id] = value
}

// Calls is the number of API requests served.
func (s *Server) Calls() int64 { return s.calls.Load() }

// SSM returns a real SDK client pointed at the fake.
func (s *Server) SSM() *ssm.Client {
	return ssm.NewFromConfig(s.config(), func(o *ssm.Options) { o.BaseEndpoint = aws.String(s.URL) })
}

// SecretsManager returns a real SDK client pointed at the fake.
func (s *Server) SecretsManager() *secretsmanager.Client {
	return secretsmanager.NewFromConfig(s.config(), func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(s.URL) })
}

func (s *Server) config() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, http.StatusForbidden, "MissingAuthenticationTokenException", "request is not signed")
		return
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "body is not JSON")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch target := r.Header.Get("X-Amz-Target"); target {
	case "AmazonSSM.GetParameter":
		name, _ := in["Name"].(string)
		v, ok := s.parameters[name]
		if !ok {
			writeError(w, http.StatusBadRequest, "ParameterNotFound", "")
			return
		}
		if decrypt, _ := in["WithDecryption"].(bool); !decrypt {
			v = "AQICAHencrypted-blob" // what SSM returns for a SecureString read without decryption
		}
		writeJSON(w, map[string]any{"Parameter": map[string]any{
			"Name": name, "Type": "SecureString", "Value": v, "Version": 1,
			"ARN": "arn:aws:ssm:us-east-1:123456789012:parameter" + name,
		}})
	case "secretsmanager.GetSecretValue":
		id, _ := in["SecretId"].(string)
		v, ok := s.secrets[id]
		if !ok {
			writeError(w, http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
			return
		}
		writeJSON(w, map[string]any{"ARN": id, "Name": id, "SecretString": v, "VersionId": "v1", "VersionStages": []string{"AWSCURRENT"}})
	default:
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "unknown target "+target)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}
