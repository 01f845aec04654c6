package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestServeFlagsPrecedence checks flag > environment > default for every
// flag of the contract.
func TestServeFlagsPrecedence(t *testing.T) {
	t.Setenv("COMMUNIQUE_ADDR", "127.0.0.1:9000")
	t.Setenv("COMMUNIQUE_DATA", "/env/data")
	t.Setenv("COMMUNIQUE_REDIS", "")
	t.Setenv("COMMUNIQUE_ADMIN_TOKEN", "env-admin")
	t.Setenv("COMMUNIQUE_ALLOWED_ORIGINS", "https://a.example, https://b.example")

	o, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.addr != "127.0.0.1:9000" || o.data != "/env/data" || o.adminToken != "env-admin" {
		t.Errorf("from env: got %+v", o)
	}
	if got := splitList(o.allowedOrigins); len(got) != 2 || got[1] != "https://b.example" {
		t.Errorf("allowed origins from env: got %q", got)
	}

	o, err = parseServe([]string{"--addr", "127.0.0.1:9001", "--data", "/flag/data", "--admin-token", "flag-admin", "--allowed-origins", "https://c.example"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.addr != "127.0.0.1:9001" || o.data != "/flag/data" || o.adminToken != "flag-admin" || o.allowedOrigins != "https://c.example" {
		t.Errorf("flags must win over env: got %+v", o)
	}
}

func TestCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "Usage"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve", "extra"}, 1, `unexpected argument "extra"`},
		{[]string{"serve", "--no-such-flag"}, 1, "flag provided but not defined"},
		{[]string{"serve", "--redis", "redis://127.0.0.1:1", "--data", "x"}, 1, "--redis"},
		{[]string{"serve", "--log-level", "loud"}, 1, "--log-level"},
		{[]string{"version"}, 0, "communique"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("run(%q) = %d, %q%q; want %d and %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.out)
		}
	}
}
