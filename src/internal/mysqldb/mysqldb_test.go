package mysqldb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/envconfig"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets"
	"github.com/dataeng/rickmorty-pipeline/src/internal/secrets/secretstest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

const password = "Pw-ζ-4-test-only"

// TestConnectorReadsThePasswordFromSSMAndSecretsManager connects to the real
// MariaDB as a user whose password lives only in SSM and Secrets
// Manager (moto_server), through the real SDK clients.
func TestConnectorReadsThePasswordFromSSMAndSecretsManager(t *testing.T) {
	admin, _ := testenv.MySQL(t)
	ctx := context.Background()
	user := testenv.RandomName("u")
	if _, err := admin.ExecContext(ctx, "CREATE USER ?@'%' IDENTIFIED BY ?", user, password); err != nil {
		t.Fatal(err)
	}
	defer admin.ExecContext(ctx, "DROP USER ?@'%'", user)

	fake := secretstest.New(t)
	fake.SetParameter(t, "/rm/db/password", password)
	rdsARN := fake.SetSecret(t, "rds", `{"username":"`+user+`","password":"`+password+`"}`)

	for _, src := range []secrets.Source{
		{User: user, PasswordParam: "/rm/db/password"},
		{SecretARN: rdsARN},
	} {
		cfg := mysqldb.Config{Host: "127.0.0.1", Port: 3306, Name: "", Secrets: src, TLS: mysqldb.TLSOff, MaxOpenConns: 2}
		conn := mysqldb.NewConnector(cfg, &secrets.Resolver{SSM: fake.SSM(), SecretsManager: fake.SecretsManager()})
		db, err := conn.DB(ctx)
		if err != nil {
			t.Fatalf("%+v: %v", src, err)
		}
		var got, tz string
		if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER(), @@session.time_zone").Scan(&got, &tz); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, user+"@") || tz != "+00:00" {
			t.Errorf("connected as %q with time_zone %q, want %s and +00:00", got, tz, user)
		}
		conn.Close()
	}

	// A wrong password: the error says access was denied and never shows a password.
	fake.SetParameter(t, "/rm/db/password", "wrong-"+password)
	conn := mysqldb.NewConnector(mysqldb.Config{Host: "127.0.0.1", Port: 3306, Secrets: secrets.Source{User: user, PasswordParam: "/rm/db/password"}, TLS: mysqldb.TLSOff, MaxOpenConns: 1},
		&secrets.Resolver{SSM: fake.SSM()})
	_, err := conn.DB(ctx)
	if err == nil || !mysqldb.IsAuthError(err) {
		t.Fatalf("err = %v, want access denied", err)
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestConfigFromEnvReportsEverythingMissing(t *testing.T) {
	env := envconfig.New(func(string) string { return "" })
	mysqldb.ConfigFromEnv(env)
	err := env.Err()
	for _, want := range []string{"DB_HOST", "DB_NAME", "DB_SECRET_ARN or DB_PASSWORD_PARAM"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	env = envconfig.New(func(k string) string {
		return map[string]string{"MYSQL_DSN": "root:pw@tcp(127.0.0.1:3306)/rm"}[k]
	})
	c := mysqldb.ConfigFromEnv(env)
	if env.Err() != nil || strings.Contains(c.Redacted(), "pw") {
		t.Errorf("DSN config: err=%v redacted=%q", env.Err(), c.Redacted())
	}
}
