package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

func postgresURL() string {
	if u := os.Getenv("POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// alwaysOpenRules copies the default rule set with the teams open around
// the clock (the test runs at any hour) and a follow-up that calls a hot
// lead back two seconds after the handoff.
func alwaysOpenRules(t *testing.T) string {
	t.Helper()
	src := examplesRules(t)
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	hours := regexp.MustCompile(`(?m)^(\s+hours: ).*$`)
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), "_test.yaml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		switch e.Name() {
		case "10-teams.yaml":
			b = hours.ReplaceAll(b, []byte(`${1}"Mon-Sun 00:00-23:59"`))
		case "50-followups.yaml":
			b = append(b, []byte(`
  - name: hot lead call
    when: tier == "hot"
    after: 2s
    action: task
    params:
      type: call
      assignee: assignee
      title: Gọi lại khách nóng
`)...)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func requirePostgres(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresURL())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// A hot lead talks to the bot on a channel; the SQL CRM on PostgreSQL ends
// up with one contact holding the facts and score, one note per answered
// message with the score's explanation, and one deal at the tier's stage.
func TestHotLeadIntoTheSQLCRM(t *testing.T) {
	db := requirePostgres(t)
	ctx := testkit.Context(t, 2*time.Minute)
	schema := fmt.Sprintf("sbe2e_%d", time.Now().UnixNano())
	t.Cleanup(func() { _, _ = db.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	bins := hubtest.Build(t)
	crmBin := testkit.BuildPlugin(t, mod+"plugins/postgrescrm")
	sink := hubtest.NewSink(t)
	dir := t.TempDir()
	h := hubtest.Start(t, bins, dir, fmt.Sprintf(`
listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store: { embedded: { path: %s/sb.db } }
plugins:
  - { name: test, kind: channel, path: %s, config: { secret: %s, sink_url: %q } }
  - { name: brain, kind: llm, path: %s }
  - name: crm
    kind: crm
    path: %s
    config: { dsn: %q, schema: %s, link_template: "https://crm.example.vn/contacts/{id}" }
rules: { dir: %s }
handoff: { default_status: online }
pipeline:
  llm: brain
  crm: crm
  deals:
    warm: { pipeline: default, stage: new }
    hot: { pipeline: default, stage: qualified }
`, dir, bins.Channel, secret, sink.URL(), bins.LLM, crmBin, postgresURL(), schema, alwaysOpenRules(t)))

	// Warm after the first message (need, urgent timeline), hot after the
	// second (decision maker, budget): handed to sales, the bot steps aside.
	msgs := []string{
		"Chào shop, bên mình cần phần mềm CRM, triển khai gấp trong tuần này",
		"Tôi là giám đốc, ngân sách khoảng 50 triệu",
	}
	for i, text := range msgs {
		if code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{
			ID: fmt.Sprintf("hot-%d", i), User: "hot-lead", Name: "Nguyễn Văn An", Text: text}); err != nil || code != 200 {
			t.Fatalf("webhook %d: %d %v", i, code, err)
		}
		waitProcessed(t, h, float64(i+1))
	}
	hubtest.Eventually(t, 30*time.Second, "the handoff", func() bool { return h.Metric("switchboard_handoffs_total") >= 1 })
	replies, _ := sink.Count()
	// A message after the handoff is for the salesperson: no bot reply, no note.
	if code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{
		ID: "hot-after", User: "hot-lead", Text: "Khi nào bên em gọi lại?"}); err != nil || code != 200 {
		t.Fatalf("webhook: %d %v", code, err)
	}
	waitProcessed(t, h, float64(len(msgs)+1))
	if n, _ := sink.Count(); n != replies {
		t.Errorf("the bot answered after the handoff: %d sends, was %d", n, replies)
	}

	q := func(sql string, args ...any) pgx.Row { return db.QueryRow(ctx, sql, args...) }
	var contacts int
	if err := q("SELECT count(*) FROM " + schema + ".contacts").Scan(&contacts); err != nil {
		t.Fatal(err)
	}
	if contacts != 1 {
		t.Fatalf("%d contacts, want 1", contacts)
	}
	var (
		id, tier, budget, timeline, name string
		score                            int
		dm                               *bool
	)
	if err := q("SELECT id, score, tier, budget, timeline, decision_maker, name FROM "+schema+".contacts").Scan(&id, &score, &tier, &budget, &timeline, &dm, &name); err != nil {
		t.Fatal(err)
	}
	if score < 70 || tier != "hot" || budget == "" || timeline == "" || dm == nil || !*dm || name != "Nguyễn Văn An" {
		t.Errorf("contact: score %d tier %q budget %q timeline %q decision maker %v name %q", score, tier, budget, timeline, dm, name)
	}
	var ident int
	if err := q("SELECT count(*) FROM "+schema+".identities WHERE contact_id = $1 AND channel = 'test' AND user_id = 'hot-lead'", id).Scan(&ident); err != nil || ident != 1 {
		t.Errorf("identity rows %d, %v", ident, err)
	}
	rows, err := db.Query(ctx, "SELECT body FROM "+schema+".notes WHERE contact_id = $1", id)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for rows.Next() {
		var b string
		_ = rows.Scan(&b)
		notes = append(notes, b)
	}
	rows.Close()
	if len(notes) != len(msgs) {
		t.Errorf("%d notes for %d answered messages", len(notes), len(msgs))
	}
	for _, n := range notes {
		if !strings.Contains(n, "Switchboard:") || !strings.Contains(strings.ToLower(n), "score") {
			t.Errorf("a note without the score's explanation: %q", n)
		}
	}
	// The hot lead was assigned to a salesperson, and the follow-up rule
	// created a call task for that person in the CRM.
	var owner, title string
	hubtest.Eventually(t, 30*time.Second, "the follow-up task", func() bool {
		return q("SELECT owner_id, title FROM "+schema+".tasks WHERE contact_id = $1", id).Scan(&owner, &title) == nil
	})
	var tasks int
	_ = q("SELECT count(*) FROM "+schema+".tasks WHERE contact_id = $1", id).Scan(&tasks)
	if tasks != 1 || title != "Gọi lại khách nóng" || (owner != "lan" && owner != "minh" && owner != "tuan") {
		t.Errorf("%d tasks; owner %q title %q, want one call task for a sales agent", tasks, owner, title)
	}
	var conv struct {
		Assignment *struct {
			Agent string `json:"agent"`
		} `json:"assignment"`
		Assignee string `json:"assignee"`
	}
	if _, err := hubtest.GetJSON(h.Admin+"/admin/v1/conversations/test:test:test:hot-lead", &conv, "Authorization", "Bearer "+h.AdminKey); err != nil {
		t.Fatal(err)
	}
	if conv.Assignee != owner {
		t.Errorf("task owner %q, conversation assigned to %q", owner, conv.Assignee)
	}
	var deals int
	var stage string
	if err := q("SELECT count(*), min(stage) FROM "+schema+".deals WHERE contact_id = $1 AND is_open", id).Scan(&deals, &stage); err != nil {
		t.Fatal(err)
	}
	if deals != 1 || stage != "qualified" {
		t.Errorf("%d open deals at stage %q, want one at qualified", deals, stage)
	}
}
