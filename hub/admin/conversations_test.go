package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

type convPage struct {
	Items []struct {
		ID          string `json:"id"`
		State       string `json:"state"`
		Tier        string `json:"tier"`
		Assignee    string `json:"assignee"`
		SLABreached *bool  `json:"sla_breached"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func TestConversations(t *testing.T) {
	h := startHub(t, hubOpts{})
	viewer, sup := h.key("viewer", ""), h.key("supervisor", "")
	lan, khoa := h.key("agent", "lan"), h.key("agent", "khoa") // khoa is in support: never the hot lead's

	// Real conversations through the pipeline, and seeded ones for filters.
	hot := convID("hot")
	h.post(testplugins.WebhookMessage{ID: "h1", User: "hot", Name: "Anh Hùng",
		Text: "Tôi là giám đốc, cần phần mềm CRM gấp tuần này, ngân sách 50 triệu, báo giá giúp"})
	h.waitConv(hot, "the hot lead handed off", func(c *pipeline.Conversation) bool {
		return c.State == pipeline.StateHandedOff && c.LastBotAt.After(c.FirstSeen)
	})
	seed := []struct {
		user, state, team, assignee, tier, channel string
	}{
		{"s1", "bot", "sales", "", "cold", "test"},
		{"s2", "human", "sales", "lan", "warm", "test"},
		{"s3", "human", "support", "thu", "warm", "zalo"},
		{"s4", "closed", "sales", "lan", "hot", "test"},
		{"s5", "handed_off", "support", "", "hot", "whatsapp"},
	}
	for _, s := range seed {
		h.seedConv(convID(s.user), func(c *pipeline.Conversation) {
			c.State, c.Team, c.Assignee, c.Tier, c.Channel = s.state, s.team, s.assignee, s.tier, s.channel
			c.Contact = sdk.Identity{Channel: s.channel, UserID: s.user}
		})
	}

	// The assignment service may give the hot lead to an agent (when sales
	// is open): expectations about it follow what it has.
	hc, _, err := h.app.Pipeline.Conversations().Get(context.Background(), hot)
	if err != nil {
		t.Fatal(err)
	}
	hotIf := func(ok bool, rest ...string) []string {
		if ok {
			return append([]string{"hot"}, rest...)
		}
		return rest
	}

	t.Run("filters", func(t *testing.T) {
		for _, c := range []struct {
			query, key string
			want       []string
		}{
			{"", viewer, []string{"hot", "s1", "s2", "s3", "s4", "s5"}},
			{"state=human", viewer, hotIf(hc.State == "human", "s2", "s3")},
			{"state=handed_off&tier=hot", viewer, hotIf(hc.State == "handed_off", "s5")},
			{"team=support", viewer, []string{"s3", "s5"}},
			{"assignee=lan", viewer, hotIf(hc.Assignee == "lan", "s2", "s4")},
			{"channel=zalo", viewer, []string{"s3"}},
			{"tier=warm&team=sales", viewer, []string{"s2"}},
			{"", lan, hotIf(hc.Assignee == "lan", "s2", "s4")},
			{"state=closed", lan, []string{"s4"}},
			{"assignee=thu", lan, nil},
		} {
			var pg convPage
			h.mustDo(200, "GET", "/conversations?"+c.query, c.key, nil).json(t, &pg)
			var got []string
			for _, it := range pg.Items {
				got = append(got, strings.TrimPrefix(it.ID, "test:test:test:"))
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("%q: %v, want %v", c.query, got, c.want)
			}
		}
		for _, q := range []string{"state=asleep", "sla_breached=maybe", "limit=-1"} {
			r := h.do("GET", "/conversations?"+q, viewer, nil)
			if p := r.problem(t); r.status != 422 || !strings.Contains(p["detail"].(string), strings.Split(q, "=")[0]) {
				t.Errorf("%s: %d %s", q, r.status, r.body)
			}
		}
	})

	t.Run("pagination", func(t *testing.T) {
		seen := map[string]int{}
		cursor := ""
		for pages := 0; pages < 10; pages++ {
			var pg convPage
			h.mustDo(200, "GET", "/conversations?limit=2&cursor="+cursor, viewer, nil).json(t, &pg)
			for _, it := range pg.Items {
				seen[it.ID]++
			}
			if len(pg.Items) > 2 {
				t.Errorf("page of %d", len(pg.Items))
			}
			if pg.NextCursor == "" {
				break
			}
			cursor = pg.NextCursor
		}
		if len(seen) != 6 {
			t.Errorf("paged through %d conversations: %v", len(seen), seen)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s seen %d times", id, n)
			}
		}
	})

	t.Run("detail explains the score and shows history, trail and cost", func(t *testing.T) {
		var d struct {
			ID           string
			State        string
			Score        int
			Tier         string
			Explain      string
			LastDecision *struct{ Score int } `json:"last_decision"`
			Cost         pipeline.Cost
			History      []pipeline.Turn
			Trail        []pipeline.AuditRecord
		}
		h.mustDo(200, "GET", "/conversations/"+esc(hot), viewer, nil).json(t, &d)
		kinds := map[string]bool{}
		for _, a := range d.Trail {
			kinds[a.Kind] = true
		}
		if d.Tier != "hot" || d.LastDecision == nil || d.LastDecision.Score != d.Score || !strings.Contains(d.Explain, "decision maker: +30") ||
			d.Cost.Calls != 1 || d.Cost.InputTokens == 0 || len(d.History) < 2 || d.History[0].Role != "customer" ||
			!kinds["message"] || !kinds["handoff"] || !kinds["reply_sent"] {
			t.Errorf("detail: %+v", d)
		}
		var trail struct {
			Items      []pipeline.AuditRecord
			NextCursor string `json:"next_cursor"`
		}
		h.mustDo(200, "GET", "/conversations/"+esc(hot)+"/trail?limit=1", viewer, nil).json(t, &trail)
		if len(trail.Items) != 1 || trail.NextCursor == "" || trail.Items[0].Kind != d.Trail[0].Kind {
			t.Errorf("trail page: %+v", trail)
		}
		for _, id := range []string{"nope", "test:test:test:nobody"} {
			if r := h.do("GET", "/conversations/"+esc(id), viewer, nil); r.status != 404 || problemType(r.problem(t)) != admin.PNotFound {
				t.Errorf("%s: %d", id, r.status)
			}
		}
	})

	t.Run("send a message as an agent", func(t *testing.T) {
		text := "Chào anh Hùng, em là Lan bên kinh doanh."
		sentWith := func() int {
			n := 0
			for _, m := range h.sink.Messages() {
				if m.Text == text {
					n++
				}
			}
			return n
		}
		var sent struct {
			Conv              string `json:"conv"`
			ProviderMessageID string `json:"provider_message_id"`
			Agent             string `json:"agent"`
			State             string `json:"state"`
			Duplicate         bool   `json:"duplicate"`
		}
		body := map[string]any{"text": text, "agent": "lan"}
		h.mustDo(201, "POST", "/conversations/"+esc(hot)+"/messages", sup, body, "Idempotency-Key", "k1").json(t, &sent)
		if sent.State != pipeline.StateHuman || sent.ProviderMessageID == "" || sent.Agent != "lan" {
			t.Errorf("sent: %+v", sent)
		}
		hubtest.Eventually(t, 10*time.Second, "the sink got the agent message", func() bool { return sentWith() == 1 })
		for _, m := range h.sink.Messages() {
			if m.Text == text && m.To != "hot" {
				t.Errorf("sent to %+v", m)
			}
		}
		// A retry with the same key sends nothing.
		h.mustDo(200, "POST", "/conversations/"+esc(hot)+"/messages", sup, body, "Idempotency-Key", "k1").json(t, &sent)
		if !sent.Duplicate {
			t.Errorf("retry: %+v", sent)
		}
		ctx := context.Background()
		if n, _ := h.app.Store.GetCounter(ctx, pipeline.AgentCounterKey(hot)); n != 1 {
			t.Errorf("agent counter %d, want 1", n)
		}
		c := h.waitConv(hot, "human with an agent reply", func(c *pipeline.Conversation) bool { return c.State == pipeline.StateHuman && !c.LastAgentAt.IsZero() })
		hist, _ := h.app.Pipeline.History(ctx, hot)
		if last := hist[len(hist)-1]; last.Role != "agent" || last.Text != body["text"] || last.ID != sent.ProviderMessageID {
			t.Errorf("last turn: %+v", last)
		}
		var trail struct{ Items []pipeline.AuditRecord }
		h.mustDo(200, "GET", "/conversations/"+esc(hot)+"/trail?limit=500", viewer, nil).json(t, &trail)
		found := false
		for _, a := range trail.Items {
			if a.Kind == "agent_message" && a.Target == sent.ProviderMessageID && strings.HasPrefix(a.Actor, "admin:") {
				found = true
			}
		}
		if !found || sentWith() != 1 || c.LastAgentAt.IsZero() {
			t.Errorf("trail has the agent message: %v; sends %d", found, sentWith())
		}
		// Validation, and an agent key on a conversation not its own.
		for _, c := range []struct {
			key  string
			body any
			code int
		}{
			{sup, map[string]any{"text": "  "}, 422},
			{sup, map[string]any{"text": strings.Repeat("x", 5000)}, 422},
			{sup, map[string]any{"txt": "hi"}, 422},
			{khoa, map[string]any{"text": "hi"}, 404},
		} {
			if r := h.do("POST", "/conversations/"+esc(hot)+"/messages", c.key, c.body); r.status != c.code {
				t.Errorf("%v: %d %s", c.body, r.status, r.body)
			}
		}
	})
}

func TestLeads(t *testing.T) {
	h := startHub(t, hubOpts{})
	viewer := h.key("viewer", "")
	t0 := time.Now().Add(-time.Hour)
	for i, s := range []struct {
		user, tier string
		score      int
	}{{"a", "hot", 95}, {"b", "warm", 50}, {"c", "hot", 75}, {"d", "cold", 10}, {"e", "", 0}} {
		h.seedConv(convID(s.user), func(c *pipeline.Conversation) {
			c.Tier, c.Score, c.FirstSeen = s.tier, s.score, t0
			c.LastCustomerAt = t0.Add(time.Duration(i) * time.Minute)
			if s.user == "c" {
				c.State, c.HandedOffAt = pipeline.StateHandedOff, t0.Add(time.Minute)
			}
		})
	}
	// An agent answered lead a 90 s after its first message.
	h.app.Pipeline.Audit(context.Background(), pipeline.AuditRecord{At: t0.Add(90 * time.Second), Kind: "state", Conv: convID("a"), Detail: "handed_off -> human (agent message)"})
	h.seedConv(convID("a"), func(c *pipeline.Conversation) { c.LastAgentAt = t0.Add(90 * time.Second) })

	type leads struct {
		Items []struct {
			ID                 string   `json:"id"`
			Score              int      `json:"score"`
			SpeedToLeadSeconds *float64 `json:"speed_to_lead_seconds"`
			WaitingSeconds     *float64 `json:"waiting_seconds"`
		} `json:"items"`
		NextCursor            string         `json:"next_cursor"`
		ByTier                map[string]int `json:"by_tier"`
		Total                 int            `json:"total"`
		AvgSpeedToLeadSeconds *float64       `json:"avg_speed_to_lead_seconds"`
	}
	var l leads
	h.mustDo(200, "GET", "/leads", viewer, nil).json(t, &l)
	var ids []string
	for _, it := range l.Items {
		ids = append(ids, strings.TrimPrefix(it.ID, "test:test:test:"))
	}
	if strings.Join(ids, ",") != "a,c,b,d" || l.Total != 4 || l.ByTier["hot"] != 2 || l.ByTier["cold"] != 1 {
		t.Fatalf("leads: %v %+v", ids, l)
	}
	if s := l.Items[0].SpeedToLeadSeconds; s == nil || *s != 90 || l.AvgSpeedToLeadSeconds == nil || *l.AvgSpeedToLeadSeconds != 90 {
		t.Errorf("speed to lead of a: %v", s)
	}
	if w := l.Items[1].WaitingSeconds; w == nil || *w < 3500 {
		t.Errorf("lead c waiting: %v", w)
	}
	h.mustDo(200, "GET", "/leads?tier=hot&sort=recent", viewer, nil).json(t, &l)
	if len(l.Items) != 2 || !strings.HasSuffix(l.Items[0].ID, ":c") {
		t.Errorf("hot by recency: %+v", l.Items)
	}
	h.mustDo(200, "GET", "/leads?min_score=60&limit=1", viewer, nil).json(t, &l)
	if len(l.Items) != 1 || l.NextCursor == "" || l.Total != 2 {
		t.Fatalf("page 1: %+v", l)
	}
	h.mustDo(200, "GET", "/leads?min_score=60&limit=1&cursor="+l.NextCursor, viewer, nil).json(t, &l)
	if len(l.Items) != 1 || !strings.HasSuffix(l.Items[0].ID, ":c") || l.NextCursor != "" {
		t.Errorf("page 2: %+v", l)
	}
	for _, q := range []string{"min_score=200", "sort=name", "cursor=eHl6"} {
		if r := h.do("GET", "/leads?"+q, viewer, nil); r.status != 422 {
			t.Errorf("%s: %d", q, r.status)
		}
	}
}

func TestDeadLetters(t *testing.T) {
	h := startHub(t, hubOpts{})
	viewer := h.key("viewer", "")
	ctx := context.Background()
	conv := convID("dl")
	put := func(id, text string) {
		task, _ := json.Marshal(pipeline.Task{Kind: pipeline.TaskEvent, Instance: "test", Conv: conv,
			Event: &sdk.Event{ID: id, Kind: sdk.EventMessage, ConversationKey: "test:test:dl", Author: sdk.AuthorCustomer,
				Contact: sdk.Identity{Channel: "test", UserID: "dl"}, Message: &sdk.Message{Type: "text", Text: text}}})
		if err := h.app.Store.PutDead(ctx, store.DeadLetter{ID: id, Entry: store.Entry{ID: id, Key: conv, Payload: task, EnqueuedAt: time.Now()},
			Error: "llm down", Attempts: 5, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	put("d1", "xin chào")
	put("d2", "còn hàng không")
	put("d3", "hello")

	var list struct {
		Items []struct {
			ID, Conv, Kind, Error string
			Attempts              int
			Task                  json.RawMessage
		}
		NextCursor string `json:"next_cursor"`
	}
	h.mustDo(200, "GET", "/dead-letters?limit=2", viewer, nil).json(t, &list)
	if len(list.Items) != 2 || list.NextCursor == "" || list.Items[0].Conv != conv || list.Items[0].Kind != "event" || list.Items[0].Task != nil {
		t.Fatalf("list: %+v", list)
	}
	var one struct {
		ID   string
		Task pipeline.Task
	}
	h.mustDo(200, "GET", "/dead-letters/d2", viewer, nil).json(t, &one)
	if one.Task.Event == nil || one.Task.Event.Message.Text != "còn hàng không" {
		t.Errorf("detail: %+v", one)
	}
	// Replay: gone from the list, and the pipeline handles it.
	h.mustDo(202, "POST", "/dead-letters/d1/replay", bootstrap, nil)
	h.waitConv(conv, "the replayed message handled", func(c *pipeline.Conversation) bool { return c.Turns == 1 && c.LastDecision != nil })
	h.mustDo(204, "DELETE", "/dead-letters/d3", bootstrap, nil)
	for _, id := range []string{"d1", "d3"} {
		if r := h.do("GET", "/dead-letters/"+id, viewer, nil); r.status != 404 {
			t.Errorf("%s after replay/discard: %d", id, r.status)
		}
		if r := h.do("POST", "/dead-letters/"+id+"/replay", bootstrap, nil); r.status != 404 {
			t.Errorf("replay %s again: %d", id, r.status)
		}
	}
	h.mustDo(200, "GET", "/dead-letters", viewer, nil).json(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID != "d2" {
		t.Errorf("left: %+v", list.Items)
	}
	var audit struct{ Items []admin.AuditEntry }
	h.mustDo(200, "GET", "/audit?action=dead_letters.", viewer, nil).json(t, &audit)
	if len(audit.Items) != 4 || audit.Items[0].Target != "d1" || audit.Items[1].Target != "d3" || audit.Items[1].Status != 204 {
		t.Errorf("audit: %+v", audit.Items)
	}
}

// TestWithoutRules: a hub without rules has no assignment service and no
// rules to show; the API says so instead of failing.
func TestWithoutRules(t *testing.T) {
	h := startHub(t, hubOpts{noRules: true})
	sup := h.key("supervisor", "")
	id := convID("x")
	h.seedConv(id, func(c *pipeline.Conversation) { c.State = pipeline.StateHandedOff })
	for _, c := range []struct {
		method, path string
		body         any
		code         int
	}{
		{"POST", "/conversations/" + esc(id) + "/takeover", map[string]any{"agent": "lan"}, 503},
		{"POST", "/conversations/" + esc(id) + "/release", nil, 503},
		{"POST", "/conversations/" + esc(id) + "/close", nil, 503},
		{"POST", "/conversations/" + esc(id) + "/reassign", nil, 503},
		{"GET", "/conversations?sla_breached=true", nil, 503},
		{"GET", "/teams", nil, 503},
		{"GET", "/agents", nil, 503},
		{"PUT", "/agents/lan/status", map[string]any{"status": "online"}, 503},
		{"GET", "/rules", nil, 409},
		{"POST", "/rules/reload", nil, 409},
		{"POST", "/rules/dry-run", map[string]any{"input": hotLead}, 409},
	} {
		key := sup
		if c.path == "/rules/reload" {
			key = bootstrap
		}
		r := h.do(c.method, c.path, key, c.body)
		if r.status != c.code || problemType(r.problem(t)) != admin.PNotConfigured {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	// A candidate set still dry-runs.
	var d dryRun
	h.mustDo(200, "POST", "/rules/dry-run", sup, map[string]any{"input": hotLead, "files": exampleFiles(t, nil)}).json(t, &d)
	if !d.Candidate || d.Decision.Tier != "hot" {
		t.Errorf("candidate dry run: %+v", d.Decision)
	}
	h.mustDo(200, "GET", "/conversations?state=handed_off", sup, nil)
}

func TestSystem(t *testing.T) {
	metricsAddr := hubtest.FreeAddr(t)
	h := startHub(t, hubOpts{metrics: metricsAddr})
	viewer := h.key("viewer", "")
	var ready struct {
		Ready   bool
		Store   string
		Plugins map[string]string
		Rules   string
	}
	h.mustDo(200, "GET", "/health", viewer, nil).json(t, &ready)
	if !ready.Ready || ready.Store != "ok" || len(ready.Plugins) != 3 || ready.Plugins["brain"] != "ok" || ready.Rules == "" {
		t.Errorf("health: %+v", ready)
	}
	var v struct{ Version string }
	h.mustDo(200, "GET", "/version", viewer, nil).json(t, &v)
	if v.Version == "" {
		t.Errorf("version: %+v", v)
	}
	m := h.mustDo(200, "GET", "/metrics", viewer, nil)
	if !strings.Contains(string(m.body), "switchboard_webhook_requests_total") && !strings.Contains(string(m.body), "go_goroutines") {
		t.Errorf("metrics: %.300s", m.body)
	}
	// With listen.metrics the scraper gets its own listener, no key needed;
	// the admin listener has no root /metrics then.
	hubtest.Eventually(t, 10*time.Second, "the metrics listener", func() bool {
		res, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode == 200 && strings.Contains(string(b), "go_goroutines")
	})
	if r := h.do("GET", strings.TrimSuffix(h.base, admin.Prefix)+"/metrics", viewer, nil); r.status != 404 {
		t.Errorf("root /metrics on the admin listener with listen.metrics set: %d", r.status)
	}
	var plugins struct {
		Items []struct {
			Name, State string
			Restarts    int
			PID         int `json:"pid"`
		}
	}
	h.mustDo(200, "GET", "/plugins", viewer, nil).json(t, &plugins)
	if len(plugins.Items) != 3 || plugins.Items[0].State != "running" {
		t.Fatalf("plugins: %+v", plugins)
	}
	var p struct {
		Name     string
		State    string
		Restarts int
		PID      int `json:"pid"`
	}
	h.mustDo(200, "GET", "/plugins/crm", viewer, nil).json(t, &p)
	pid := p.PID
	h.mustDo(202, "POST", "/plugins/crm/restart", bootstrap, nil)
	hubtest.Eventually(t, 30*time.Second, "crm restarted", func() bool {
		h.mustDo(200, "GET", "/plugins/crm", viewer, nil).json(t, &p)
		return p.State == "running" && p.PID != pid && p.Restarts >= 1
	})
	if r := h.do("POST", "/plugins/nope/restart", bootstrap, nil); r.status != 404 {
		t.Errorf("unknown plugin: %d", r.status)
	}
	// Unknown routes under the prefix are problem+json 404s.
	if r := h.do("GET", "/nothing-here", viewer, nil); r.status != 404 || problemType(r.problem(t)) != admin.PNotFound {
		t.Errorf("unknown route: %d %s", r.status, r.body)
	}
}

// sse reads a stream's events into a channel.
type sseEvent struct {
	id, event string
	data      admin.Event
}

func openStream(t *testing.T, h *testHub, key, query string, header ...string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.base+"/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &ev.data)
			}
		}
	}()
	return out, cancel
}

// next waits for an event matching cond, skipping others.
func next(t *testing.T, ch <-chan sseEvent, what string, cond func(sseEvent) bool) sseEvent {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended waiting for %s", what)
			}
			if cond(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s within 20s", what)
		}
	}
}

func TestEventStream(t *testing.T) {
	h := startHub(t, hubOpts{})
	sup, lan := h.key("supervisor", ""), h.key("agent", "lan")
	mine, other := convID("mine"), convID("other")
	h.seedConv(mine, func(c *pipeline.Conversation) { c.Assignee, c.State = "lan", pipeline.StateHuman })
	h.seedConv(other, func(c *pipeline.Conversation) { c.Assignee, c.State = "minh", pipeline.StateHuman })

	all, stopAll := openStream(t, h, sup, "")
	defer stopAll()
	own, stopOwn := openStream(t, h, lan, "")
	defer stopOwn()
	handoffs, stopH := openStream(t, h, sup, "?types=handoff")
	defer stopH()

	// Customers write to both conversations (a person has them: no bot
	// reply), then a new lead gets hot and is handed off.
	h.post(testplugins.WebhookMessage{ID: "e1", User: "other", Text: "alo"})
	h.post(testplugins.WebhookMessage{ID: "e2", User: "mine", Text: "alo"})
	h.post(testplugins.WebhookMessage{ID: "e3", User: "new", Text: "Tôi là giám đốc, cần phần mềm CRM gấp tuần này, ngân sách 50 triệu"})

	first := next(t, all, "a message event for the other conversation", func(e sseEvent) bool { return e.event == "message" && e.data.Conv == other })
	next(t, all, "a message event for mine", func(e sseEvent) bool { return e.event == "message" && e.data.Conv == mine })
	h1 := next(t, all, "the handoff", func(e sseEvent) bool { return e.event == "handoff" && e.data.Conv == convID("new") })
	if first.id == "" || h1.data.Tier != "hot" || h1.data.Type != "handoff" {
		t.Errorf("events: %+v %+v", first, h1)
	}
	if e := next(t, handoffs, "a handoff on the filtered stream", func(sseEvent) bool { return true }); e.event != "handoff" {
		t.Errorf("filtered stream gave %+v", e)
	}
	// The agent's stream has its conversation's events and nobody else's.
	got := next(t, own, "an event of mine", func(e sseEvent) bool {
		if e.data.Conv == other {
			t.Errorf("agent lan saw an event of minh's conversation: %+v", e)
		}
		return e.data.Conv == mine
	})
	if got.event != "message" {
		t.Errorf("agent event: %+v", got)
	}
	// Post one more to mine: everything lan saw in between was its own.
	h.post(testplugins.WebhookMessage{ID: "e4", User: "mine", Text: "còn đó không"})
	next(t, own, "the second event of mine", func(e sseEvent) bool {
		// The new lead may have been assigned to lan: that one lan may see.
		if c, _, _ := h.app.Pipeline.Conversations().Get(context.Background(), e.data.Conv); e.data.Conv != mine && (c == nil || c.Assignee != "lan") {
			t.Errorf("agent lan saw an event of %s", e.data.Conv)
		}
		return e.data.Conv == mine && e.data.Type == "message"
	})

	// Resuming after an id gives what came after it, from the start.
	resumed, stopR := openStream(t, h, sup, "", "Last-Event-ID", first.id)
	defer stopR()
	// Conversations are processed in parallel, so what follows the first
	// event may be another conversation's; it is never the first again.
	e := next(t, resumed, "the event after the first", func(sseEvent) bool { return true })
	if e.id == first.id {
		t.Errorf("resumed with %+v, the event it resumed after", e)
	}
	next(t, resumed, "mine's message after the first", func(ev sseEvent) bool {
		if ev.id == first.id {
			t.Errorf("the resumed stream repeated %+v", ev)
		}
		return ev.data.Conv == mine && ev.event == "message"
	})
	if r := h.do("GET", "/events?after=garbage", sup, nil); r.status != 422 {
		t.Errorf("bad cursor: %d %s", r.status, r.body)
	}

	// An open stream does not hold up the hub's shutdown.
	start := time.Now()
	h.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown with open streams took %s", d)
	}
	for range all {
	}
}
