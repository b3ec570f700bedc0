package zalo

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

var update = flag.Bool("update", false, "rewrite the golden .events.json files")

// goldenEvent is an sdk.Event in a form that reads well in a golden file.
type goldenEvent struct {
	ID              string            `json:"id"`
	Kind            string            `json:"kind"`
	ConversationKey string            `json:"conversation_key"`
	Contact         sdk.Identity      `json:"contact"`
	Direction       string            `json:"direction"`
	Author          string            `json:"author"`
	AgentID         string            `json:"agent_id,omitempty"`
	Message         *sdk.Message      `json:"message,omitempty"`
	Delivery        *goldenDelivery   `json:"delivery,omitempty"`
	Timestamp       string            `json:"timestamp"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

type goldenDelivery struct {
	MessageID string `json:"message_id"`
	Status    string `json:"status"`
}

func toGolden(evs []sdk.Event) []goldenEvent {
	out := []goldenEvent{}
	for _, e := range evs {
		g := goldenEvent{ID: e.ID, Kind: e.Kind.String(), ConversationKey: e.ConversationKey, Contact: e.Contact,
			Direction: map[sdk.Direction]string{sdk.DirectionInbound: "inbound", sdk.DirectionOutbound: "outbound"}[e.Direction],
			Author:    e.Author.String(), AgentID: e.AgentID, Message: e.Message,
			Timestamp: e.Timestamp.UTC().Format(time.RFC3339Nano), Metadata: e.Metadata}
		if e.Delivery != nil {
			g.Delivery = &goldenDelivery{MessageID: e.Delivery.MessageID, Status: e.Delivery.Status.String()}
		}
		out = append(out, g)
	}
	return out
}

// TestWebhookGolden runs every golden Zalo payload through HandleWebhook,
// signed as Zalo signs it, and compares the normalized events with the
// .events.json file beside it (go test -update rewrites them).
func TestWebhookGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/webhooks/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var inputs []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".events.json") {
			inputs = append(inputs, f)
		}
	}
	if len(inputs) < 20 {
		t.Fatalf("expected the golden payloads in testdata/webhooks, found %d", len(inputs))
	}
	fake := newFake(t, zalofake.Config{})
	clk := newClock(goldenTime.Add(time.Minute))
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			c := configure(t, fake, sdk.NewMemoryHost(nil), clk.Now, nil)
			res, err := c.HandleWebhook(ctxT(t), fake.WebhookRequestBody(body))
			if err != nil {
				t.Fatalf("HandleWebhook: %v", err)
			}
			if res.Response.Status != http.StatusOK {
				t.Fatalf("status %d: %s", res.Response.Status, res.Response.Body)
			}
			for _, e := range res.Events {
				if !bytes.Equal(e.Raw, body) {
					t.Errorf("event %s: Raw is not the request body", e.ID)
				}
			}
			got := mustJSON(t, toGolden(res.Events))
			goldenPath := strings.TrimSuffix(in, ".json") + ".events.json"
			if *update {
				if err := os.WriteFile(goldenPath, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(bytes.TrimSpace(want), bytes.TrimSpace(got)) {
				t.Errorf("events differ from %s:\n got: %s\nwant: %s", goldenPath, got, want)
			}

			// A redelivery (Zalo retries with num_retry) yields the same ids.
			again, err := c.HandleWebhook(ctxT(t), fake.WebhookRequestBody(body, zalofake.Retry(1)))
			if err != nil || again.Response.Status != http.StatusOK || len(again.Events) != len(res.Events) {
				t.Fatalf("redelivery: %v %+v", err, again)
			}
			for i := range again.Events {
				if again.Events[i].ID != res.Events[i].ID {
					t.Errorf("redelivery changed event id %q → %q", res.Events[i].ID, again.Events[i].ID)
				}
				if again.Events[i].Metadata["num_retry"] != "1" {
					t.Errorf("num_retry not carried: %v", again.Events[i].Metadata)
				}
			}
		})
	}
}

// TestWebhookRefused covers the requests that must get a 4xx and no events.
func TestWebhookRefused(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	now := goldenTime.Add(time.Minute)
	body, err := os.ReadFile("testdata/webhooks/user_send_text.json")
	if err != nil {
		t.Fatal(err)
	}
	signed := func(b []byte) *sdk.WebhookRequest { return fake.WebhookRequestBody(b) }
	retimed := func(ts time.Time) []byte {
		return bytes.Replace(body, []byte(`"timestamp":"1763740800000"`), []byte(`"timestamp":"`+itoa(ts.UnixMilli())+`"`), 1)
	}
	otherApp := bytes.Replace(body, []byte(goldenAppID), []byte("111111111111111111"), 1)
	tampered := fake.WebhookRequestBody(body)
	tampered.Body = bytes.Replace(body, []byte("còn hàng"), []byte("hết hàng"), 1)
	getReq := fake.WebhookRequestBody(body)
	getReq.Method = http.MethodGet

	tests := []struct {
		name   string
		req    *sdk.WebhookRequest
		status int
	}{
		{"malformed json", signed([]byte(`{"app_id":"1","event_name":`)), http.StatusBadRequest},
		{"not an object", signed([]byte(`[1,2,3]`)), http.StatusBadRequest},
		{"empty body", signed(nil), http.StatusBadRequest},
		{"no event_name", signed([]byte(`{"app_id":"360846524940903967","timestamp":"1763740800000"}`)), http.StatusBadRequest},
		{"id of the wrong JSON type", signed(bytes.Replace(body, []byte(`"sender":{"id":"2468458835296197922"}`), []byte(`"sender":{"id":{"x":1}}`), 1)), http.StatusBadRequest},
		{"bad timestamp", signed(bytes.Replace(body, []byte(`"1763740800000"`), []byte(`"yesterday"`), 1)), http.StatusBadRequest},
		{"unsigned", fake.WebhookRequestBody(body, zalofake.Unsigned()), http.StatusUnauthorized},
		{"wrong secret", fake.WebhookRequestBody(body, zalofake.WrongSecret()), http.StatusUnauthorized},
		{"garbage signature", fake.WebhookRequestBody(body, zalofake.SignatureHeader("mac=zzzz")), http.StatusUnauthorized},
		{"hmac instead of plain sha256", fake.WebhookRequestBody(body, zalofake.SignatureHeader(hmacSig(body))), http.StatusUnauthorized},
		{"tampered body", tampered, http.StatusUnauthorized},
		{"other app", signed(otherApp), http.StatusForbidden},
		{"stale replay (older than 7 days)", signed(retimed(now.Add(-7*24*time.Hour - time.Minute))), http.StatusForbidden},
		{"from the future", signed(retimed(now.Add(time.Hour))), http.StatusForbidden},
		{"from the far future (past year 9999)", signed(bytes.Replace(body, []byte(`"1763740800000"`), []byte(`"999999999999999999"`), 1)), http.StatusForbidden},
		{"from before year 0", signed(bytes.Replace(body, []byte(`"1763740800000"`), []byte(`"-999999999999999999"`), 1)), http.StatusBadRequest},
		{"GET", getReq, http.StatusMethodNotAllowed},
	}
	c := configure(t, fake, sdk.NewMemoryHost(nil), func() time.Time { return now }, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.HandleWebhook(ctxT(t), tt.req)
			if err != nil {
				t.Fatalf("HandleWebhook returned an error, want a %d answer: %v", tt.status, err)
			}
			if res.Response.Status != tt.status {
				t.Errorf("status %d, want %d (%s)", res.Response.Status, tt.status, res.Response.Body)
			}
			if len(res.Events) != 0 {
				t.Errorf("refused request produced %d events", len(res.Events))
			}
		})
	}
}

// TestWebhookSignatureVariants: the verifier accepts the spellings Zalo's
// senders are seen to use (prefix optional, hex in either case) and a
// shorter max age configured by the operator.
func TestWebhookSignatureVariants(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	body, _ := os.ReadFile("testdata/webhooks/user_send_text.json")
	sig := zalofake.Signature(goldenAppID, body, "1763740800000", goldenSecret)
	now := goldenTime.Add(2 * time.Hour)
	c := configure(t, fake, sdk.NewMemoryHost(nil), func() time.Time { return now }, nil)
	short := configure(t, fake, sdk.NewMemoryHost(nil), func() time.Time { return now }, map[string]any{"webhook_max_age": "1h"})
	for _, tt := range []struct {
		name   string
		c      *Connector
		header string
		status int
	}{
		{"canonical", c, sig, 200},
		{"no prefix", c, strings.TrimPrefix(sig, "mac="), 200},
		{"upper-case hex", c, "mac=" + strings.ToUpper(strings.TrimPrefix(sig, "mac=")), 200},
		{"spaces", c, "mac= " + strings.TrimPrefix(sig, "mac=") + " ", 200},
		{"max age 1h refuses a 2h old event", short, sig, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := fake.WebhookRequestBody(body, zalofake.SignatureHeader(tt.header))
			// Header names may arrive in any case when not canonicalized.
			req.Header = http.Header{"x-zevent-signature": {tt.header}}
			res, err := tt.c.HandleWebhook(ctxT(t), req)
			if err != nil || res.Response.Status != tt.status {
				t.Fatalf("got %v %+v, want %d", err, res, tt.status)
			}
		})
	}
}

// TestWebhookIDsStayStrings: ids above 2^53 sent as bare JSON numbers keep
// every digit.
func TestWebhookIDsStayStrings(t *testing.T) {
	body, _ := os.ReadFile("testdata/webhooks/user_send_text_numeric_ids.json")
	_, evs, err := ParseWebhook(body, goldenOAID, "")
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %v", err, evs)
	}
	if evs[0].Contact.UserID != goldenUser {
		t.Errorf("user id %q, want %q (a float64 would give 2468458835296197600)", evs[0].Contact.UserID, goldenUser)
	}
	if evs[0].Metadata["app_id"] != goldenAppID {
		t.Errorf("app id %q", evs[0].Metadata["app_id"])
	}
}

func TestConfigRefused(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	for _, tt := range []struct {
		name string
		cfg  string
	}{
		{"not json", `{`},
		{"unknown key", string(fake.PluginConfig(map[string]any{"oa_secret": "x"}))},
		{"no oa_secret_key", string(fake.PluginConfig(map[string]any{"oa_secret_key": ""}))},
		{"non-decimal oa_id", string(fake.PluginConfig(map[string]any{"oa_id": "abc"}))},
		{"no tokens", string(fake.PluginConfig(map[string]any{"access_token": "", "refresh_token": ""}))},
		{"refresh without app secret", string(fake.PluginConfig(map[string]any{"app_secret": ""}))},
		{"bad base_url", string(fake.PluginConfig(map[string]any{"base_url": "ftp://x"}))},
		{"bad duration", string(fake.PluginConfig(map[string]any{"token_lease": "soon"}))},
		{"lease shorter than http timeout", string(fake.PluginConfig(map[string]any{"token_lease": "5s", "http_timeout": "10s"}))},
		{"bad unknown_contact", string(fake.PluginConfig(map[string]any{"reply_allowance": map[string]any{"unknown_contact": "maybe"}}))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Configure(ctxT(t), sdk.ConfigureRequest{Config: []byte(tt.cfg), Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))})
			if sdk.CodeOf(err) != sdk.CodeInvalid {
				t.Fatalf("got %v, want an Invalid error", err)
			}
			for _, secret := range []string{fake.Config().AppSecret, fake.Config().OASecretKey} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks a secret: %v", err)
				}
			}
		})
	}
	// base_url as an object sets each host.
	cfg, err := parseConfig(fake.PluginConfig(map[string]any{"base_url": map[string]string{"openapi": "http://a.test/", "oauth": "http://b.test"}}))
	if err != nil || cfg.BaseURL.OpenAPI != "http://a.test" || cfg.BaseURL.OAuth != "http://b.test" {
		t.Fatalf("%v %+v", err, cfg)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// hmacSig is what a wrong implementation would send: an HMAC keyed with the
// OA secret instead of Zalo's plain hash.
func hmacSig(body []byte) string {
	m := hmac.New(sha256.New, []byte(goldenSecret))
	m.Write([]byte(goldenAppID))
	m.Write(body)
	m.Write([]byte("1763740800000"))
	return "mac=" + hex.EncodeToString(m.Sum(nil))
}

func TestConfigLenient(t *testing.T) {
	// Ids unquoted in YAML arrive as JSON numbers; days as "7d".
	cfg, err := parseConfig([]byte(`{"app_id":360846524940903967,"oa_id":388613280878808645,"oa_secret_key":"s",
		"access_token":"a","webhook_max_age":"3d","reply_allowance":{"window":"48h"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AppID != goldenAppID || cfg.OAID != goldenOAID || cfg.WebhookMaxAge.D() != 72*time.Hour {
		t.Errorf("%+v", cfg)
	}
	if cfg.BaseURL.OpenAPI != DefaultOpenAPIURL || cfg.BaseURL.OAuth != DefaultOAuthURL || !*cfg.ReplyAllowance.Enforce || cfg.ReplyAllowance.FreeReplies != 8 {
		t.Errorf("defaults: %+v", cfg)
	}
}
