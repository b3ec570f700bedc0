package rules

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// load writes a rule set from text (one file) and loads it.
func load(t *testing.T, text string) *Ruleset {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "rules.yaml", text)
	rs, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

var monday9 = at("2025-06-02 09:00")

func TestScoringEffects(t *testing.T) {
	rs := load(t, minimalRules+`
scoring:
  rules:
    - {name: a, when: 'intent == "a"', add: 60}
    - {name: b, when: 'intent != "x"', add: 60}
    - {name: c, when: 'lead.need == "c"', subtract: 200}
    - {name: s1, when: 'lead.budget == "s1" || lead.budget == "both"', set: 10}
    - {name: s2, when: 'lead.budget == "both"', set: 20}
    - {name: amount, when: 'conversation.turns > 0', add: 'conversation.turns * 3'}
    - {name: negative amount, when: 'conversation.turns < 0', add: 'conversation.turns'}
`)
	cases := []struct {
		name  string
		in    Input
		score int
		fired []string
	}{
		{"adds sum", Input{Lead: Lead{Intent: "a"}}, 100, []string{"a", "b"}}, // 120 clamped
		{"clamped at 0", Input{Lead: Lead{Intent: "x", Need: "c"}}, 0, []string{"c"}},
		{"set replaces the sum", Input{Lead: Lead{Intent: "a", Budget: "s1"}}, 10, []string{"a", "b", "s1"}},
		{"the last set wins", Input{Lead: Lead{Budget: "both"}}, 20, []string{"b", "s1", "s2"}},
		{"expression amount", Input{Lead: Lead{Intent: "x"}, Conversation: Conversation{Turns: 4}}, 12, []string{"amount"}},
		{"negative amounts count as 0", Input{Lead: Lead{Intent: "x"}, Conversation: Conversation{Turns: -5}}, 0, []string{"negative amount"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.Now = monday9
			d, err := rs.Evaluate(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Score != c.score {
				t.Errorf("score %d, want %d\n%s", d.Score, c.score, d.Explain())
			}
			var fired []string
			for _, f := range d.Fired {
				if f.Section == "scoring" {
					fired = append(fired, f.Rule)
				}
			}
			if strings.Join(fired, ",") != strings.Join(c.fired, ",") {
				t.Errorf("fired %v, want %v", fired, c.fired)
			}
		})
	}
	d, _ := rs.Evaluate(Input{Now: monday9, Lead: Lead{Intent: "a", Need: "c"}})
	for _, f := range d.Fired {
		if f.Rule == "c" && (f.Op != "subtract" || f.Value != -200 || f.Effect() != "-200") {
			t.Errorf("subtract firing = %+v (%s)", *f.RuleInfo, f.Effect())
		}
	}
}

func TestTiers(t *testing.T) {
	rs := load(t, minimalRules+`
scoring:
  rules:
    - {name: points, when: 'true', add: 'lead.lead_estimate'}
  tiers:
    vip: score >= 50 && "vip" in contact.tags
    hot: score > 69
    warm: 40
    cold: true
`)
	cases := []struct {
		points int
		tags   []string
		tier   string
	}{{70, nil, "hot"}, {69, nil, "warm"}, {60, []string{"vip"}, "vip"}, {40, []string{"vip"}, "warm"}, {0, nil, "cold"}}
	for _, c := range cases {
		d, _ := rs.Evaluate(Input{Now: monday9, Lead: Lead{LeadEstimate: c.points}, Contact: Contact{Tags: c.tags}})
		if d.Tier != c.tier {
			t.Errorf("points %d tags %v: tier %q, want %q", c.points, c.tags, d.Tier, c.tier)
		}
	}
}

func TestRoutingFirstMatchAndContinue(t *testing.T) {
	rs := load(t, `
teams:
  sales: {members: [{id: an}], strategy: round_robin}
  support: {members: [{id: bao}], strategy: least_loaded}
routing:
  - name: vip
    when: '"vip" in contact.tags'
    priority: urgent
    continue: true
  - name: tag team
    when: '"b2b" in contact.tags'
    team: sales
    continue: true
  - name: complaints
    when: intent == "complaint"
    team: support
    priority: high
  - name: rest
    team: sales
    priority: low
`)
	cases := []struct {
		intent   string
		tags     []string
		team     string
		priority string
		route    string
		fired    string
	}{
		{"complaint", nil, "support", "high", "complaints", "complaints"},
		{"complaint", []string{"vip"}, "support", "urgent", "complaints", "vip,complaints"},
		{"hello", nil, "sales", "low", "rest", "rest"},
		{"complaint", []string{"b2b"}, "sales", "high", "tag team", "tag team,complaints"}, // the earlier team stays
	}
	for _, c := range cases {
		d, _ := rs.Evaluate(Input{Now: monday9, Lead: Lead{Intent: c.intent}, Contact: Contact{Tags: c.tags}})
		var fired []string
		for _, f := range d.Fired {
			fired = append(fired, f.Rule)
		}
		if d.Team != c.team || d.Priority != c.priority || d.Route != c.route || strings.Join(fired, ",") != c.fired {
			t.Errorf("%s %v: got %s/%s via %q fired %v, want %s/%s via %q fired %s", c.intent, c.tags, d.Team, d.Priority, d.Route, fired, c.team, c.priority, c.route, c.fired)
		}
	}
	d, _ := rs.Evaluate(Input{Now: monday9})
	if d.Strategy != RoundRobin {
		t.Errorf("strategy %q", d.Strategy)
	}
	d, _ = rs.Evaluate(Input{Now: monday9, Lead: Lead{Intent: "complaint"}})
	if d.Strategy != LeastLoaded {
		t.Errorf("strategy %q", d.Strategy)
	}
}

const handoffRules = `
settings: {timezone: Asia/Ho_Chi_Minh}
teams:
  sales:
    members: [{id: an}]
    hours: Mon-Fri 08:00-17:00
  vip:
    members: [{id: bao}]
    hours: Mon-Sun 07:00-22:00
routing:
  - name: rest
    team: sales
handoff:
  rules:
    - name: person
      when: containsWord(text, ["nhân viên"])
      immediate: true
      notify: assignee
      message: "Dạ {name}, {team} sẽ trả lời ngay."
      out_of_hours_message: "{team} mở cửa lúc {next_open_time} {next_open_day} {next_open_date} ({next_open_day_en}, {next_open})."
    - name: vip
      when: '"vip" in contact.tags'
      team: vip
      priority: urgent
      pause_bot: false
      reason: VIP writes
    - name: unreachable
      when: "true"
  release:
    - name: thanks
      when: containsAny(text, ["cảm ơn"])
      message: Bot đây ạ
      notify: [assignee]
    - name: second
      when: "true"
`

func TestHandoff(t *testing.T) {
	rs := load(t, handoffRules)
	d, _ := rs.Evaluate(Input{Now: monday9, Message: Message{Text: "gặp nhân viên"}, Contact: Contact{Name: "chị Lan"}})
	h := d.Handoff
	if h == nil || h.Rule != "person" || !h.Immediate || !h.PauseBot || h.Team != "sales" || h.OutOfHours ||
		h.CustomerMessage != "Dạ chị Lan, sales sẽ trả lời ngay." || strings.Join(h.Notify, ",") != "assignee" || h.Reason != "person" {
		t.Fatalf("handoff = %+v", h)
	}
	// Out of hours: the other message, with the next opening filled in.
	d, _ = rs.Evaluate(Input{Now: at("2025-06-06 18:00"), Message: Message{Text: "nhan vien?"}})
	h = d.Handoff
	want := "sales mở cửa lúc 08:00 thứ Hai 09/06/2025 (Monday, 08:00 09/06/2025)."
	if h == nil || !h.OutOfHours || h.CustomerMessage != want || h.OutOfHoursMessage != want || !h.NextOpen.Equal(at("2025-06-09 08:00")) || !d.OutOfHours {
		t.Fatalf("out of hours handoff = %+v, want message %q", h, want)
	}
	// A handoff to another team changes the decision's team, strategy and hours.
	d, _ = rs.Evaluate(Input{Now: at("2025-06-06 18:00"), Message: Message{Text: "hi"}, Contact: Contact{Tags: []string{"vip"}}})
	h = d.Handoff
	if h == nil || h.Rule != "vip" || h.Team != "vip" || d.Team != "vip" || d.Priority != "urgent" || h.PauseBot || h.Reason != "VIP writes" || d.OutOfHours || d.Route != "" {
		t.Fatalf("vip handoff = %+v, decision %+v", h, d)
	}
	if d.Matched("unreachable") {
		t.Error("only the first matching handoff rule applies")
	}
	// Not while a person has the conversation; release rules then apply.
	d, _ = rs.Evaluate(Input{Now: monday9, Message: Message{Text: "nhân viên, cảm ơn"}, Conversation: Conversation{State: StateHuman}})
	if d.Handoff != nil || d.Release == nil || d.Release.Rule != "thanks" || d.Release.CustomerMessage != "Bot đây ạ" {
		t.Fatalf("human state: handoff %+v release %+v", d.Handoff, d.Release)
	}
	d, _ = rs.Evaluate(Input{Now: monday9, Message: Message{Text: "ok"}, Conversation: Conversation{State: StateClosed}})
	if d.Handoff != nil || d.Release != nil {
		t.Fatal("closed conversations neither hand off nor release")
	}
}

func TestFollowups(t *testing.T) {
	rs := load(t, minimalRules+`
followups:
  - name: call
    when: containsWord(text, ["demo"])
    after: 15m
    action: task
    params: {title: Gọi khách}
  - name: remind
    when: containsWord(text, ["demo"])
    after: 2h
    action: reminder
    cancel_when: since(conversation.last_agent_reply) < hours(2)
  - name: never
    when: "false"
    after: 1d
    action: message
`)
	d, _ := rs.Evaluate(Input{Now: monday9, Message: Message{Text: "xin demo"}})
	if len(d.Followups) != 2 {
		t.Fatalf("followups = %+v", d.Followups)
	}
	f := d.Followups[0]
	if f.Name != "call" || f.After != 15*time.Minute || !f.At.Equal(monday9.Add(15*time.Minute)) || f.Action != "task" || f.Params["title"] != "Gọi khách" || f.CancelWhen != "" {
		t.Errorf("call = %+v", f)
	}
	if d.Followups[1].CancelWhen != "since(conversation.last_agent_reply) < hours(2)" {
		t.Errorf("remind = %+v", d.Followups[1])
	}
	due := monday9.Add(2 * time.Hour)
	for _, c := range []struct {
		reply time.Time
		want  bool
	}{{time.Time{}, false}, {due.Add(-30 * time.Minute), true}, {due.Add(-3 * time.Hour), false}} {
		got, err := rs.FollowupCancelled("remind", Input{Now: due, Conversation: Conversation{LastAgentReply: c.reply}})
		if err != nil || got != c.want {
			t.Errorf("cancelled with reply %v = %v, %v; want %v", c.reply, got, err, c.want)
		}
	}
	if got, err := rs.FollowupCancelled("call", Input{Now: due}); got || err != nil {
		t.Errorf("no cancel_when: %v %v", got, err)
	}
	if _, err := rs.FollowupCancelled("gone", Input{}); !errors.Is(err, ErrUnknownFollowup) {
		t.Errorf("unknown followup: %v", err)
	}
}

func TestHelpers(t *testing.T) {
	rs := load(t, minimalRules+`
settings: {timezone: Asia/Ho_Chi_Minh}
teams:
  support:
    members: [{id: bao}]
    hours: T2-T7 8h-20h
scoring:
  rules:
    - {name: hour, when: 'hour(now) == 9 && minute(now) == 30', add: 1}
    - {name: weekday, when: 'weekday(now) == "Mon"', add: 2}
    - {name: time of day, when: 'timeOfDay(now) >= "09:00" && timeOfDay(now) < "12:00"', add: 4}
    - {name: now call, when: 'now() == now', add: 8}
    - {name: since, when: 'since(conversation.last_agent_reply) > minutes(90) && since(conversation.last_agent_reply) < hours(2.5)', add: 16}
    - {name: until, when: 'until(conversation.first_seen) == days(1)', add: 32}
    - {name: working hours spec, when: 'workingHours(now, "Mon-Fri 09:00-10:00 Asia/Ho_Chi_Minh")', add: 64}
`+`
    - {name: team hours, when: 'workingHours(now, "support") && !workingHours(now + duration("12h"), "support")', set: 100}
`)
	now := at("2025-06-02 09:30")
	in := Input{Now: now.UTC(), Conversation: Conversation{LastAgentReply: now.Add(-2 * time.Hour), FirstSeen: now.Add(24 * time.Hour)}}
	d, err := rs.Evaluate(in)
	if err != nil {
		t.Fatal(err)
	}
	if d.Score != 100 {
		t.Errorf("team hours rule did not set 100:\n%s", d.Explain())
	}
	for _, r := range []string{"hour", "weekday", "time of day", "now call", "since", "until", "working hours spec"} {
		if !d.Matched(r) {
			t.Errorf("%s did not match", r)
		}
	}
}

func TestRunTimeListsAndFields(t *testing.T) {
	// Lists and fields the compiler cannot precompute still work (folded
	// when the rule runs).
	rs := load(t, minimalRules+`
scoring:
  rules:
    - {name: tags, when: 'containsAny(lead.extra["note"], contact.tags)', add: 1}
    - {name: built list, when: 'containsWord(lead.extra["note"], [lead.need])', add: 2}
    - {name: fold extra, when: 'fold(lead.extra["note"]) contains "khach quen"', add: 4}
    - {name: fold field, when: 'fold(lead.need) == "crm"', add: 8}
    - {name: blank extra, when: 'isBlank(lead.extra["empty"])', add: 16}
    - {name: exact, when: 'containsWordExact(lead.extra["note"], ["Quen"])', add: 32}
`)
	d, err := rs.Evaluate(Input{Now: monday9, Contact: Contact{Tags: []string{"QUEN"}},
		Lead: Lead{Need: "CRM", Extra: map[string]string{"note": "Khách quen, cần CRM"}}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Score != 1+2+4+8+16+32 {
		t.Errorf("score %d:\n%s", d.Score, d.Explain())
	}
}

func TestRuntimeErrorsCountAsNoMatch(t *testing.T) {
	rs := load(t, minimalRules+`
scoring:
  rules:
    - {name: bad spec, when: 'workingHours(now, lead.extra["hours"])', add: 10}
    - {name: fine, when: 'true', add: 5}
`)
	d, err := rs.Evaluate(Input{Now: monday9, Lead: Lead{Extra: map[string]string{"hours": "whenever"}}})
	var ee *EvalError
	if !errors.As(err, &ee) || len(ee.Errors) != 1 || ee.Errors[0].Rule != "bad spec" {
		t.Fatalf("err = %v", err)
	}
	if d == nil || d.Score != 5 || len(d.Errors) != 1 || !strings.Contains(ee.Error(), `scoring rule "bad spec"`) {
		t.Fatalf("decision = %+v", d)
	}
}

func TestTraceListsEveryRule(t *testing.T) {
	rs, err := LoadDir("../examples/rules")
	if err != nil {
		t.Fatal(err)
	}
	d, vs, err := rs.Trace(Input{Now: monday9, Message: Message{Text: "gặp nhân viên"}, Lead: Lead{Intent: "complaint"}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]Verdict{}
	for _, v := range vs {
		seen[v.Rule] = v
	}
	for _, r := range rs.Rules() {
		if _, ok := seen[r.Name]; !ok {
			t.Errorf("no verdict for %s %q", r.Section, r.Name)
		}
	}
	if v := seen["everything else"]; !v.Matched || v.Applied || !strings.Contains(v.Note, "decided first") {
		t.Errorf("catch-all after a decided route: %+v", v)
	}
	if v := seen["complaint"]; !v.Matched || v.Applied {
		t.Errorf("second matching handoff rule: %+v", v)
	}
	if v := seen["asks_for_human"]; v.Section != "condition" || !v.Matched {
		t.Errorf("condition verdict: %+v", v)
	}
	if v := seen["agent silent for a day"]; !strings.Contains(v.Note, "not evaluated") {
		t.Errorf("release in bot state: %+v", v)
	}
	// Trace decides exactly what Evaluate decides.
	d2, _ := rs.Evaluate(Input{Now: monday9, Message: Message{Text: "gặp nhân viên"}, Lead: Lead{Intent: "complaint"}})
	j1, _ := json.Marshal(d)
	j2, _ := json.Marshal(d2)
	if string(j1) != string(j2) {
		t.Errorf("Trace and Evaluate differ:\n%s\n%s", j1, j2)
	}
}

func TestDecisionJSONAndExplain(t *testing.T) {
	rs, _ := LoadDir("../examples/rules")
	d, _ := rs.Evaluate(Input{Now: monday9, Message: Message{Text: "Cho em xin báo giá"},
		Lead: Lead{DecisionMaker: true, Need: "CRM", Timeline: "tuần này", Budget: "50 triệu"}})
	var m map[string]any
	b, _ := json.Marshal(d)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["score"].(float64) != 100 || m["tier"] != "hot" || m["team"] != "sales" {
		t.Errorf("json = %s", b)
	}
	first := m["fired"].([]any)[0].(map[string]any)
	if first["section"] != "scoring" || first["rule"] != "decision maker" || first["value"].(float64) != 30 || first["file"] != "20-scoring.yaml" {
		t.Errorf("first firing = %v", first)
	}
	ex := d.Explain()
	for _, want := range []string{"score 100 (hot) → team sales (round_robin), priority high", "handoff to sales: Khách hàng tiềm năng cao",
		"decision maker: +30  (20-scoring.yaml:10, when lead.decision_maker)", "followup quote follow-up: message in 24h"} {
		if !strings.Contains(ex, want) {
			t.Errorf("Explain lacks %q:\n%s", want, ex)
		}
	}
}

func TestTeamsPolicy(t *testing.T) {
	rs, err := LoadDir("../examples/rules")
	if err != nil {
		t.Fatal(err)
	}
	teams := rs.Teams()
	sales := teams["sales"]
	if sales.Strategy != RoundRobin || sales.Capacity != 8 || len(sales.Members) != 3 || sales.EscalateTo != "leads" || sales.Supervisor != "hoa" {
		t.Errorf("sales = %+v", sales)
	}
	if sla := sales.SLA.For("high"); sla.FirstResponse != 2*time.Minute || sla.NextResponse != 15*time.Minute {
		t.Errorf("sales high SLA = %+v", sla)
	}
	if sla := sales.SLA.For("normal"); sla.FirstResponse != 5*time.Minute {
		t.Errorf("sales normal SLA = %+v", sla)
	}
	minh := sales.Members[1]
	if minh.ID != "minh" || sales.CapacityOf(minh) != 10 || sales.CapacityOf(sales.Members[0]) != 8 || minh.Skills["b2b"] != 2 {
		t.Errorf("minh = %+v", minh)
	}
	if sales.Open(at("2025-09-02 10:00")) || !sales.Open(monday9) {
		t.Error("sales hours or holidays wrong")
	}
	if got := sales.NextOpen(at("2025-06-07 13:00")); !got.Equal(at("2025-06-09 08:00")) {
		t.Errorf("NextOpen = %v", got)
	}
	// Teams returns a copy.
	delete(teams, "sales")
	if _, ok := rs.Team("sales"); !ok {
		t.Error("Teams() must return a copy")
	}
	support, _ := rs.Team("support")
	if support.EligibleExpr() == "" {
		t.Fatal("support has an eligible condition")
	}
	thu, khoa := support.Members[0], support.Members[1]
	complaint := Input{Now: monday9, Lead: Lead{Intent: "complaint"}}
	if ok, err := support.Eligible(thu, complaint, nil); !ok || err != nil {
		t.Errorf("thu (complaints skill) for a complaint: %v %v", ok, err)
	}
	if ok, _ := support.Eligible(khoa, complaint, nil); ok {
		t.Error("khoa has no complaints skill")
	}
	if ok, _ := support.Eligible(khoa, Input{Now: monday9, Lead: Lead{Intent: "warranty"}}, nil); !ok {
		t.Error("anyone takes a warranty question")
	}
	if ok, _ := sales.Eligible(minh, complaint, nil); !ok {
		t.Error("no eligible condition: everyone is eligible")
	}
	if len(rs.Agents()) != 6 {
		t.Errorf("agents = %d", len(rs.Agents()))
	}
}
