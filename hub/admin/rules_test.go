package admin_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
	"github.com/switchboard-hub/switchboard/rules"
)

// exampleFiles reads the example rule set as a candidate.
func exampleFiles(t *testing.T, edit func(name, content string) string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, _ := os.ReadDir("../../examples/rules")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("../../examples/rules", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		c := string(b)
		if edit != nil {
			c = edit(e.Name(), c)
		}
		out[e.Name()] = c
	}
	return out
}

// hotLead is what the rules get about a hot lead: the director of a
// company with a clear need, an urgent timeline and a budget.
var hotLead = map[string]any{
	"now":     "2025-06-02T09:00:00+07:00",
	"message": map[string]any{"text": "Tôi là giám đốc, cần phần mềm CRM gấp tuần này, báo giá giúp em", "channel": "zalo", "type": "text"},
	"contact": map[string]any{"name": "Anh Hùng", "email": "hung@congty.vn"},
	"lead": map[string]any{"intent": "quote", "need": "phần mềm CRM cho 20 nhân viên", "budget": "khoảng 50 triệu",
		"timeline": "trong tuần này", "decision_maker": true},
	"conversation": map[string]any{"turns": 1, "state": "bot"},
}

type dryRun struct {
	Version   string          `json:"version"`
	Candidate bool            `json:"candidate"`
	Decision  rules.Decision  `json:"decision"`
	Explain   string          `json:"explain"`
	Trace     []rules.Verdict `json:"trace"`
}

func TestRules(t *testing.T) {
	h := startHub(t, hubOpts{})
	sup, viewer := h.key("supervisor", ""), h.key("viewer", "")
	running := h.app.Rules.Current().Version()

	t.Run("get", func(t *testing.T) {
		var v struct {
			Version string `json:"version"`
			Files   []struct{ Name, Content string }
		}
		h.mustDo(200, "GET", "/rules", viewer, nil).json(t, &v)
		names := map[string]string{}
		for _, f := range v.Files {
			names[f.Name] = f.Content
		}
		disk, _ := os.ReadFile(filepath.Join(h.rulesDir, "20-scoring.yaml"))
		if v.Version != running || names["20-scoring.yaml"] != string(disk) || names["holidays-vn.txt"] == "" || len(v.Files) < 7 {
			t.Errorf("rules view: version %s files %d", v.Version, len(v.Files))
		}
		if _, ok := names["default_test.yaml"]; ok {
			t.Errorf("a test file is listed as a rule file")
		}
	})

	t.Run("dry run explains a hot lead", func(t *testing.T) {
		var d dryRun
		h.mustDo(200, "POST", "/rules/dry-run", sup, map[string]any{"input": hotLead}).json(t, &d)
		if d.Version != running || d.Candidate || d.Decision.Tier != "hot" || d.Decision.Score != 100 || d.Decision.Team != "sales" ||
			d.Decision.Handoff == nil || d.Decision.Handoff.Rule != "hot lead" || d.Decision.Route != "hot leads to sales" {
			t.Fatalf("decision: %+v", d.Decision)
		}
		for _, want := range []string{"score 100 (hot)", "handoff to sales", "decision maker: +30", "urgent timeline: +25", "budget known: +20", "20-scoring.yaml:"} {
			if !strings.Contains(d.Explain, want) {
				t.Errorf("explanation lacks %q:\n%s", want, d.Explain)
			}
		}
		// Every rule has a verdict, matched or not.
		verdict := map[string]rules.Verdict{}
		for _, v := range d.Trace {
			verdict[v.Section+"/"+v.Rule] = v
		}
		for rule, matched := range map[string]bool{"scoring/decision maker": true, "scoring/not the decision maker": false,
			"scoring/spam": false, "routing/hot leads to sales": true, "handoff/hot lead": true, "handoff/complaint": false} {
			v, ok := verdict[rule]
			if !ok || v.Matched != matched || v.File == "" || v.Line == 0 {
				t.Errorf("verdict %s: %+v (found %v)", rule, v, ok)
			}
		}
		if len(d.Trace) < len(h.app.Rules.Current().Rules()) {
			t.Errorf("%d verdicts for %d rules", len(d.Trace), len(h.app.Rules.Current().Rules()))
		}
	})

	t.Run("dry run against a candidate", func(t *testing.T) {
		files := exampleFiles(t, func(name, c string) string {
			if name == "20-scoring.yaml" {
				c = strings.Replace(c, "when: lead.decision_maker\n      add: 30", "when: lead.decision_maker\n      add: 0", 1)
				return strings.Replace(c, "hot: score >= 70", "hot: score >= 100", 1)
			}
			return c
		})
		var d dryRun
		h.mustDo(200, "POST", "/rules/dry-run", sup, map[string]any{"input": hotLead, "files": files}).json(t, &d)
		if !d.Candidate || d.Version == running || d.Decision.Tier != "warm" || d.Decision.Handoff != nil {
			t.Errorf("candidate decision: %s %+v", d.Version, d.Decision)
		}
		if h.app.Rules.Current().Version() != running {
			t.Errorf("a dry run changed the running rules")
		}
	})

	t.Run("dry run input errors name the field", func(t *testing.T) {
		for _, c := range []struct {
			body  any
			field string
		}{
			{map[string]any{"input": map[string]any{"lead": map[string]any{"decision_maker": "yes"}}}, "input.lead.decision_maker"},
			{map[string]any{"input": map[string]any{"lead": map[string]any{"budgett": "x"}}}, "budgett"},
			{map[string]any{"input": map[string]any{"now": "tomorrow"}}, "body"},
		} {
			r := h.do("POST", "/rules/dry-run", sup, c.body)
			p := r.problem(t)
			if r.status != 422 || !strings.Contains(p["detail"].(string), c.field) {
				t.Errorf("%v: %d %s", c.body, r.status, r.body)
			}
		}
	})

	t.Run("validate", func(t *testing.T) {
		var ok struct {
			Valid   bool
			Version string
			Teams   []string
		}
		h.mustDo(200, "POST", "/rules/validate", sup, map[string]any{"files": exampleFiles(t, nil)}).json(t, &ok)
		if !ok.Valid || ok.Version != running || strings.Join(ok.Teams, ",") != "leads,sales,support" {
			t.Errorf("valid set: %+v", ok)
		}
		bad := exampleFiles(t, nil)
		bad["25-bad.yaml"] = "scoring:\n  rules:\n    - name: typo\n      when: lead.budgget != \"\"\n      add: 5\n"
		r := h.do("POST", "/rules/validate", sup, map[string]any{"files": bad})
		p := r.problem(t)
		probs, _ := p["problems"].([]any)
		if r.status != 422 || problemType(p) != admin.PRulesInvalid || len(probs) == 0 {
			t.Fatalf("bad set: %d %s", r.status, r.body)
		}
		first := probs[0].(map[string]any)
		if first["file"] != "25-bad.yaml" || first["line"].(float64) != 4 || first["col"].(float64) < 1 || !strings.Contains(p["detail"].(string), "25-bad.yaml:4:") {
			t.Errorf("problem: %v\n%s", first, p["detail"])
		}
		for name, body := range map[string]any{
			"dir traversal": map[string]any{"files": map[string]string{"../x.yaml": "a: 1"}},
			"no files":      map[string]any{"files": map[string]string{}},
			"files missing": map[string]any{},
		} {
			if r := h.do("POST", "/rules/validate", sup, body); r.status != 422 || !strings.Contains(string(r.body), "files") {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
		}
	})

	t.Run("reload refused for a bad file, the old set keeps serving", func(t *testing.T) {
		bad := filepath.Join(h.rulesDir, "25-bad.yaml")
		if err := os.WriteFile(bad, []byte("scoring:\n  rules:\n    - name: typo\n      when: lead.budgget != \"\"\n      add: 5\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := h.do("POST", "/rules/reload", bootstrap, nil)
		p := r.problem(t)
		if r.status != 422 || problemType(p) != admin.PRulesInvalid || !strings.Contains(p["detail"].(string), "25-bad.yaml:4:") ||
			!strings.Contains(p["detail"].(string), running+" keeps running") {
			t.Fatalf("reload: %d %s", r.status, r.body)
		}
		if h.app.Rules.Current().Version() != running {
			t.Fatalf("a refused reload replaced the rules")
		}
		var d dryRun
		h.mustDo(200, "POST", "/rules/dry-run", sup, map[string]any{"input": hotLead}).json(t, &d)
		if d.Version != running || d.Decision.Tier != "hot" {
			t.Errorf("after a refused reload: %s %s", d.Version, d.Decision.Tier)
		}
		// Fixed: the reload goes through and is audited.
		if err := os.WriteFile(bad, []byte("scoring:\n  rules:\n    - name: loyal\n      when: contact.messages > 10\n      add: 5\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var ok struct {
			Version, Previous string
			Changed           bool
		}
		h.mustDo(200, "POST", "/rules/reload", bootstrap, nil, "X-Request-Id", "reload-ok").json(t, &ok)
		if !ok.Changed || ok.Previous != running || ok.Version == running || h.app.Rules.Current().Version() != ok.Version {
			t.Errorf("reload: %+v", ok)
		}
		var audit struct{ Items []admin.AuditEntry }
		h.mustDo(200, "GET", "/audit?action=rules.reload", sup, nil).json(t, &audit)
		if len(audit.Items) != 2 || audit.Items[0].Status != 422 || audit.Items[1].Status != 200 || !strings.Contains(audit.Items[1].Detail, ok.Version) {
			t.Errorf("reload audit: %+v", audit.Items)
		}
	})
}

func TestWhatIf(t *testing.T) {
	h := startHub(t, hubOpts{})
	sup := h.key("supervisor", "")
	hot, cold := convID("hot"), convID("cold")
	h.post(testplugins.WebhookMessage{ID: "w1", User: "hot", Name: "Anh Hùng",
		Text: "Tôi là giám đốc, cần phần mềm CRM gấp tuần này, ngân sách 50 triệu, báo giá giúp"})
	h.post(testplugins.WebhookMessage{ID: "w2", User: "cold", Text: "xin chào"})
	for _, id := range []string{hot, cold} {
		h.waitConv(id, "a decision for "+id, func(c *pipeline.Conversation) bool { return c.LastDecision != nil })
	}
	// The decision is stored a moment before the handoff moves the state.
	if c := h.waitConv(hot, "the hot lead handed off", func(c *pipeline.Conversation) bool { return c.State != pipeline.StateBot }); c.Tier != "hot" || c.State != pipeline.StateHandedOff {
		t.Fatalf("the hot lead: %s %s %d", c.Tier, c.State, c.Score)
	}

	// Worth less for a decision maker: the hot lead's score drops, the
	// cold one's does not change.
	files := exampleFiles(t, func(name, c string) string {
		if name == "20-scoring.yaml" {
			return strings.Replace(c, "when: lead.decision_maker\n      add: 30", "when: lead.decision_maker\n      add: 0", 1)
		}
		return c
	})
	var w struct {
		ActiveVersion    string `json:"active_version"`
		CandidateVersion string `json:"candidate_version"`
		Evaluated        int
		Changed          int
		ByField          map[string]int `json:"by_field"`
		Changes          []struct {
			Conv          string
			Fields        []string
			Before, After struct {
				Score   int
				Tier    string
				Handoff bool
			}
			Explain string
		}
	}
	h.mustDo(200, "POST", "/rules/what-if", sup, map[string]any{"files": files, "last": 10}).json(t, &w)
	if w.Evaluated != 2 || w.Changed != 1 || len(w.Changes) != 1 || w.ActiveVersion == w.CandidateVersion || w.ByField["score"] != 1 {
		t.Fatalf("what-if: %+v", w)
	}
	ch := w.Changes[0]
	if ch.Conv != hot || ch.Before.Score != 100 || ch.After.Score != 80 || strings.Join(ch.Fields, ",") != "score" || !ch.Before.Handoff || !ch.After.Handoff {
		t.Errorf("change: %+v", ch)
	}
	// A stricter hot tier changes the tier and the handoff too.
	files["20-scoring.yaml"] = strings.Replace(files["20-scoring.yaml"], "hot: score >= 70", "hot: score >= 90", 1)
	h.mustDo(200, "POST", "/rules/what-if", sup, map[string]any{"files": files}).json(t, &w)
	if len(w.Changes) != 1 || strings.Join(w.Changes[0].Fields, ",") != "score,tier,handoff" || w.Changes[0].After.Tier != "warm" || w.Changes[0].After.Handoff {
		t.Errorf("stricter tier: %+v", w.Changes)
	}
	// Last 1 takes the most recent decision only; a time range in the future none.
	h.mustDo(200, "POST", "/rules/what-if", sup, map[string]any{"files": files, "last": 1}).json(t, &w)
	if w.Evaluated != 1 {
		t.Errorf("last 1: evaluated %d", w.Evaluated)
	}
	h.mustDo(200, "POST", "/rules/what-if", sup, map[string]any{"files": files, "from": "2099-01-01T00:00:00Z"}).json(t, &w)
	if w.Evaluated != 0 {
		t.Errorf("future range: evaluated %d", w.Evaluated)
	}
	for name, body := range map[string]any{
		"no files":     map[string]any{"last": 5},
		"last too big": map[string]any{"files": files, "last": 100000},
		"bad range":    map[string]any{"files": files, "from": "2025-01-02T00:00:00Z", "to": "2025-01-01T00:00:00Z"},
	} {
		if r := h.do("POST", "/rules/what-if", sup, body); r.status != 422 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}
