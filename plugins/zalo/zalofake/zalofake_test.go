package zalofake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSignatureIsPlainSHA256(t *testing.T) {
	body := []byte(`{"app_id":"360846524940903967","event_name":"user_send_text","timestamp":"154390853474"}`)
	sum := sha256.Sum256([]byte("360846524940903967" + string(body) + "154390853474" + "oa-secret"))
	want := "mac=" + hex.EncodeToString(sum[:])
	if got := Signature("360846524940903967", body, "154390853474", "oa-secret"); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestWebhookSigning(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	ev := s.Text(NewID(), "xin chào")
	for _, tt := range []struct {
		name string
		opts []SignOption
		want func(body []byte) string
	}{
		{"signed", nil, func(b []byte) string {
			return Signature(s.Config().AppID, b, ev.Timestamp, s.Config().OASecretKey)
		}},
		{"unsigned", []SignOption{Unsigned()}, func([]byte) string { return "" }},
		{"wrong secret", []SignOption{WrongSecret()}, func(b []byte) string {
			return Signature(s.Config().AppID, b, ev.Timestamp, "not-the-oa-secret-key")
		}},
		{"custom header", []SignOption{SignatureHeader("mac=abc")}, func([]byte) string { return "mac=abc" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := s.WebhookRequest(ev, tt.opts...)
			if got := req.Header.Get("X-ZEvent-Signature"); got != tt.want(req.Body) {
				t.Errorf("signature %q, want %q", got, tt.want(req.Body))
			}
		})
	}
	// Ids and the timestamp are JSON strings; ids exceed 2^53.
	var raw map[string]any
	if err := json.Unmarshal(s.Body(ev), &raw); err != nil {
		t.Fatal(err)
	}
	sender := raw["sender"].(map[string]any)["id"].(string)
	n, _ := new(big.Int).SetString(sender, 10)
	if n.Cmp(big.NewInt(1<<53)) <= 0 {
		t.Errorf("user id %s is not above 2^53", sender)
	}
	if _, ok := raw["timestamp"].(string); !ok {
		t.Error("timestamp is not a string")
	}
	if got := s.WebhookRequest(ev, Retry(3)).Header.Get("num_retry"); got != "3" {
		t.Errorf("num_retry %q", got)
	}
}

func TestPostWebhook(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	var got http.Header
	var body []byte
	rcv := http.NewServeMux()
	rcv.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		body, _ = io.ReadAll(r.Body)
	})
	srv := newServer(rcv)
	defer srv.Close()
	res, err := s.PostWebhook(context.Background(), srv.URL+"/hook", s.Follow(NewID(), "oa_profile"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got.Get("X-ZEvent-Signature") != s.SignBody(body) || !strings.Contains(string(body), `"event_name":"follow"`) {
		t.Errorf("posted %s with %v", body, got)
	}
}

type answer struct {
	Error   int             `json:"error"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func postCS(t *testing.T, s *Server, token, body string) (int, answer) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+PathSendCS, strings.NewReader(body))
	req.Header.Set("access_token", token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a answer
	_ = json.NewDecoder(res.Body).Decode(&a)
	return res.StatusCode, a
}

func TestSendEndpoint(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	access, _ := s.Tokens()
	user := NewID()
	good := `{"recipient":{"user_id":"` + user + `"},"message":{"text":"hi"}}`
	for _, tt := range []struct {
		name   string
		setup  func()
		token  string
		body   string
		status int
		code   int
	}{
		{"success", nil, access, good, 200, 0},
		{"no token", nil, "", good, 200, CodeTokenInvalid},
		{"unknown token", nil, "nope", good, 200, CodeTokenInvalid},
		{"bad user id", nil, access, `{"recipient":{"user_id":"abc"},"message":{"text":"hi"}}`, 200, CodeParamInvalid},
		{"no message", nil, access, `{"recipient":{"user_id":"` + user + `"},"message":{}}`, 200, CodeParamInvalid},
		{"not json", nil, access, `{`, 200, CodeParamInvalid},
		{"injected -230", func() { s.FailSends(1, CodeNoInteraction, "no interaction") }, access, good, 200, CodeNoInteraction},
		{"rate limited", func() { s.RateLimitSends(1) }, access, good, 200, CodeRateLimited},
		{"HTTP 502", func() { s.FailSendsHTTP(1, 502, nil) }, access, good, 502, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			status, a := postCS(t, s, tt.token, tt.body)
			if status != tt.status || a.Error != tt.code {
				t.Fatalf("HTTP %d error %d (%s), want HTTP %d error %d", status, a.Error, a.Message, tt.status, tt.code)
			}
			if tt.code == 0 && tt.status == 200 {
				var d struct {
					MessageID string `json:"message_id"`
					UserID    string `json:"user_id"`
				}
				if err := json.Unmarshal(a.Data, &d); err != nil || d.MessageID == "" || d.UserID != user || a.Message != "Success" {
					t.Errorf("success body %+v", a)
				}
			}
		})
	}
	if n := len(s.Accepted()); n != 1 {
		t.Errorf("%d accepted", n)
	}
	if n := len(s.Sends()); n != 9 {
		t.Errorf("%d sends recorded", n)
	}
	s.ExpireAccessTokens()
	if _, a := postCS(t, s, access, good); a.Error != CodeTokenInvalid {
		t.Errorf("expired token: %d", a.Error)
	}
}

func refresh(t *testing.T, s *Server, secret, token string) map[string]any {
	t.Helper()
	form := url.Values{"refresh_token": {token}, "app_id": {s.Config().AppID}, "grant_type": {"refresh_token"}}
	req, _ := http.NewRequest(http.MethodPost, s.URL()+PathAccessToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("secret_key", secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return m
}

func TestTokenRotation(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	_, r0 := s.Tokens()
	if m := refresh(t, s, "wrong", r0); m["error"] != float64(CodeInvalidSecretKey) {
		t.Fatalf("wrong secret: %v", m)
	}
	m := refresh(t, s, s.Config().AppSecret, r0)
	if m["expires_in"] != "90000" || m["refresh_token"] == r0 || m["access_token"] == "" {
		t.Fatalf("refresh: %v", m)
	}
	if m := refresh(t, s, s.Config().AppSecret, r0); m["error"] != float64(CodeInvalidRefreshToken) || m["error_description"] == "" {
		t.Fatalf("reused refresh token: %v", m)
	}
	if m2 := refresh(t, s, s.Config().AppSecret, m["refresh_token"].(string)); m2["access_token"] == nil {
		t.Fatalf("rotated token: %v", m2)
	}
	if uses := s.RefreshUses(); uses[r0] != 3 { // wrong secret, success, reuse
		t.Errorf("uses %v", uses)
	}
	s.FailTokenRefresh(1, CodeRefreshTokenExpired, "expired")
	_, cur := s.Tokens()
	if m := refresh(t, s, s.Config().AppSecret, cur); m["error"] != float64(CodeRefreshTokenExpired) {
		t.Fatalf("injected failure: %v", m)
	}
	if m := refresh(t, s, s.Config().AppSecret, cur); m["access_token"] == nil {
		t.Fatalf("an injected failure must not spend the token: %v", m)
	}
}

func TestReplyQuota(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := New(Config{Now: clock, EnforceReplyQuota: true, FreeReplies: 2, AccessTTL: 100 * time.Hour})
	defer s.Close()
	access, _ := s.Tokens()
	user := NewID()
	body := `{"recipient":{"user_id":"` + user + `"},"message":{"text":"hi"}}`
	if _, a := postCS(t, s, access, body); a.Error != CodeNoInteraction {
		t.Fatalf("before the user wrote: %d", a.Error)
	}
	s.WebhookRequest(s.Text(user, "hello"))
	for i := range 2 {
		if _, a := postCS(t, s, access, body); a.Error != 0 {
			t.Fatalf("reply %d: %d", i, a.Error)
		}
	}
	if _, a := postCS(t, s, access, body); a.Error != CodeOutOfQuota {
		t.Fatalf("3rd reply: %d", a.Error)
	}
	mu.Lock()
	now = now.Add(49 * time.Hour)
	mu.Unlock()
	if _, a := postCS(t, s, access, body); a.Error != CodeNoInteraction {
		t.Fatalf("after 49h: %d", a.Error)
	}
}

// TestConcurrentUse exercises recording and waiting from many goroutines
// (run with -race).
func TestConcurrentUse(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	access, _ := s.Tokens()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := s.WaitAccepted(ctx, 20); done <- err }()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			postCS(t, s, access, `{"recipient":{"user_id":"`+NewID()+`"},"message":{"text":"x"}}`)
			_ = s.Sends()
		}()
	}
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func newServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }
