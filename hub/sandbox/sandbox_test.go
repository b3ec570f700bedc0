package sandbox_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/app"
	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/sandbox"
	"github.com/switchboard-hub/switchboard/rules"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func repoRoot(t *testing.T) string {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// The sandbox end to end, as `switchboard sandbox` runs it: the plugin
// binaries built by the sandbox itself, the fakes, the hub on the embedded
// store with the SQL CRM on SQLite, the five scripted conversations through
// the real webhook path. The outcome is read back from where an operator
// would look: the hub's conversation state and assignment records, the
// CRM's SQLite file, what the fake providers received, the admin API.
func TestSandboxPlaysTheScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := &syncBuffer{}
	dir := filepath.Join(t.TempDir(), "sandbox")
	sb, err := sandbox.Start(ctx, sandbox.Options{
		Root: repoRoot(t), Dir: dir, PluginDir: t.TempDir(),
		Listen: hubtest.FreeAddr(t), AdminListen: hubtest.FreeAddr(t),
		Out: out, AppOptions: []app.Option{admin.Mount(admin.Options{})},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sb.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("sandbox view:\n%s", out.String())
			if b, err := os.ReadFile(filepath.Join(dir, "hub.log")); err == nil {
				t.Logf("hub log (tail):\n%s", tail(string(b), 6000))
			}
		}
	}()
	rep, err := sb.Play(ctx)
	if err != nil {
		t.Fatalf("play: %v", err)
	}
	if len(rep.Conversations) != len(sandbox.Scenarios()) {
		t.Fatalf("%d conversations played, want %d", len(rep.Conversations), len(sandbox.Scenarios()))
	}
	byName := map[string]sandbox.ConvReport{}
	for _, cr := range rep.Conversations {
		byName[cr.Scenario.Customer] = cr
	}
	state := func(name string) *pipeline.Conversation {
		t.Helper()
		c, _, err := sb.App.Pipeline.Conversations().Get(ctx, byName[name].Conv)
		if err != nil {
			t.Fatalf("conversation of %s: %v", name, err)
		}
		return c
	}
	record := func(name string) *assign.Record {
		t.Helper()
		r, err := sb.App.Assign.Record(ctx, byName[name].Conv)
		if err != nil {
			t.Fatalf("assignment record of %s: %v", name, err)
		}
		return r
	}

	// The hot lead: warm after the first message, hot after the second,
	// handed to sales and assigned to one of its members.
	an := state("Nguyễn Văn An")
	if first := byName["Nguyễn Văn An"].Steps[0].Conv; first.Score != 60 || first.Tier != "warm" {
		t.Errorf("hot lead after one message: score %d tier %q, want 60 warm", first.Score, first.Tier)
	}
	if an.Score != 100 || an.Tier != "hot" || an.Team != "sales" || an.Priority != "high" || an.State != pipeline.StateHandedOff {
		t.Errorf("hot lead: score %d tier %q team %q priority %q state %q", an.Score, an.Tier, an.Team, an.Priority, an.State)
	}
	if r := record("Nguyễn Văn An"); r.State != assign.RecAssigned || !in(r.Assignee, "lan", "minh", "tuan") || r.Deadline.IsZero() {
		t.Errorf("hot lead assignment: %+v", r)
	}

	// The complaint: support, high priority, the one support agent trained
	// for complaints.
	binh := state("Trần Thị Bình")
	if binh.Team != "support" || binh.Priority != "high" || binh.State != pipeline.StateHandedOff || binh.Facts.Intent != "complaint" {
		t.Errorf("complaint: team %q priority %q state %q intent %q", binh.Team, binh.Priority, binh.State, binh.Facts.Intent)
	}
	if r := record("Trần Thị Bình"); r.State != assign.RecAssigned || r.Assignee != "thu" {
		t.Errorf("complaint assignment: %+v", r)
	}

	// The spammer: 35 after a harmless question, 0 after the spam; the bot
	// keeps the conversation.
	spam := state("Kiếm Tiền 24h")
	if first := byName["Kiếm Tiền 24h"].Steps[0].Conv; first.Score != 35 {
		t.Errorf("spammer's first message scored %d, want 35", first.Score)
	}
	if spam.Score != 0 || spam.Facts.Intent != "spam" || spam.State != pipeline.StateBot || spam.Assignee != "" {
		t.Errorf("spammer: score %d intent %q state %q assignee %q", spam.Score, spam.Facts.Intent, spam.State, spam.Assignee)
	}

	// Outside working hours: handed to the English desk, which is closed,
	// so the conversation waits in its queue and the customer is told when
	// it opens.
	john := state("John Carter")
	if john.Team != sandbox.OverlayTeam || john.State != pipeline.StateHandedOff || john.LastDecision == nil || !john.LastDecision.OutOfHours {
		t.Errorf("out of hours: team %q state %q decision %+v", john.Team, john.State, john.LastDecision)
	}
	if r := record("John Carter"); r.State != assign.RecWaiting || r.Assignee != "" {
		t.Errorf("out of hours assignment: %+v", r)
	}

	// The Business App echo: the bot answered once, then stepped aside.
	maria := state("Maria Garcia")
	if maria.State != pipeline.StateHuman {
		t.Errorf("after the echo: state %q, want human", maria.State)
	}

	// What the providers received.
	zaloTo := map[string][]string{}
	for _, m := range sb.Zalo.Accepted() {
		zaloTo[m.UserID] = append(zaloTo[m.UserID], m.Text)
	}
	waTo := map[string][]string{}
	for _, m := range sb.WhatsApp.Sent() {
		waTo[m.To] = append(waTo[m.To], m.Text)
	}
	expectSends := func(got []string, n int, who string, contains ...string) {
		t.Helper()
		if len(got) != n {
			t.Errorf("%s got %d messages, want %d: %q", who, len(got), n, got)
			return
		}
		all := strings.Join(got, "\n")
		for _, c := range contains {
			if !strings.Contains(all, c) {
				t.Errorf("%s's messages lack %q: %q", who, c, got)
			}
		}
	}
	// An: the answer to each message, and the handoff message.
	expectSends(zaloTo[byName["Nguyễn Văn An"].User], 3, "the hot lead", "599.000đ", "chuyên viên tư vấn sẽ liên hệ")
	expectSends(zaloTo[byName["Trần Thị Bình"].User], 2, "the complainer", "chăm sóc khách hàng")
	expectSends(zaloTo[byName["Kiếm Tiền 24h"].User], 2, "the spammer")
	expectSends(waTo[byName["John Carter"].User], 1, "the out-of-hours customer", "offline right now", sb.Overlay.Opens.Format("15:04"))
	expectSends(waTo[byName["Maria Garcia"].User], 1, "the Business App customer", "demo")
	// The sales agent heard of the assignment on her own Zalo (the rules'
	// notify target of each agent).
	if n := len(zaloTo["84901000001"]) + len(zaloTo["84901000002"]) + len(zaloTo["84901000003"]); n == 0 {
		t.Error("no sales agent was notified on Zalo")
	}

	// The CRM's SQLite file: one contact per customer with the facts and
	// score, one note per answered message, deals at the tiers' stages.
	db, err := sql.Open("sqlite", "file:"+sb.CRMFile+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := count("SELECT count(*) FROM contacts"); n != 5 {
		t.Errorf("%d CRM contacts, want 5", n)
	}
	var (
		score          int
		tier, budget   string
		decisionMaker  bool
		dealStage      string
		dealsOfContact int
	)
	if err := db.QueryRowContext(ctx, "SELECT score, tier, budget, decision_maker FROM contacts WHERE id = ?", an.ContactID).
		Scan(&score, &tier, &budget, &decisionMaker); err != nil {
		t.Fatalf("the hot lead's contact %q: %v", an.ContactID, err)
	}
	if score != 100 || tier != "hot" || budget == "" || !decisionMaker {
		t.Errorf("hot lead in the CRM: score %d tier %q budget %q decision maker %v", score, tier, budget, decisionMaker)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*), min(stage) FROM deals WHERE contact_id = ? AND is_open", an.ContactID).
		Scan(&dealsOfContact, &dealStage); err != nil {
		t.Fatal(err)
	}
	if dealsOfContact != 1 || dealStage != "qualified" {
		t.Errorf("hot lead: %d open deals at %q, want one at qualified", dealsOfContact, dealStage)
	}
	answered := 0
	for _, cr := range rep.Conversations {
		for _, st := range cr.Steps {
			if st.Answered {
				answered++
			}
		}
	}
	if answered != 7 {
		t.Errorf("%d messages answered by the bot, want 7", answered)
	}
	if n := count("SELECT count(*) FROM notes"); n != answered {
		t.Errorf("%d CRM notes for %d answered messages", n, answered)
	}
	if n := count("SELECT count(*) FROM notes WHERE contact_id = ? AND body LIKE '%score 100 (hot)%'", an.ContactID); n != 1 {
		t.Errorf("%d notes of the hot lead explain the score of 100", n)
	}

	// The admin key works, and the printed commands name real routes.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sb.AdminURL()+admin.Prefix+"/conversations", nil)
	req.Header.Set("Authorization", "Bearer "+sb.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Items []json.RawMessage }
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(list.Items) != 5 {
		t.Errorf("GET conversations with the sandbox's key: %d, %d items", resp.StatusCode, len(list.Items))
	}
	// The trail the printed command shows.
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, sb.AdminURL()+admin.Prefix+"/conversations/"+byName["Nguyễn Văn An"].Conv+"/trail", nil)
	req.Header.Set("Authorization", "Bearer "+sb.AdminKey)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	var trail struct{ Items []pipeline.AuditRecord }
	_ = json.NewDecoder(resp.Body).Decode(&trail)
	resp.Body.Close()
	kinds := map[string]int{}
	for _, r := range trail.Items {
		kinds[r.Kind]++
	}
	if resp.StatusCode != 200 || kinds["handoff"] != 1 || kinds["reply_sent"] != 3 || kinds["crm_deal"] != 2 {
		t.Errorf("the hot lead's trail: %d, kinds %v", resp.StatusCode, kinds)
	}

	// Typing in the terminal after the play: a Zalo customer who asks for
	// a person is handed to sales at once.
	var you sandbox.ConvReport
	sr, err := sb.Say(ctx, &you, "Cho mình gặp nhân viên tư vấn")
	if err != nil {
		t.Fatal(err)
	}
	if sr.Conv.State != pipeline.StateHandedOff || sr.Conv.Team != "sales" || len(sr.Replies) != 1 || !strings.Contains(sr.Replies[0], "chuyển anh/chị sang nhân viên") {
		t.Errorf("typed message: state %q team %q replies %q", sr.Conv.State, sr.Conv.Team, sr.Replies)
	}
	sb.Running(true)
	view := out.String()
	for _, want := range []string{"━━ Summary", "hot lead", "spam =0", "closed now", "the bot steps aside",
		"export SB_KEY=" + sb.AdminKey, "/rules/dry-run", "/metrics", "/conversations/" + byName["Nguyễn Văn An"].Conv + "/trail"} {
		if !strings.Contains(view, want) {
			t.Errorf("the view lacks %q", want)
		}
	}
	if strings.Contains(view, "\x1b[") {
		t.Error("colours in a view that is not a terminal")
	}
}

// The sandbox's rules: every default team open at any hour, and the
// English desk closed at the time they were written, whatever that is.
func TestSandboxRulesAtAnyHour(t *testing.T) {
	src := filepath.Join(repoRoot(t), "examples", "rules")
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	for _, now := range []time.Time{
		time.Date(2026, 11, 22, 3, 0, 0, 0, loc),   // a Sunday night: the default teams are closed
		time.Date(2026, 11, 23, 10, 30, 0, 0, loc), // a Monday morning
		time.Date(2026, 11, 23, 22, 59, 0, 0, loc), // the desk's window wraps past midnight
		time.Date(2027, 2, 8, 9, 0, 0, 0, loc),     // Tết: a holiday in holidays-vn.txt
	} {
		dst := t.TempDir()
		ov, err := sandbox.WriteRules(src, dst, now, false)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := rules.LoadDir(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !ov.Opens.After(now) || ov.Opens.Sub(now) > 3*time.Hour {
			t.Errorf("%s: the desk opens at %s", now, ov.Opens)
		}
		hot := rules.Input{Now: now, Message: rules.Message{Text: "Bên mình cần gấp", Channel: "zalo"},
			Lead: rules.Lead{DecisionMaker: true, Need: "CRM", Timeline: "tuần này", Budget: "50 triệu"}}
		d, err := rs.Evaluate(hot)
		if err != nil {
			t.Fatal(err)
		}
		if d.Team != "sales" || d.OutOfHours || d.Handoff == nil {
			t.Errorf("%s: hot lead: team %q out of hours %v handoff %v", now, d.Team, d.OutOfHours, d.Handoff)
		}
		desk := rules.Input{Now: now, Message: rules.Message{Text: "Can I talk to a real person?", Channel: "whatsapp"}}
		d, err = rs.Evaluate(desk)
		if err != nil {
			t.Fatal(err)
		}
		if d.Team != sandbox.OverlayTeam || !d.OutOfHours || d.Handoff == nil || !strings.Contains(d.Handoff.CustomerMessage, ov.Opens.Format("15:04")) {
			t.Errorf("%s: the English desk: team %q out of hours %v handoff %+v", now, d.Team, d.OutOfHours, d.Handoff)
		}
	}
}

// The sandbox wipes only directories it made.
func TestSandboxRefusesAForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := sandbox.Start(context.Background(), sandbox.Options{Root: repoRoot(t), Dir: dir, PluginDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "not made by the sandbox") {
		t.Fatalf("start in a foreign directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious.txt")); err != nil {
		t.Fatalf("the foreign file is gone: %v", err)
	}
}

func in(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
