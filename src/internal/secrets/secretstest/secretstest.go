// Package secretstest gives tests SSM Parameter Store and Secrets Manager
// over their real wire protocol: moto_server (an AWS emulator, installed on
// these machines with pyenv) started for the test, reached through the real
// SDK clients (signing, serialization, error decoding), behind a counting
// proxy. Without moto_server the test is skipped, or failed under
// TEST_REQUIRE_SERVERS=1.
package secretstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// Server is a moto_server of the test's own, and a proxy in front of it that
// counts the requests the code under test makes.
type Server struct {
	URL   string // the proxy: give it to the code under test
	moto  string // moto_server itself: for the test's own setup
	calls atomic.Int64
}

// New starts moto_server for tb and stops it when tb ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		testenv.Unavailable(tb, "moto_server (SSM and Secrets Manager emulator, pyenv's moto[server]): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	logFile, err := os.Create(filepath.Join(tb.TempDir(), "moto.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the pyenv shim and python, stopped together
	if err := cmd.Start(); err != nil {
		testenv.Unavailable(tb, "starting moto_server: %v", err)
	}
	tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logFile.Close()
	})
	s := &Server{moto: fmt.Sprintf("http://127.0.0.1:%d", port)}
	if err := waitUp(s.moto+"/moto-api/", 30*time.Second); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		tb.Fatalf("moto_server did not start: %v\n%s", err, log)
	}
	target, _ := url.Parse(s.moto)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	tb.Cleanup(front.Close)
	s.URL = front.URL
	return s
}

func waitUp(u string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SetParameter stores a SecureString parameter (not counted).
func (s *Server) SetParameter(tb testing.TB, name, value string) {
	tb.Helper()
	_, err := s.ssm(s.moto).PutParameter(context.Background(), &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true),
	})
	if err != nil {
		tb.Fatalf("putting parameter %s: %v", name, err)
	}
}

// SetSecret stores a secret string under name, creating the secret or
// adding a version, and returns the secret's ARN (not counted).
func (s *Server) SetSecret(tb testing.TB, name, value string) string {
	tb.Helper()
	ctx := context.Background()
	sm := s.secretsManager(s.moto)
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)})
	var exists *smtypes.ResourceExistsException
	switch {
	case err == nil:
		return aws.ToString(out.ARN)
	case errors.As(err, &exists):
		put, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(value)})
		if err != nil {
			tb.Fatalf("putting secret %s: %v", name, err)
		}
		return aws.ToString(put.ARN)
	}
	tb.Fatalf("creating secret %s: %v", name, err)
	return ""
}

// Calls is the number of API requests the code under test made.
func (s *Server) Calls() int64 { return s.calls.Load() }

// SSM returns a real SDK client of the emulator, through the counting proxy.
func (s *Server) SSM() *ssm.Client { return s.ssm(s.URL) }

// SecretsManager returns a real SDK client of the emulator, through the
// counting proxy.
func (s *Server) SecretsManager() *secretsmanager.Client { return s.secretsManager(s.URL) }

func (s *Server) ssm(endpoint string) *ssm.Client {
	return ssm.NewFromConfig(config(), func(o *ssm.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

func (s *Server) secretsManager(endpoint string) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(config(), func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

func config() aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
}
