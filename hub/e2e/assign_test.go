package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/internal/hubtest"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

// receiver is a loopback endpoint for the hub's outgoing webhook.
type receiver struct {
	mu  sync.Mutex
	got []receivedNote
	srv *httptest.Server
}

type receivedNote struct {
	N         assign.Notification
	Signature string
	Timestamp string
	Delivery  string
	Valid     bool
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var n assign.Notification
		if err := json.Unmarshal(body, &n); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rn := receivedNote{N: n, Signature: req.Header.Get(assign.HeaderSignature), Timestamp: req.Header.Get(assign.HeaderTimestamp),
			Delivery: req.Header.Get(assign.HeaderDelivery)}
		rn.Valid = assign.VerifySignature(secret, body, rn.Signature)
		r.mu.Lock()
		r.got = append(r.got, rn)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) find(kind, agent string) []receivedNote {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedNote
	for _, n := range r.got {
		if n.N.Kind == kind && n.N.Agent == agent {
			out = append(out, n)
		}
	}
	return out
}

// assignRules copies the shipped rule set with teams that work around the
// clock (the test must not depend on the hour it runs at); lan gets her
// notifications on her own Zalo account, the others through the webhook.
func assignRules(t *testing.T, lanZalo, salesHours string) string {
	t.Helper()
	dir := t.TempDir()
	src := examplesRules(t)
	for _, f := range []string{"00-settings.yaml", "20-scoring.yaml", "30-routing.yaml", "40-handoff.yaml", "50-followups.yaml"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	teams := fmt.Sprintf(`
agents:
  lan: {name: Nguyễn Thị Lan, skills: [b2b], notify: "zalo:%s", attributes: {zalo_id: admin-lan}}
  minh: {name: Trần Văn Minh, notify: webhook}
  tuan: {name: Lê Anh Tuấn, notify: webhook}
  thu: {name: Phạm Thu, skills: [complaints], notify: webhook}
  khoa: {name: Đỗ Minh Khoa, notify: webhook}
  hoa: {name: Vũ Thị Hoa, notify: webhook}
teams:
  sales:
    strategy: round_robin
    capacity: 8
    members: [lan, minh, tuan]
    hours: %q
    sla: {first_response: 5m, next_response: 15m}
    escalate_to: leads
    supervisor: hoa
  support:
    strategy: least_loaded
    capacity: 10
    members: [thu, khoa]
    hours: "24/7"
    escalate_to: leads
    supervisor: hoa
  leads:
    strategy: capacity
    capacity: 3
    members: [hoa]
`, lanZalo, salesHours)
	if err := os.WriteFile(filepath.Join(dir, "10-teams.yaml"), []byte(teams), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHotLeadHandoffOnZalo: a hot lead on Zalo is handed off; the bot
// stops; the assignee is notified on her own Zalo and through the signed
// webhook, with the summary and the CRM link; her reply from the OA chat
// (the echo) counts as the first response; a release rule gives the
// conversation back to the bot, whose answer the next message gets.
func TestHotLeadHandoffOnZalo(t *testing.T) {
	bins := hubtest.Build(t)
	zbin := testkit.BuildPlugin(t, mod+"plugins/zalo")
	zf := zalofake.New(zalofake.Config{})
	t.Cleanup(zf.Close)
	const hookSecret = "handoff-hmac-secret"
	rcv := newReceiver(t, hookSecret)
	lanZalo := zalofake.NewID()
	dir := t.TempDir()
	h := hubtest.Start(t, bins, dir, fmt.Sprintf(`
listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store: { embedded: { path: %s/sb.db } }
plugins:
  - name: zalo
    kind: channel
    path: %s
    config: %s
  - name: brain
    kind: llm
    path: %s
  - name: crm
    kind: crm
    path: %s
    config: { link_template: "https://crm.example.vn/contacts/{id}" }
rules: { dir: %s }
pipeline: { llm: brain, crm: crm, lease_ttl: 2s, retry_base: 100ms }
handoff:
  webhook_url: %q
  webhook_secret: ${HANDOFF_SECRET}
  release_after: 2h
`, dir, zbin, zf.PluginConfig(nil), bins.LLM, bins.CRM, assignRules(t, lanZalo, "24/7"), rcv.srv.URL), "HANDOFF_SECRET="+hookSecret)
	ctx := testkit.Context(t, 2*time.Minute)
	url := h.Webhooks + "/webhooks/zalo"
	post := func(ev zalofake.Event) {
		t.Helper()
		resp, err := zf.PostWebhook(ctx, url, ev)
		if err != nil {
			t.Fatalf("post webhook: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("webhook: %d", resp.StatusCode)
		}
	}
	sentTo := func(user string) []zalofake.Send {
		var out []zalofake.Send
		for _, s := range zf.Accepted() {
			if s.UserID == user {
				out = append(out, s)
			}
		}
		return out
	}
	waitSent := func(user string, n int, what string) []zalofake.Send {
		t.Helper()
		hubtest.Eventually(t, 30*time.Second, what, func() bool { return len(sentTo(user)) >= n })
		return sentTo(user)
	}
	events := 0.0
	processed := func() { events++; waitProcessed(t, h, events) }

	// Lan follows the OA and writes once, so the OA may message her.
	post(zf.Text(lanZalo, "Lan đăng ký nhận thông báo"))
	processed()
	waitSent(lanZalo, 1, "the bot's answer to Lan")

	// The hot lead: a decision maker with a need, a budget and this week.
	customer := zalofake.NewID()
	lead := "Chào shop, tôi là giám đốc, cần phần mềm CRM cho 20 nhân viên, ngân sách 50 triệu, triển khai trong tuần này. Báo giá giúp tôi."
	post(zf.Text(customer, lead))
	processed()
	toCustomer := waitSent(customer, 2, "the bot's reply and the handoff message")
	if !strings.Contains(toCustomer[1].Text, "Chuyên viên tư vấn sẽ liên hệ anh/chị ngay") && !strings.Contains(toCustomer[1].Text, "chuyên viên tư vấn sẽ liên hệ anh/chị ngay") {
		t.Errorf("the customer was not told a person will answer now: %q", toCustomer[1].Text)
	}

	// The assignee hears of it through the signed webhook, with the summary.
	hubtest.Eventually(t, 30*time.Second, "the assignee's webhook notification", func() bool { return len(rcv.find("assignment", "lan")) > 0 })
	n := rcv.find("assignment", "lan")[0]
	if !n.Valid || !strings.HasPrefix(n.Signature, "sha256=") || n.Timestamp == "" || n.Delivery == "" {
		t.Errorf("webhook signature or headers: %+v", n)
	}
	s := n.N.Summary
	switch {
	case s == nil:
		t.Fatal("no summary")
	case s.Need != "software" || s.Budget != "stated" || s.Timeline != "urgent":
		t.Errorf("facts: %+v", s)
	case s.Score < 70 || s.Tier != "hot" || !strings.Contains(s.Explain, "decision maker"):
		t.Errorf("score %d %q, explanation %q", s.Score, s.Tier, s.Explain)
	case !strings.HasPrefix(s.ContactURL, "https://crm.example.vn/contacts/"):
		t.Errorf("CRM link %q", s.ContactURL)
	case len(s.Last) == 0 || !strings.Contains(strings.Join(s.Last, "\n"), "ngân sách 50 triệu"):
		t.Errorf("last messages %q", s.Last)
	case s.Reason != "Khách hàng tiềm năng cao":
		t.Errorf("reason %q", s.Reason)
	}
	// The rest of the sales team is told too (notify: team:sales).
	hubtest.Eventually(t, 30*time.Second, "the team's notifications", func() bool {
		return len(rcv.find("handoff", "minh")) > 0 && len(rcv.find("handoff", "tuan")) > 0
	})
	// And on Lan's own Zalo: the summary with the CRM link.
	toLan := waitSent(lanZalo, 2, "the notification on Lan's Zalo")
	if !strings.Contains(toLan[1].Text, "CRM: https://crm.example.vn/contacts/") || !strings.Contains(toLan[1].Text, "Need: software") {
		t.Errorf("Lan's Zalo notification: %q", toLan[1].Text)
	}

	// The bot stays silent while the conversation waits for Lan.
	post(zf.Text(customer, "Anh đợi nhé"))
	processed()
	if got := len(sentTo(customer)); got != 2 {
		t.Fatalf("%d messages to the customer after the handoff, want 2", got)
	}

	// Lan answers from the OA chat tool: the echo is the first response.
	post(zf.OAText(customer, "Dạ em là Lan, em gọi anh ngay ạ", "admin-lan"))
	processed()
	hubtest.Eventually(t, 10*time.Second, "the first response recorded", func() bool {
		return h.Metric("switchboard_first_response_seconds_count", "team", "sales") == 1
	})
	if v := h.Metric("switchboard_assignments_total", "team", "sales", "reason", "round_robin"); v != 1 {
		t.Errorf("assignments metric %v", v)
	}

	// The customer asks for the bot: the release rule gives it back.
	post(zf.Text(customer, "Cảm ơn em, cho anh gặp bot để hỏi thêm"))
	processed()
	toCustomer = waitSent(customer, 3, "the release message")
	if !strings.Contains(toCustomer[2].Text, "trợ lý ảo tiếp tục hỗ trợ") {
		t.Errorf("release message %q", toCustomer[2].Text)
	}
	if v := h.Metric("switchboard_releases_total", "reason", "rule"); v != 1 {
		t.Errorf("releases metric %v", v)
	}
	// The next message gets a bot reply.
	post(zf.Text(customer, "Gói Pro có những tính năng gì?"))
	processed()
	toCustomer = waitSent(customer, 4, "the bot's reply after the release")
	if !strings.Contains(toCustomer[3].Text, "Gói Pro có những tính năng gì?") {
		t.Errorf("bot reply after release %q", toCustomer[3].Text)
	}
	if strings.Contains(h.Log(), "ngân sách 50 triệu") || strings.Contains(h.Log(), hookSecret) {
		t.Error("customer text or the webhook secret in the hub's log")
	}
}

// TestOutOfHoursHandoffWaits: outside the team's hours the customer who
// asks for a person is told when one will answer (the next opening), the
// conversation waits in the team's queue rather than going to someone
// who is not working, and the team hears that it waits.
func TestOutOfHoursHandoffWaits(t *testing.T) {
	bins := hubtest.Build(t)
	sink := hubtest.NewSink(t)
	const hookSecret = "handoff-hmac-secret"
	rcv := newReceiver(t, hookSecret)
	// The sales team works only on the day after tomorrow: closed now.
	hcm, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	open := time.Now().In(hcm).AddDate(0, 0, 2)
	hours := open.Weekday().String()[:3] + " 08:00-17:00"
	dir := t.TempDir()
	h := hubtest.Start(t, bins, dir, fmt.Sprintf(`
listen: { webhooks: "{{WEBHOOK}}", admin: "{{ADMIN}}" }
store: { embedded: { path: %s/sb.db } }
plugins:
  - name: test
    kind: channel
    path: %s
    config: { secret: %s, sink_url: %q }
  - name: brain
    kind: llm
    path: %s
rules: { dir: %s }
pipeline: { llm: brain, lease_ttl: 2s }
handoff: { webhook_url: %q, webhook_secret: %s }
`, dir, bins.Channel, secret, sink.URL(), bins.LLM, assignRules(t, "84900000000", hours), rcv.srv.URL, hookSecret))
	ctx := testkit.Context(t, time.Minute)
	if code, err := hubtest.PostTest(ctx, h.Webhooks, "test", secret, testplugins.WebhookMessage{ID: "o1", User: "nam",
		Text: "Cho tôi gặp nhân viên tư vấn"}); err != nil || code != 200 {
		t.Fatalf("webhook: %d %v", code, err)
	}
	hubtest.Eventually(t, 30*time.Second, "the answer to the customer", func() bool { n, _ := sink.Count(); return n >= 1 })
	msg := sink.Messages()[0].Text
	wantDate := open.Format("02/01/2006")
	if !strings.Contains(msg, "ngoài giờ làm việc") || !strings.Contains(msg, "08:00") || !strings.Contains(msg, wantDate) {
		t.Errorf("the customer was not told when a person answers (want 08:00 %s): %q", wantDate, msg)
	}
	hubtest.Eventually(t, 30*time.Second, "the team told the conversation waits", func() bool {
		ns := rcv.find("handoff", "minh")
		return len(ns) == 1 && strings.Contains(ns[0].N.Text, "waiting in the queue") && ns[0].Valid
	})
	if n := rcv.find("assignment", "lan"); len(n) != 0 {
		t.Errorf("assigned to an agent outside the team's hours: %+v", n)
	}
	if v := h.Metric("switchboard_assign_queued_total", "team", "sales"); v != 1 {
		t.Errorf("queued metric %v", v)
	}
	if n, _ := sink.Count(); n != 1 {
		t.Errorf("%d messages to the customer, want the one out-of-hours answer", n)
	}
}
