package whatsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// eventView is the golden form of an event: readable enums and raw JSON.
type eventView struct {
	ID              string            `json:"id"`
	Kind            string            `json:"kind"`
	ConversationKey string            `json:"conversation_key"`
	Contact         sdk.Identity      `json:"contact"`
	Direction       string            `json:"direction"`
	Author          string            `json:"author"`
	AgentID         string            `json:"agent_id,omitempty"`
	Message         *sdk.Message      `json:"message,omitempty"`
	Delivery        *deliveryView     `json:"delivery,omitempty"`
	Timestamp       string            `json:"timestamp,omitempty"`
	Raw             json.RawMessage   `json:"raw"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

type deliveryView struct {
	MessageID    string `json:"message_id"`
	Status       string `json:"status"`
	ErrorCode    string `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
}

type webhookGolden struct {
	Status int         `json:"status"`
	Events []eventView `json:"events"`
	// OpenWindows lists the contacts whose 24-hour window is open after
	// the webhook (only customer messages open one).
	OpenWindows []string `json:"open_windows"`
}

var directionNames = map[sdk.Direction]string{sdk.DirectionUnknown: "unknown", sdk.DirectionInbound: "inbound", sdk.DirectionOutbound: "outbound"}

func viewOf(e sdk.Event) eventView {
	v := eventView{ID: e.ID, Kind: e.Kind.String(), ConversationKey: e.ConversationKey, Contact: e.Contact,
		Direction: directionNames[e.Direction], Author: e.Author.String(), AgentID: e.AgentID, Message: e.Message,
		Raw: json.RawMessage(e.Raw), Metadata: e.Metadata}
	if !e.Timestamp.IsZero() {
		v.Timestamp = e.Timestamp.Format(time.RFC3339)
	}
	if d := e.Delivery; d != nil {
		v.Delivery = &deliveryView{MessageID: d.MessageID, Status: d.Status.String(), ErrorCode: d.ErrorCode, ErrorMessage: d.ErrorMessage}
	}
	return v
}

// TestWebhookGolden runs every sample notification in testdata/webhooks
// through HandleWebhook, signed as Meta signs, and compares the answer, the
// events and the windows opened with the reviewed golden file.
func TestWebhookGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/webhooks/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample webhooks: %v", err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, ".golden.json") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, wafake.Options{}, nil)
			res := e.webhook(e.fake.WebhookRequest(body))
			got := webhookGolden{Status: res.Response.Status, Events: []eventView{}, OpenWindows: []string{}}
			users := map[string]bool{}
			for _, ev := range res.Events {
				got.Events = append(got.Events, viewOf(ev))
				users[ev.Contact.UserID] = true
			}
			for u := range users {
				if e.windowOpen(u) {
					got.OpenWindows = append(got.OpenWindows, u)
				}
			}
			sort.Strings(got.OpenWindows)
			compareGolden(t, strings.TrimSuffix(file, ".json")+".golden.json", got)
		})
	}
}

func compareGolden(t *testing.T, path string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it, then review it)", err)
	}
	if !bytes.Equal(want, b) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s", path, b)
	}
}

// TestSignatureKnownAnswer checks Sign and the fake against a value computed
// independently: openssl dgst -sha256 -hmac wafake-app-secret webhooks/text.json
func TestSignatureKnownAnswer(t *testing.T) {
	body, err := os.ReadFile("testdata/webhooks/text.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/text.json.x-hub-signature-256")
	if err != nil {
		t.Fatal(err)
	}
	w := strings.TrimSpace(string(want))
	if got := Sign(wafake.DefaultAppSecret, body); got != w {
		t.Errorf("Sign = %s, want %s", got, w)
	}
	if got := wafake.Sign(wafake.DefaultAppSecret, body); got != w {
		t.Errorf("wafake.Sign = %s, want %s", got, w)
	}
	if err := verifySignature(wafake.DefaultAppSecret, w, body); err != nil {
		t.Errorf("verifySignature: %v", err)
	}
}

// TestWebhookAuthentication: a request that is not signed with the app
// secret over these exact bytes gets a 4xx and no events.
func TestWebhookAuthentication(t *testing.T) {
	e := newEnv(t, wafake.Options{}, nil)
	body := e.fake.Inbound(wafake.Text("16505551234", "hello"))
	good := e.fake.Sign(body)
	tampered := bytes.Replace(body, []byte("hello"), []byte("hellO"), 1)
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		status int
	}{
		{"valid", http.Header{"X-Hub-Signature-256": {good}}, body, 200},
		{"valid, lower-case header name", http.Header{"x-hub-signature-256": {good}}, body, 200},
		{"valid, upper-case algorithm", http.Header{"X-Hub-Signature-256": {"SHA256=" + strings.TrimPrefix(good, "sha256=")}}, body, 200},
		{"unsigned", http.Header{}, body, 401},
		{"only the legacy sha1 header", http.Header{"X-Hub-Signature": {"sha1=" + strings.Repeat("0", 40)}}, body, 401},
		{"wrong secret", e.fake.ForgedWebhookRequest(body).Header, body, 403},
		{"tampered body", http.Header{"X-Hub-Signature-256": {good}}, tampered, 403},
		{"no prefix", http.Header{"X-Hub-Signature-256": {strings.TrimPrefix(good, "sha256=")}}, body, 403},
		{"sha1 prefix", http.Header{"X-Hub-Signature-256": {"sha1=" + strings.TrimPrefix(good, "sha256=")}}, body, 403},
		{"not hex", http.Header{"X-Hub-Signature-256": {"sha256=" + strings.Repeat("z", 64)}}, body, 403},
		{"truncated", http.Header{"X-Hub-Signature-256": {good[:len(good)-2]}}, body, 403},
		{"empty body signed", http.Header{"X-Hub-Signature-256": {e.fake.Sign(nil)}}, nil, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &sdk.WebhookRequest{Method: "POST", Path: wafake.WebhookPath, Header: tc.header, Body: tc.body}
			res := e.webhook(req)
			if res.Response.Status != tc.status {
				t.Fatalf("status %d, want %d", res.Response.Status, tc.status)
			}
			if tc.status != 200 && len(res.Events) != 0 {
				t.Fatalf("refused request produced %d events", len(res.Events))
			}
			if tc.status == 200 && len(res.Events) != 1 {
				t.Fatalf("accepted request produced %d events, want 1", len(res.Events))
			}
		})
	}
}

// TestWebhookReplay: Meta redelivers; the same notification yields the
// same event IDs, so the hub's dedupe drops the second copy.
func TestWebhookReplay(t *testing.T) {
	e := newEnv(t, wafake.Options{}, nil)
	body := wafake.Merge(
		e.fake.Inbound(wafake.Text("16505551234", "one"), wafake.Image("16505551234", "123", "two")),
		e.fake.Statuses(wafake.Status{MessageID: "wamid.X", Status: "delivered", Recipient: "16505551234"}),
		e.fake.Echoes(wafake.Text("16505551234", "agent here")),
		e.fake.AppStateSync(wafake.ContactSync{Phone: "16505551234", FullName: "A B", Action: "add"}),
	)
	first := e.webhook(e.fake.WebhookRequest(body))
	second := e.webhook(e.fake.WebhookRequest(body))
	if len(first.Events) != 5 || len(second.Events) != 5 {
		t.Fatalf("events: %d then %d, want 5 and 5", len(first.Events), len(second.Events))
	}
	seen := map[string]bool{}
	for i := range first.Events {
		if first.Events[i].ID != second.Events[i].ID {
			t.Errorf("event %d: id %q then %q", i, first.Events[i].ID, second.Events[i].ID)
		}
		if seen[first.Events[i].ID] {
			t.Errorf("duplicate id %q inside one notification", first.Events[i].ID)
		}
		seen[first.Events[i].ID] = true
	}
}

func TestVerificationHandshake(t *testing.T) {
	e := newEnv(t, wafake.Options{}, nil)
	tests := []struct {
		name, mode, token, challenge string
		status                       int
	}{
		{"valid", "subscribe", wafake.DefaultVerifyToken, "1158201444", 200},
		{"wrong token", "subscribe", "guess", "1158201444", 403},
		{"empty token", "subscribe", "", "1158201444", 403},
		{"wrong mode", "unsubscribe", wafake.DefaultVerifyToken, "1158201444", 403},
		{"no challenge", "subscribe", wafake.DefaultVerifyToken, "", 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.webhook(e.fake.VerificationRequest(tc.mode, tc.token, tc.challenge))
			if res.Response.Status != tc.status {
				t.Fatalf("status %d, want %d", res.Response.Status, tc.status)
			}
			if len(res.Events) != 0 {
				t.Fatal("a handshake produced events")
			}
			if tc.status == 200 {
				if string(res.Response.Body) != tc.challenge {
					t.Errorf("body %q, want the challenge %q", res.Response.Body, tc.challenge)
				}
				if ct := res.Response.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("Content-Type %q, want text/plain", ct)
				}
			} else if bytes.Contains(res.Response.Body, []byte(tc.challenge)) && tc.challenge != "" {
				t.Error("a refused handshake echoed the challenge")
			}
		})
	}
	t.Run("no verify_token configured", func(t *testing.T) {
		e := newEnv(t, wafake.Options{}, map[string]any{"verify_token": nil})
		if res := e.webhook(e.fake.VerificationRequest("subscribe", "", "42")); res.Response.Status != 403 {
			t.Fatalf("status %d, want 403", res.Response.Status)
		}
	})
	t.Run("other methods", func(t *testing.T) {
		res := e.webhook(&sdk.WebhookRequest{Method: "PUT", Body: []byte("{}")})
		if res.Response.Status != http.StatusMethodNotAllowed {
			t.Fatalf("status %d, want 405", res.Response.Status)
		}
	})
}

func TestNotConfigured(t *testing.T) {
	c := New()
	_, err := c.HandleWebhook(context.Background(), &sdk.WebhookRequest{Method: "POST"})
	if sdk.CodeOf(err) != sdk.CodeRetryable {
		t.Fatalf("webhook before Configure: %v, want retryable", err)
	}
	_, err = c.Send(context.Background(), &sdk.Outbound{Text: "x"})
	if sdk.CodeOf(err) != sdk.CodeRetryable {
		t.Fatalf("send before Configure: %v, want retryable", err)
	}
}

// TestWindowTracking: only a customer's own message opens (renews) the
// 24-hour window; echoes, statuses, history and system messages do not; it
// closes 24 hours after the last customer message; an older message
// redelivered late does not move it back.
func TestWindowTracking(t *testing.T) {
	const user = "16505551234"
	e := newEnv(t, wafake.Options{}, nil)
	notOpening := map[string][]byte{
		"echo":    e.fake.Echoes(wafake.Text(user, "from the phone app")),
		"status":  e.fake.Statuses(wafake.Status{MessageID: "wamid.A", Status: "read", Recipient: user}),
		"history": e.fake.History(wafake.HistoryChunk{Threads: []wafake.HistoryThread{{User: user, Messages: []wafake.Message{wafake.Text("", "old")}}}}),
		"sync":    e.fake.AppStateSync(wafake.ContactSync{Phone: user, FullName: "A", Action: "add"}),
		"group":   e.fake.Inbound(wafake.Message{From: user, Type: "text", Content: map[string]any{"body": "g"}, GroupID: "G1"}),
	}
	for name, body := range notOpening {
		e.webhook(e.fake.WebhookRequest(body))
		if e.windowOpen(user) {
			t.Fatalf("%s opened the window", name)
		}
	}
	e.inbound(user, "hi")
	if !e.windowOpen(user) {
		t.Fatal("a customer message did not open the window")
	}
	e.clock.Advance(23 * time.Hour)
	old := wafake.Text(user, "late redelivery of an old message")
	old.Timestamp = goldenNow.Add(-time.Hour)
	e.webhook(e.fake.WebhookRequest(e.fake.Inbound(old)))
	e.clock.Advance(time.Hour + time.Second)
	if e.windowOpen(user) {
		t.Fatal("window still open 24h after the last message (an older message moved it?)")
	}
	e.inbound(user, "back again")
	if !e.windowOpen(user) {
		t.Fatal("a new message did not reopen the window")
	}
	if e.windowOpen("84900000000") {
		t.Fatal("a stranger's window is open")
	}
}
