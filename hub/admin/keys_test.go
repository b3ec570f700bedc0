package admin_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/admin"
)

func TestKeys(t *testing.T) {
	h := startHub(t, hubOpts{})

	// Created keys are shown once, prefixed, and work at once.
	var created struct {
		admin.Key
		Secret string `json:"key"`
	}
	r := h.mustDo(201, "POST", "/keys", bootstrap, map[string]any{"name": "ci bot", "role": "supervisor", "expires_in": "720h"})
	r.json(t, &created)
	if !strings.HasPrefix(created.Secret, admin.KeyPrefix+created.ID+"_") || len(created.Secret) < 40 {
		t.Fatalf("key %q id %q", created.Secret, created.ID)
	}
	if r.header.Get("Cache-Control") != "no-store" || time.Until(created.ExpiresAt) < 719*time.Hour {
		t.Errorf("cache-control %q expires %s", r.header.Get("Cache-Control"), created.ExpiresAt)
	}
	var me admin.Principal
	h.mustDo(200, "GET", "/me", created.Secret, nil).json(t, &me)
	if me.KeyID != created.ID || me.Role != admin.RoleSupervisor || me.Name != "ci bot" {
		t.Errorf("me: %+v", me)
	}
	// Only the hash is stored, and nothing lists the key or its hash.
	raw, _, err := h.app.Store.Get(context.Background(), admin.NSKeys, created.ID)
	if err != nil || strings.Contains(string(raw), created.Secret) || !strings.Contains(string(raw), admin.HashKey(created.Secret)) {
		t.Errorf("stored key: %s %v", raw, err)
	}
	for _, path := range []string{"/keys", "/keys/" + created.ID} {
		b := string(h.mustDo(200, "GET", path, bootstrap, nil).body)
		if strings.Contains(b, created.Secret) || strings.Contains(b, admin.HashKey(created.Secret)) || !strings.Contains(b, created.ID) {
			t.Errorf("GET %s shows the key or its hash: %s", path, b)
		}
	}

	// Bad requests name the field.
	for _, c := range []struct {
		name  string
		body  any
		field string
	}{
		{"bad role", map[string]any{"name": "x", "role": "root"}, "role"},
		{"agent without agent id", map[string]any{"name": "x", "role": "agent"}, "agent"},
		{"agent id on a viewer", map[string]any{"name": "x", "role": "viewer", "agent": "lan"}, "agent"},
		{"no name", map[string]any{"role": "viewer"}, "name"},
		{"unknown field", map[string]any{"name": "x", "role": "viewer", "scopes": "all"}, "scopes"},
		{"wrong type", map[string]any{"name": 5, "role": "viewer"}, "name"},
		{"bad expiry", map[string]any{"name": "x", "role": "viewer", "expires_in": "soon"}, "expires_in"},
		{"no body", nil, "body"},
		{"malformed", `{"name": `, "body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("POST", "/keys", bootstrap, c.body)
			p := r.problem(t)
			errs, _ := p["errors"].([]any)
			if r.status != 422 || problemType(p) != admin.PValidation || len(errs) != 1 || errs[0].(map[string]any)["field"] != c.field ||
				!strings.Contains(p["detail"].(string), c.field) {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}

	// Keys not accepted: unknown, malformed, revoked, expired, bootstrap-like.
	revoked := h.key("viewer", "")
	revokedID := strings.Split(strings.TrimPrefix(revoked, admin.KeyPrefix), "_")[0]
	h.mustDo(200, "GET", "/me", revoked, nil)
	var rk admin.Key
	h.mustDo(200, "DELETE", "/keys/"+revokedID, bootstrap, nil).json(t, &rk)
	if rk.RevokedAt.IsZero() || rk.RevokedBy != admin.BootstrapID {
		t.Errorf("revoked: %+v", rk)
	}
	expired, _, err := admin.CreateKey(context.Background(), h.app.Store, admin.NewKey{Name: "old", Role: admin.RoleAdmin, ExpiresIn: time.Minute}, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tampered := created.Secret[:len(created.Secret)-2] + "xx"
	for name, key := range map[string]string{"revoked": revoked, "expired": expired, "tampered": tampered, "unknown id": admin.KeyPrefix + "aaaaaaaa_bbbb",
		"not a key": "hello", "bootstrap prefix": bootstrap[:10]} {
		r := h.do("GET", "/me", key, nil)
		if r.status != 401 || problemType(r.problem(t)) != admin.PUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s key: %d %s", name, r.status, r.body)
		}
	}
	// X-API-Key works as well as Bearer.
	h.mustDo(200, "GET", "/me", "", nil, "X-API-Key", created.Secret)
	// The bootstrap key cannot be revoked through the API; unknown keys are 404.
	if r := h.do("DELETE", "/keys/"+admin.BootstrapID, bootstrap, nil); r.status != 409 {
		t.Errorf("revoke bootstrap: %d %s", r.status, r.body)
	}
	if r := h.do("DELETE", "/keys/nope", bootstrap, nil); r.status != 404 || problemType(r.problem(t)) != admin.PNotFound {
		t.Errorf("revoke unknown: %d %s", r.status, r.body)
	}

	// Lists page with a cursor and no duplicates.
	for i := 0; i < 5; i++ {
		h.key("viewer", "")
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		var pg struct {
			Items      []admin.Key `json:"items"`
			NextCursor string      `json:"next_cursor"`
		}
		h.mustDo(200, "GET", "/keys?limit=3&cursor="+cursor, bootstrap, nil).json(t, &pg)
		for _, k := range pg.Items {
			if seen[k.ID] {
				t.Errorf("key %s twice", k.ID)
			}
			seen[k.ID] = true
		}
		if pg.NextCursor == "" || pages > 10 {
			break
		}
		cursor = pg.NextCursor
	}
	if len(seen) != 8 { // ci bot, revoked, expired, 5 viewers
		t.Errorf("paged through %d keys, want 8", len(seen))
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "cursor=!!"} {
		r := h.do("GET", "/keys?"+q, bootstrap, nil)
		if p := r.problem(t); r.status != 422 || !strings.Contains(p["detail"].(string), strings.Split(q, "=")[0]) {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
}

func TestAuditLog(t *testing.T) {
	h := startHub(t, hubOpts{})
	sup := h.key("supervisor", "")
	supID := strings.Split(strings.TrimPrefix(sup, admin.KeyPrefix), "_")[0]
	start := time.Now().UTC().Add(-time.Second)

	// Request ids: a sane one is echoed, a bad one replaced; problems carry it.
	r := h.do("POST", "/rules/validate", sup, map[string]any{"files": map[string]string{"x.yaml": "scoring: [\n"}}, "X-Request-Id", "req-123")
	if r.header.Get("X-Request-Id") != "req-123" || r.problem(t)["request_id"] != "req-123" {
		t.Errorf("request id: %q %s", r.header.Get("X-Request-Id"), r.body)
	}
	r = h.do("GET", "/me", sup, nil, "X-Request-Id", strings.Repeat("x", 300))
	if rid := r.header.Get("X-Request-Id"); len(rid) != 32 {
		t.Errorf("long request id not replaced: %q", rid)
	}

	created := h.mustDo(201, "POST", "/keys", bootstrap, map[string]any{"name": "audited", "role": "viewer"}, "X-Request-Id", "req-create")
	var k admin.Key
	created.json(t, &k)
	h.mustDo(200, "DELETE", "/keys/"+k.ID, bootstrap, nil, "X-Request-Id", "req-revoke")
	h.do("DELETE", "/keys/"+k.ID, sup, nil) // forbidden: still recorded? no: refused before the handler
	h.mustDo(200, "GET", "/plugins", sup, nil)

	type entries struct {
		Items      []admin.AuditEntry `json:"items"`
		NextCursor string             `json:"next_cursor"`
	}
	var all entries
	h.mustDo(200, "GET", "/audit", sup, nil).json(t, &all)
	byReq := map[string]admin.AuditEntry{}
	for _, e := range all.Items {
		byReq[e.RequestID] = e
		if e.Method == http.MethodGet {
			t.Errorf("a read was audited: %+v", e)
		}
	}
	for _, c := range []struct {
		rid, action, target, actor string
		status                     int
	}{
		{"req-123", "rules.validate", "", supID, 422},
		{"req-create", "keys.create", k.ID, admin.BootstrapID, 201},
		{"req-revoke", "keys.revoke", k.ID, admin.BootstrapID, 200},
	} {
		e, ok := byReq[c.rid]
		if !ok || e.Action != c.action || e.Target != c.target || e.Actor.KeyID != c.actor || e.Status != c.status || e.At.Before(start) || e.ID == "" {
			t.Errorf("audit of %s: %+v (found %v)", c.rid, e, ok)
		}
	}
	if e := byReq["req-123"]; e.Actor.Role != admin.RoleSupervisor || e.Actor.Name == "" {
		t.Errorf("actor: %+v", e.Actor)
	}

	// Filters.
	for _, c := range []struct {
		query string
		want  []string // request ids, in order
	}{
		{"action=keys.create&actor=" + admin.BootstrapID + "&target=" + k.ID, []string{"req-create"}},
		{"action=keys.&target=" + k.ID, []string{"req-create", "req-revoke"}},
		{"actor=" + supID + "&action=rules.validate", []string{"req-123"}},
		{"actor=" + supID + "&from=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339), nil},
		{"target=" + k.ID + "&to=" + start.Format(time.RFC3339), nil},
	} {
		var got entries
		h.mustDo(200, "GET", "/audit?"+c.query, sup, nil).json(t, &got)
		var ids []string
		for _, e := range got.Items {
			ids = append(ids, e.RequestID)
		}
		if strings.Join(ids, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: %v, want %v", c.query, ids, c.want)
		}
	}
	// Paging one at a time finds every entry once.
	n, cursor := 0, ""
	for i := 0; i < 50; i++ {
		var pg entries
		h.mustDo(200, "GET", "/audit?limit=1&cursor="+cursor, sup, nil).json(t, &pg)
		n += len(pg.Items)
		if pg.NextCursor == "" {
			break
		}
		cursor = pg.NextCursor
	}
	if n != len(all.Items) {
		t.Errorf("paged %d entries, listed %d", n, len(all.Items))
	}
	for _, q := range []string{"from=yesterday", "from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z"} {
		if r := h.do("GET", "/audit?"+q, sup, nil); r.status != 422 {
			t.Errorf("%s: %d", q, r.status)
		}
	}
}

func TestRateLimit(t *testing.T) {
	// A fixed clock: the one-minute window must not turn during the test.
	fixed := time.Now()
	h := startHub(t, hubOpts{rateLimit: 5, now: func() time.Time { return fixed }})
	a, b := h.key("viewer", ""), h.key("viewer", "")
	for i := 0; i < 5; i++ {
		h.mustDo(200, "GET", "/me", a, nil)
	}
	r := h.do("GET", "/me", a, nil)
	retry, _ := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != 429 || problemType(r.problem(t)) != admin.PRateLimited || retry < 1 || retry > 60 {
		t.Fatalf("6th request: %d retry-after %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	// Another key has its own budget; the counter is in the store.
	h.mustDo(200, "GET", "/me", b, nil)
	n, err := h.app.Store.GetCounter(context.Background(), "adminrl:key:"+strings.Split(strings.TrimPrefix(a, admin.KeyPrefix), "_")[0]+":"+strconv.FormatInt(fixed.Unix()/60, 10))
	if err != nil || n != 6 {
		t.Errorf("store counter %d %v, want 6", n, err)
	}
	// Failed authentication is limited per client address.
	var last resp
	for i := 0; i < 7; i++ {
		last = h.do("GET", "/me", "sb_nope_nope", nil)
	}
	if last.status != 429 {
		t.Errorf("guessing keys: %d %s", last.status, last.body)
	}
}
