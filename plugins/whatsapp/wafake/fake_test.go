package wafake

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func post(t *testing.T, f *Fake, token, path, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("answer is not JSON: %s", raw)
	}
	return resp.StatusCode, m, resp.Header
}

const textBody = `{"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"text","text":{"preview_url":false,"body":"Hello"}}`

func messagesPath(f *Fake) string { return "/v25.0/" + f.PhoneNumberID() + "/messages" }

// TestErrorEnvelope: error bodies have Graph's exact shape (golden).
func TestErrorEnvelope(t *testing.T) {
	got := ErrReengagement().Body("AbCdEf123")
	want, err := os.ReadFile("testdata/error_131047.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(want), got) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestMessagesEndpoint(t *testing.T) {
	f := Start(t, Options{})
	tests := []struct {
		name, token, body string
		setup             func()
		status, code      int
	}{
		{"no token", "", textBody, nil, 401, 190},
		{"wrong token", "nope", textBody, nil, 401, 190},
		{"outside the window", DefaultAccessToken, textBody, nil, 400, 131047},
		{"inside the window", DefaultAccessToken, textBody, func() { f.OpenWindow("16505551234", time.Time{}) }, 200, 0},
		{"template outside any window", DefaultAccessToken, `{"messaging_product":"whatsapp","to":"84900000000","type":"template","template":{"name":"hello_world","language":{"code":"en_US"}}}`, nil, 200, 0},
		{"bad JSON", DefaultAccessToken, `{`, nil, 400, 100},
		{"no messaging_product", DefaultAccessToken, `{"to":"1","type":"text","text":{"body":"x"}}`, nil, 400, 100},
		{"no recipient", DefaultAccessToken, `{"messaging_product":"whatsapp","type":"text","text":{"body":"x"}}`, nil, 400, 100},
		{"injected failure", DefaultAccessToken, textBody, func() { f.FailNext(ErrPairRateLimit()) }, 400, 131056},
		{"expired token", DefaultAccessToken, textBody, func() { f.ExpireToken() }, 401, 190},
		{"rotated token", "new-token", textBody, func() { f.SetAccessToken("new-token") }, 200, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			status, m, hdr := post(t, f, tc.token, messagesPath(f), tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, m)
			}
			if tc.status == 200 {
				msgs, _ := m["messages"].([]any)
				contacts, _ := m["contacts"].([]any)
				if m["messaging_product"] != "whatsapp" || len(msgs) != 1 || len(contacts) != 1 ||
					!strings.HasPrefix(msgs[0].(map[string]any)["id"].(string), "wamid.HBgL") {
					t.Fatalf("success body %v", m)
				}
				return
			}
			e, _ := m["error"].(map[string]any)
			if e == nil || int(e["code"].(float64)) != tc.code || e["fbtrace_id"] == "" || e["type"] == "" || e["message"] == "" {
				t.Fatalf("error body %v, want code %d", m, tc.code)
			}
			if status == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if got := len(f.Requests()); got != len(tests) {
		t.Errorf("recorded %d requests, want %d", got, len(tests))
	}
}

func TestThroughputAndAsyncWindow(t *testing.T) {
	now := time.Unix(1700000000, 0)
	f := Start(t, Options{ThroughputMPS: 2, AsyncWindowErrors: true, Now: func() time.Time { return now }})
	var codes []int
	for range 3 {
		status, _, _ := post(t, f, DefaultAccessToken, messagesPath(f), textBody)
		codes = append(codes, status)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 400 {
		t.Fatalf("statuses %v, want 200 200 400", codes)
	}
	sent := f.Sent()
	if len(sent) != 2 || sent[0].AsyncFail == nil || sent[0].AsyncFail.Code != 131047 {
		t.Fatalf("async window failure not recorded: %+v", sent)
	}
	body := f.Statuses(StatusOf(sent[0], "failed"))
	if !bytes.Contains(body, []byte(`"code":131047`)) || !bytes.Contains(body, []byte(`"status":"failed"`)) {
		t.Fatalf("failed status webhook: %s", body)
	}
}

func TestWaitSentConcurrent(t *testing.T) {
	f := Start(t, Options{IgnoreWindow: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// No t.Fatal off the test goroutine: report through errs.
			req, _ := http.NewRequest(http.MethodPost, f.URL+messagesPath(f), strings.NewReader(textBody))
			req.Header.Set("Authorization", "Bearer "+DefaultAccessToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
		}()
	}
	got, err := f.WaitSent(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ids := map[string]bool{}
	for _, s := range got {
		ids[s.ID] = true
	}
	if len(ids) != 8 {
		t.Fatalf("%d distinct ids for 8 messages", len(ids))
	}
	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := f.WaitSent(short, 9); err == nil {
		t.Fatal("WaitSent returned without the messages")
	}
}

// TestWebhookHelpers: signed requests carry both of Meta's signature
// headers; Merge batches entries; PostWebhook and VerifyWebhook talk HTTP.
func TestWebhookHelpers(t *testing.T) {
	f := Start(t, Options{})
	body := Merge(f.Inbound(Text("1", "a")), f.Echoes(Text("2", "b")), f.AppStateSync(ContactSync{Phone: "3", Action: "remove"}))
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || len(env.Entry) != 3 {
		t.Fatalf("merged: %v %s", err, body)
	}
	req := f.WebhookRequest(body)
	if req.Header.Get("X-Hub-Signature-256") != Sign(DefaultAppSecret, body) || !strings.HasPrefix(req.Header.Get("X-Hub-Signature"), "sha1=") {
		t.Fatalf("headers %v", req.Header)
	}
	if f.ForgedWebhookRequest(body).Header.Get("X-Hub-Signature-256") == req.Header.Get("X-Hub-Signature-256") {
		t.Fatal("forged request has the right signature")
	}
	if f.UnsignedWebhookRequest(body).Header.Get("X-Hub-Signature-256") != "" {
		t.Fatal("unsigned request is signed")
	}

	var mu sync.Mutex
	var gotSig, gotQuery string
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodGet {
			gotQuery = r.URL.RawQuery
			_, _ = io.WriteString(w, r.URL.Query().Get("hub.challenge"))
			return
		}
		b, _ := io.ReadAll(r.Body)
		if Sign(DefaultAppSecret, b) == r.Header.Get("X-Hub-Signature-256") {
			gotSig = "ok"
		}
	}))
	defer hub.Close()
	ctx := context.Background()
	resp, err := f.PostWebhook(ctx, hub.URL+"/webhooks/whatsapp", body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = f.VerifyWebhook(ctx, hub.URL+"/webhooks/whatsapp", "42")
	if err != nil {
		t.Fatal(err)
	}
	echoed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if gotSig != "ok" || string(echoed) != "42" || !strings.Contains(gotQuery, "hub.verify_token="+DefaultVerifyToken) {
		t.Fatalf("sig %q, echoed %q, query %q", gotSig, echoed, gotQuery)
	}
}
