package admin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

// floorRules: two teams that are always open; support answers within 1s
// or breaches.
const floorRules = `agents:
  lan: {name: Lan}
  minh: {name: Minh}
  thu: {name: Thu}
teams:
  sales:
    strategy: round_robin
    capacity: 2
    members: [lan, minh]
    sla:
      first_response: 10m
  support:
    strategy: least_loaded
    capacity: 5
    members: [thu]
    sla:
      first_response: 1s
scoring:
  rules:
    - name: decision maker
      when: lead.decision_maker
      add: 80
    - name: need
      when: lead.need != ""
      add: 10
  tiers:
    hot: score >= 70
    cold: 0
routing:
  - name: hot to sales
    when: tier == "hot"
    team: sales
    priority: high
  - name: rest
    team: support
handoff:
  rules:
    - name: complaint
      when: intent == "complaint"
      team: support
    - name: hot lead
      when: tier == "hot"
      team: sales
      notify: [assignee]
      message: Một chuyên viên sẽ liên hệ ngay.
`

type convDetailView struct {
	ID          string         `json:"id"`
	State       string         `json:"state"`
	Assignee    string         `json:"assignee"`
	SLABreached bool           `json:"sla_breached"`
	Assignment  *assign.Record `json:"assignment"`
}

// TestFloor runs the teams, agents and conversation actions against the
// real assignment service.
func TestFloor(t *testing.T) {
	h := startHub(t, hubOpts{rules: floorRules})
	sup, viewer := h.key("supervisor", ""), h.key("viewer", "")
	lan, minh := h.key("agent", "lan"), h.key("agent", "minh")

	var teams struct{ Items []assign.TeamState }
	h.mustDo(200, "GET", "/teams", viewer, nil).json(t, &teams)
	if len(teams.Items) != 2 || teams.Items[0].Name != "sales" || strings.Join(teams.Items[0].Members, ",") != "lan,minh" {
		t.Fatalf("teams: %+v", teams.Items)
	}
	var agents struct{ Items []assign.AgentState }
	h.mustDo(200, "GET", "/agents", viewer, nil).json(t, &agents)
	if len(agents.Items) != 3 || agents.Items[0].ID != "lan" || agents.Items[0].Status != assign.Online {
		t.Fatalf("agents: %+v", agents.Items)
	}

	// Status: an agent sets its own, a supervisor anyone's.
	var ag assign.AgentState
	h.mustDo(200, "PUT", "/agents/lan/status", lan, map[string]string{"status": "away"}).json(t, &ag)
	if ag.Status != assign.Away {
		t.Errorf("lan: %+v", ag)
	}
	h.mustDo(200, "PUT", "/agents/minh/status", sup, map[string]string{"status": "offline"})
	for _, c := range []struct {
		path, key string
		body      any
		code      int
		field     string
	}{
		{"/agents/minh/status", lan, map[string]string{"status": "online"}, 404, ""},
		{"/agents/lan/status", lan, map[string]string{"status": "busy"}, 422, "status"},
		{"/agents/nobody/status", sup, map[string]string{"status": "online"}, 404, ""},
		{"/agents/minh/capacity", sup, map[string]int{"capacity": -2}, 422, "capacity"},
		{"/agents/minh/capacity", sup, map[string]string{"capacity": "many"}, 422, "capacity"},
		{"/agents/nobody/capacity", sup, map[string]int{"capacity": 2}, 404, ""},
	} {
		r := h.do("PUT", c.path, c.key, c.body)
		if p := r.problem(t); r.status != c.code || !strings.Contains(p["detail"].(string), c.field) {
			t.Errorf("PUT %s %v: %d %s", c.path, c.body, r.status, r.body)
		}
	}
	h.mustDo(200, "PUT", "/agents/minh/capacity", sup, map[string]int{"capacity": 1}).json(t, &ag)
	if ag.Capacity != 1 || ag.CapacityOverride == nil || *ag.CapacityOverride != 1 {
		t.Errorf("capacity override: %+v", ag)
	}
	ag = assign.AgentState{}
	h.mustDo(200, "DELETE", "/agents/minh/capacity", sup, nil).json(t, &ag)
	if ag.Capacity != 2 || ag.CapacityOverride != nil {
		t.Errorf("capacity reset: %+v", ag)
	}

	// A hot lead is handed off to sales; nobody is online, so it waits.
	hot := convID("hot")
	h.post(testplugins.WebhookMessage{ID: "f1", User: "hot", Text: "Tôi là giám đốc, cần phần mềm CRM"})
	var q struct{ Items []assign.Waiting }
	waitFor(t, "the hot lead in the sales queue", func() bool {
		h.mustDo(200, "GET", "/teams/sales/queue", viewer, nil).json(t, &q)
		return len(q.Items) == 1 && q.Items[0].Conv == hot
	})
	var team struct {
		assign.TeamState
		Agents []assign.AgentState
		Queue  []assign.Waiting
	}
	h.mustDo(200, "GET", "/teams/sales", viewer, nil).json(t, &team)
	if team.Waiting != 1 || len(team.Queue) != 1 || len(team.Agents) != 2 || team.Agents[0].Status != assign.Away {
		t.Errorf("sales: %+v", team)
	}
	if r := h.do("GET", "/teams/nope", viewer, nil); r.status != 404 {
		t.Errorf("unknown team: %d", r.status)
	}
	if r := h.do("GET", "/teams/nope/queue", viewer, nil); r.status != 404 {
		t.Errorf("unknown team queue: %d", r.status)
	}

	// Lan comes online and gets it; only lan's key sees it.
	h.mustDo(200, "PUT", "/agents/lan/status", lan, map[string]string{"status": "online"})
	h.waitConv(hot, "assigned to lan", func(c *pipeline.Conversation) bool { return c.Assignee == "lan" })
	var d convDetailView
	h.mustDo(200, "GET", "/conversations/"+esc(hot), lan, nil).json(t, &d)
	if d.Assignment == nil || d.Assignment.Assignee != "lan" || d.Assignment.State != assign.RecAssigned || d.SLABreached {
		t.Errorf("lan's view: %+v %+v", d, d.Assignment)
	}
	if r := h.do("GET", "/conversations/"+esc(hot), minh, nil); r.status != 404 {
		t.Errorf("minh sees lan's conversation: %d", r.status)
	}
	h.mustDo(200, "GET", "/agents/lan", lan, nil).json(t, &ag)
	if ag.Load != 1 || ag.Open[0] != hot {
		t.Errorf("lan's load: %+v", ag)
	}

	// Take over for minh; reassign back to lan; agents may not reassign.
	var as assign.Assignment
	h.mustDo(200, "POST", "/conversations/"+esc(hot)+"/takeover", sup, map[string]string{"agent": "minh"}).json(t, &as)
	if as.Agent != "minh" {
		t.Errorf("takeover: %+v", as)
	}
	h.waitConv(hot, "minh has it", func(c *pipeline.Conversation) bool { return c.Assignee == "minh" && c.State == pipeline.StateHuman })
	h.mustDo(404, "GET", "/conversations/"+esc(hot), lan, nil)
	h.mustDo(200, "GET", "/conversations/"+esc(hot), minh, nil)
	if r := h.do("POST", "/conversations/"+esc(hot)+"/reassign", minh, map[string]string{"agent": "lan"}); r.status != 403 {
		t.Errorf("agent reassigning: %d", r.status)
	}
	for _, c := range []struct {
		path string
		body any
		code int
	}{
		{"/takeover", map[string]string{"agent": "ghost"}, 422},
		{"/takeover", nil, 422},
		{"/reassign", map[string]string{"agent": "no such"}, 422},
		{"/close", map[string]string{"agent": "lan"}, 422},
	} {
		if r := h.do("POST", "/conversations/"+esc(hot)+c.path, sup, c.body); r.status != c.code {
			t.Errorf("%s %v: %d %s", c.path, c.body, r.status, r.body)
		}
	}
	h.mustDo(200, "POST", "/conversations/"+esc(hot)+"/reassign", sup, map[string]string{"agent": "lan"}).json(t, &as)
	h.waitConv(hot, "lan has it again", func(c *pipeline.Conversation) bool { return c.Assignee == "lan" })
	// An agent key takes over its own conversation as itself only.
	if r := h.do("POST", "/conversations/"+esc(hot)+"/takeover", lan, map[string]string{"agent": "minh"}); r.status != 422 {
		t.Errorf("lan taking over as minh: %d %s", r.status, r.body)
	}
	h.mustDo(200, "POST", "/conversations/"+esc(hot)+"/takeover", lan, nil)

	// Lan answers through the API: the SLA counts the first response.
	h.mustDo(201, "POST", "/conversations/"+esc(hot)+"/messages", lan, map[string]string{"text": "Em chào anh ạ"})
	waitFor(t, "the first response recorded", func() bool {
		h.mustDo(200, "GET", "/conversations/"+esc(hot), lan, nil).json(t, &d)
		return d.Assignment != nil && !d.Assignment.FirstResponseAt.IsZero()
	})
	var leads struct {
		Items []struct {
			ID                 string   `json:"id"`
			SpeedToLeadSeconds *float64 `json:"speed_to_lead_seconds"`
		}
	}
	h.mustDo(200, "GET", "/leads?tier=hot", viewer, nil).json(t, &leads)
	if len(leads.Items) != 1 || leads.Items[0].SpeedToLeadSeconds == nil || *leads.Items[0].SpeedToLeadSeconds <= 0 {
		t.Errorf("leads: %+v", leads.Items)
	}

	// A complaint goes to support, nobody answers within 1s: a breach.
	angry := convID("angry")
	events, stop := openStream(t, h, sup, "?types=sla_breach")
	defer stop()
	h.post(testplugins.WebhookMessage{ID: "f2", User: "angry", Text: "Tôi muốn khiếu nại, dịch vụ quá tệ"})
	next(t, events, "an sla_breach event", func(e sseEvent) bool { return e.data.Conv == angry })
	var pg convPage
	h.mustDo(200, "GET", "/conversations?sla_breached=true", viewer, nil).json(t, &pg)
	if len(pg.Items) != 1 || pg.Items[0].ID != angry || pg.Items[0].SLABreached == nil || !*pg.Items[0].SLABreached {
		t.Errorf("breached: %+v", pg.Items)
	}
	h.mustDo(200, "GET", "/conversations?sla_breached=false", viewer, nil).json(t, &pg)
	if len(pg.Items) != 1 || pg.Items[0].ID != hot {
		t.Errorf("not breached: %+v", pg.Items)
	}

	// Release and close.
	var sum struct{ State, Assignee string }
	h.mustDo(200, "POST", "/conversations/"+esc(hot)+"/release", lan, map[string]string{"reason": "đã tư vấn xong"}).json(t, &sum)
	if sum.State != pipeline.StateBot || sum.Assignee != "" {
		t.Errorf("released: %+v", sum)
	}
	h.mustDo(200, "POST", "/conversations/"+esc(angry)+"/close", sup, nil).json(t, &sum)
	if sum.State != pipeline.StateClosed {
		t.Errorf("closed: %+v", sum)
	}
	// Everything above is in the audit log with who did it, refusals too.
	var audit struct{ Items []admin.AuditEntry }
	h.mustDo(200, "GET", "/audit?action=conversations.&target="+hot, viewer, nil).json(t, &audit)
	var got []string
	for _, e := range audit.Items {
		got = append(got, fmt.Sprintf("%s %d %s", strings.TrimPrefix(e.Action, "conversations."), e.Status, e.Actor.Name))
	}
	want := []string{"takeover 200 test supervisor ", "takeover 422 test supervisor ", "takeover 422 test supervisor ",
		"reassign 422 test supervisor ", "close 422 test supervisor ", "reassign 200 test supervisor ",
		"takeover 422 test agent lan", "takeover 200 test agent lan", "send 201 test agent lan", "release 200 test agent lan"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// waitFor polls cond until it holds, for at most 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
