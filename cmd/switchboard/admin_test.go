package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/app"
	"github.com/switchboard-hub/switchboard/hub/config"
	"github.com/switchboard-hub/switchboard/hub/store"
)

func TestKeysCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "hub.yaml")
	if err := os.WriteFile(cfgPath, []byte("store: {embedded: {path: sb.db}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("keys", "create", "--role", "agent", "--agent", "lan", "--name", "Lan's phone", "--expires", "30d", "--config", cfgPath)
	key := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(key, admin.KeyPrefix) || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "agent lan") {
		t.Fatalf("create: %d %q %s", code, out, errOut)
	}
	id := strings.Split(strings.TrimPrefix(key, admin.KeyPrefix), "_")[0]

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create", "--role", "root", "--name", "x"}, 2, "--role"},
		{[]string{"create", "--role", "viewer"}, 2, "--name"},
		{[]string{"create", "--role", "viewer", "--name", "x", "--agent", "lan"}, 2, "--agent"},
		{[]string{"create", "--role", "viewer", "--name", "x", "--expires", "soon"}, 2, "--expires"},
		{[]string{"revoke"}, 2, "usage"},
		{[]string{"revoke", "nope"}, 1, `no key "nope"`},
		{[]string{"rotate"}, 2, "usage"},
	} {
		code, _, errOut := runCLI(append(append([]string{"keys"}, c.args...), "--config", cfgPath)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("keys %v: %d %s", c.args, code, errOut)
		}
	}

	code, out, _ = runCLI("keys", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "Lan's phone") || !strings.Contains(out, "active") || strings.Contains(out, key) {
		t.Errorf("list: %d\n%s", code, out)
	}
	code, out, _ = runCLI("keys", "revoke", id, "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "revoked key "+id) {
		t.Errorf("revoke: %d %s", code, out)
	}
	code, out, _ = runCLI("keys", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("list after revoke: %d\n%s", code, out)
	}

	// The store has the hash only, the key is refused, and both CLI actions
	// are in the admin audit log.
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, _, err := admin.GetKey(ctx, st, id)
	if err != nil || k.Hash != admin.HashKey(key) || k.Agent != "lan" || k.RevokedAt.IsZero() || k.ExpiresAt.Sub(k.CreatedAt) != 30*24*time.Hour {
		t.Errorf("stored: %+v %v", k, err)
	}
	if _, err := admin.Authenticate(ctx, st, key, "", time.Now()); err == nil {
		t.Errorf("a revoked key was accepted")
	}
	recs, _, err := st.Range(ctx, admin.AuditLog, store.LogRange{Limit: 100})
	if err != nil || len(recs) != 2 {
		t.Fatalf("audit: %d %v", len(recs), err)
	}
	var e admin.AuditEntry
	_ = json.Unmarshal(recs[1].Data, &e)
	if e.Action != "keys.revoke" || e.Target != id || e.Actor.KeyID != "cli" {
		t.Errorf("audit entry: %+v", e)
	}
}
