package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// access is who may call a route, written here independently of the
// server's table: the test is the specification.
type access struct {
	roles []string // allowed roles; nil: public
	// agentOwn: agent keys pass only for their own conversation or agent,
	// and get 404 for another agent's.
	agentOwn bool
	body     any
}

var (
	all      = []string{"admin", "supervisor", "agent", "viewer"}
	read     = []string{"admin", "supervisor", "viewer"}
	convRead = []string{"admin", "supervisor", "viewer", "agent"}
	act      = []string{"admin", "supervisor", "agent"}
	sup      = []string{"admin", "supervisor"}
	adm      = []string{"admin"}
)

// policy covers every route of the API (a test below fails on any route
// the server has and this table lacks).
var policy = map[string]access{
	"GET /openapi.json": {},
	"GET /me":           {roles: all},
	"GET /health":       {roles: all},
	"GET /version":      {roles: all},
	"GET /metrics":      {roles: read},

	"GET /keys":        {roles: adm},
	"POST /keys":       {roles: adm, body: map[string]any{"name": "matrix", "role": "viewer"}},
	"GET /keys/:id":    {roles: adm},
	"DELETE /keys/:id": {roles: adm},

	"GET /plugins":                {roles: read},
	"GET /plugins/:name":          {roles: read},
	"POST /plugins/:name/restart": {roles: adm},

	"GET /rules":           {roles: read},
	"POST /rules/validate": {roles: sup, body: map[string]any{"files": map[string]string{"a.yaml": "scoring: {rules: []}\n"}}},
	"POST /rules/reload":   {roles: adm},
	"POST /rules/dry-run":  {roles: sup, body: map[string]any{"input": map[string]any{"message": map[string]any{"text": "hi"}}}},
	"POST /rules/what-if":  {roles: sup, body: map[string]any{"files": map[string]string{"a.yaml": "scoring: {rules: []}\n"}}},

	"GET /teams":                  {roles: read},
	"GET /teams/:name":            {roles: read},
	"GET /teams/:name/queue":      {roles: read},
	"GET /agents":                 {roles: read},
	"GET /agents/:id":             {roles: convRead, agentOwn: true},
	"PUT /agents/:id/status":      {roles: act, agentOwn: true, body: map[string]any{"status": "away"}},
	"PUT /agents/:id/capacity":    {roles: sup, body: map[string]any{"capacity": 3}},
	"DELETE /agents/:id/capacity": {roles: sup},

	"GET /conversations":               {roles: convRead},
	"GET /conversations/:id":           {roles: convRead, agentOwn: true},
	"GET /conversations/:id/trail":     {roles: convRead, agentOwn: true},
	"POST /conversations/:id/takeover": {roles: act, agentOwn: true},
	"POST /conversations/:id/release":  {roles: act, agentOwn: true},
	"POST /conversations/:id/reassign": {roles: sup},
	"POST /conversations/:id/close":    {roles: act, agentOwn: true},
	"POST /conversations/:id/messages": {roles: act, agentOwn: true, body: map[string]any{"text": "matrix hello"}},

	"GET /leads": {roles: read},

	"GET /dead-letters":             {roles: read},
	"GET /dead-letters/:id":         {roles: read},
	"POST /dead-letters/:id/replay": {roles: adm},
	"DELETE /dead-letters/:id":      {roles: adm},

	"GET /audit":  {roles: read},
	"GET /events": {roles: all},
}

// The other agent's conversation carries these; no agent-key answer may.
const (
	otherName  = "Bob-Secret-B"
	otherPhone = "+84900000222"
	otherTier  = "tier-of-b"
)

// TestAuthorizationMatrix calls every route with every role and with no
// key. A role not allowed must get 401 (no key) or 403; an agent key must
// get 404 for another agent's conversation or agent record; no answer to
// an agent key may hold data of another agent's conversation.
func TestAuthorizationMatrix(t *testing.T) {
	h := startHub(t, hubOpts{})
	keys := map[string]string{"admin": bootstrap}
	for _, r := range []string{"supervisor", "viewer"} {
		keys[r] = h.key(r, "")
	}
	keys["agent"] = h.key("agent", "lan")
	convA, convB := convID("alice"), convID("bob")
	h.seedConv(convA, func(c *pipeline.Conversation) {
		c.Contact = sdk.Identity{Channel: "test", UserID: "alice", DisplayName: "Alice-A"}
		c.State, c.Team, c.Assignee, c.Tier, c.Score = pipeline.StateHuman, "sales", "lan", "hot", 80
	})
	h.seedConv(convB, func(c *pipeline.Conversation) {
		c.Contact = sdk.Identity{Channel: "test", UserID: "bob", DisplayName: otherName, Phone: otherPhone}
		c.State, c.Team, c.Assignee, c.Tier, c.Score = pipeline.StateHandedOff, "sales", "minh", otherTier, 90
	})
	ctx := context.Background()
	st := h.app.Store
	// Trail and history of the other agent's conversation.
	h.app.Pipeline.Audit(ctx, pipeline.AuditRecord{Kind: "handoff", Conv: convB, Detail: "to " + otherName})
	turn, _ := json.Marshal(pipeline.Turn{ID: "m1", Role: "customer", Text: "I am " + otherName, At: time.Now()})
	if _, err := st.AppendTurn(ctx, convB, turn, 20, time.Hour); err != nil {
		t.Fatal(err)
	}

	// Every route the server has must be in the policy, and the reverse.
	seen := map[string]bool{}
	for _, r := range h.app.AdminRouter().GetRoutes(true) {
		p, ok := strings.CutPrefix(r.Path, admin.Prefix)
		if !ok || r.Method == http.MethodHead {
			continue
		}
		k := r.Method + " " + p
		seen[k] = true
		if _, ok := policy[k]; !ok {
			t.Errorf("route %s has no entry in the authorization policy of this test", k)
		}
	}
	for k := range policy {
		if !seen[k] {
			t.Errorf("policy lists %s, which the server does not serve", k)
		}
	}

	// The root /metrics is behind the same auth; health and readiness stay
	// open for load balancers.
	root := strings.TrimSuffix(h.base, admin.Prefix)
	for _, c := range []struct {
		path, key string
		want      int
	}{
		{"/metrics", "", 401}, {"/metrics", keys["agent"], 403}, {"/metrics", keys["viewer"], 200},
		{"/healthz", "", 200}, {"/readyz", "", 200},
	} {
		if r := h.do("GET", root+c.path, c.key, nil); r.status != c.want {
			t.Errorf("GET %s: %d, want %d: %.200s", c.path, r.status, c.want, r.body)
		}
	}

	roles := []string{"", "viewer", "agent", "supervisor", "admin"}
	for route, acc := range policy {
		method, path, _ := strings.Cut(route, " ")
		for _, role := range roles {
			name := role
			if name == "" {
				name = "no key"
			}
			t.Run(strings.ReplaceAll(route, "/", "_")+"/"+name, func(t *testing.T) {
				// Fresh targets per call: allowed calls may revoke, discard or replay them.
				throwaway := h.key("viewer", "")
				var tk struct {
					Items []admin.Key `json:"items"`
				}
				h.mustDo(200, "GET", "/keys?limit=500", bootstrap, nil).json(t, &tk)
				keyID := tk.Items[len(tk.Items)-1].ID
				for _, k := range tk.Items {
					if strings.HasPrefix(throwaway, admin.KeyPrefix+k.ID+"_") {
						keyID = k.ID
					}
				}
				deadID := "dead-" + strings.NewReplacer("/", "_", " ", "_", ":", "_").Replace(route) + "-" + name
				task, _ := json.Marshal(pipeline.Task{Kind: pipeline.TaskEvent, Instance: "test", Conv: convB,
					Event: &sdk.Event{ID: deadID, Kind: sdk.EventMessage, ConversationKey: "test:test:bob", Author: sdk.AuthorCustomer,
						Message: &sdk.Message{Type: "text", Text: "dead " + otherName}}})
				if err := st.PutDead(ctx, store.DeadLetter{ID: deadID, Entry: store.Entry{ID: deadID, Key: convB, Payload: task}, Error: "test", At: time.Now()}); err != nil {
					t.Fatal(err)
				}
				target := strings.NewReplacer(":id/status", "minh/status", ":id/capacity", "minh/capacity", ":name/restart", "brain/restart", ":name", "sales").Replace(path)
				switch {
				case strings.HasPrefix(path, "/keys/"):
					target = "/keys/" + keyID
				case strings.HasPrefix(path, "/dead-letters/"):
					target = strings.Replace(path, ":id", deadID, 1)
				case strings.HasPrefix(path, "/conversations/"):
					target = strings.Replace(path, ":id", esc(convB), 1)
				case strings.HasPrefix(path, "/agents/"):
					target = strings.Replace(target, ":id", "minh", 1)
				case strings.HasPrefix(path, "/plugins/"):
					target = strings.Replace(path, ":name", "brain", 1)
				}
				key := keys[role]
				var r resp
				if path == "/events" {
					r = h.stream(target, key)
				} else {
					r = h.do(method, target, key, acc.body)
				}
				allowed := acc.roles == nil || slices.Contains(acc.roles, role)
				switch {
				case acc.roles == nil:
					if r.status != 200 {
						t.Errorf("public route: %d %s", r.status, r.body)
					}
				case role == "":
					if r.status != 401 || problemType(r.problem(t)) != admin.PUnauthorized {
						t.Errorf("no key: %d %s", r.status, r.body)
					}
				case !allowed:
					if r.status != 403 || problemType(r.problem(t)) != admin.PForbidden {
						t.Errorf("%s may not: got %d %s", role, r.status, r.body)
					}
				case role == "agent" && acc.agentOwn:
					if r.status != 404 || problemType(r.problem(t)) != admin.PNotFound {
						t.Errorf("agent lan on minh's resource: got %d %s", r.status, r.body)
					}
				default:
					if r.status == 401 || r.status == 403 {
						t.Errorf("%s is allowed but got %d %s", role, r.status, r.body)
					}
				}
				if role == "agent" {
					// The id the caller sent may be echoed; nothing else of it.
					for _, leak := range []string{otherName, otherPhone, otherTier} {
						if strings.Contains(string(r.body), leak) {
							t.Errorf("agent lan's answer holds %q of minh's conversation: %s", leak, r.body)
						}
					}
				}
			})
		}
	}

	// An agent key's list holds its own conversation and not the other's.
	var list struct {
		Items []map[string]any `json:"items"`
	}
	h.mustDo(200, "GET", "/conversations", keys["agent"], nil).json(t, &list)
	if len(list.Items) != 1 || list.Items[0]["id"] != convA {
		t.Errorf("agent lan's list: %+v", list.Items)
	}
	h.mustDo(200, "GET", "/conversations?assignee=minh", keys["agent"], nil).json(t, &list)
	if len(list.Items) != 0 {
		t.Errorf("agent lan asking for minh's list: %+v", list.Items)
	}
	h.mustDo(200, "GET", "/conversations/"+esc(convA), keys["agent"], nil)
}

// stream opens the event stream and returns once the headers (and the
// first bytes) came.
func (h *testHub) stream(path, key string) resp {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.base+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	buf := make([]byte, 4096)
	n, _ := res.Body.Read(buf)
	return resp{status: res.StatusCode, header: res.Header, body: buf[:n]}
}
