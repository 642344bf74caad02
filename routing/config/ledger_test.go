package config

import (
	"path/filepath"
	"reflect"
	"testing"
)

func TestLedgerAndAdminProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown backend", "ledger: {backend: mysql}\n", []string{`a.yaml:2: ledger.backend: backend "mysql" must be sqlite or postgres`}},
		{"postgres without dsn", "ledger: {backend: postgres}\n", []string{"a.yaml:2: ledger.postgres: backend postgres needs postgres.dsn"}},
		{"postgres dsn written inline", "ledger: {backend: postgres, postgres: {dsn: {value: x}}}\n", []string{
			`a.yaml:2: ledger.postgres.dsn: unknown field "value" (secret values cannot be written in the configuration; use env or file)`,
			"a.yaml:2: ledger.postgres.dsn: exactly one of env or file is required",
		}},
		{"postgres section with sqlite backend", "ledger: {backend: sqlite, postgres: {dsn: {env: DSN}}}\n",
			[]string{`a.yaml:2: ledger.postgres: postgres is set but backend is "sqlite"`}},
		{"sqlite section with postgres backend", "ledger: {backend: postgres, sqlite: {path: x.db}, postgres: {dsn: {env: DSN}}}\n",
			[]string{"a.yaml:2: ledger.sqlite: sqlite is set but backend is postgres"}},
		{"negative retention", "ledger: {retention_days: -1}\n",
			[]string{"a.yaml:2: ledger.retention_days: retention_days must be between 1 and 3650 (0 or unset: 90)"}},
		{"queue too large", "ledger: {queue_size: 2000000}\n",
			[]string{"a.yaml:2: ledger.queue_size: queue_size must be between 1 and 1000000 (0 or unset: 10000)"}},
		{"retention as string", "ledger: {retention_days: \"90\"}\n",
			[]string{"a.yaml:2: ledger.retention_days: expected an integer, got a string"}},
		{"admin token inline", "admin: {token: {value: x}}\n", []string{
			`a.yaml:2: admin.token: unknown field "value" (secret values cannot be written in the configuration; use env or file)`,
			"a.yaml:2: admin.token: exactly one of env or file is required",
		}},
		{"admin unknown field", "admin: {password: x}\n", []string{`a.yaml:2: admin: unknown field "password"`}},
		{"metrics label unknown", "metrics: {labels: [tenant, key]}\n", []string{`a.yaml:2: metrics.labels[1]: label "key" must be tenant or app`}},
		{"metrics label twice", "metrics: {labels: [app, app]}\n", []string{`a.yaml:2: metrics.labels[1]: label "app" is listed twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"a.yaml": "version: 1\n" + tt.yaml})
			_, got := load(t, dir)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

func TestLedgerTwoFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": "version: 1\nledger: {}\n", "b.yaml": "version: 1\nledger: {}\nadmin: {}\n", "c.yaml": "version: 1\nadmin: {}\n"})
	_, got := load(t, dir)
	want := []string{"b.yaml:2: ledger: ledger is already set at a.yaml:2", "c.yaml:2: admin: admin is already set at b.yaml:3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got  %q\n want %q", got, want)
	}
}

func TestLedgerDefaults(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.yaml": "version: 1\nledger: {sqlite: {path: data/usage.db}}\nadmin: {token: {file: admin-token}}\n",
		"b.yaml": "version: 1\n",
	})
	cfg, probs := load(t, dir)
	if probs != nil {
		t.Fatal(probs)
	}
	want := &Ledger{Backend: "sqlite", SQLite: &SQLiteLedger{Path: filepath.Join(dir, "data/usage.db")},
		RetentionDays: DefaultRetentionDays, QueueSize: DefaultLedgerQueue, BatchSize: DefaultLedgerBatch}
	if !reflect.DeepEqual(cfg.Ledger, want) {
		t.Errorf("ledger = %+v, want %+v", cfg.Ledger, want)
	}
	if got := cfg.Admin.Token.File; got != filepath.Join(dir, "admin-token") {
		t.Errorf("admin token file = %q", got)
	}
	if got := cfg.SecretFiles(); !reflect.DeepEqual(got, []string{filepath.Join(dir, "admin-token")}) {
		t.Errorf("secret files = %q", got)
	}

	dir = t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": "version: 1\nledger: {backend: postgres, postgres: {dsn: {env: DSN}}, retention_days: 7}\n"})
	if cfg, probs = load(t, dir); probs != nil {
		t.Fatal(probs)
	}
	if l := cfg.Ledger; l.Postgres.DSN.Env != "DSN" || l.RetentionDays != 7 || l.SQLite != nil {
		t.Errorf("ledger = %+v", l)
	}
}
