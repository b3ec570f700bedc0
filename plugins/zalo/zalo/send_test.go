package zalo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

func TestBuildPayload(t *testing.T) {
	const u = goldenUser
	tests := []struct {
		name string
		msg  sdk.Outbound
		want string // the exact v3 body; "" when invalid
	}{
		{"text", sdk.Outbound{Type: "text", Text: "Dạ em chào anh"},
			`{"recipient":{"user_id":"2468458835296197922"},"message":{"text":"Dạ em chào anh"}}`},
		{"text without a type", sdk.Outbound{Text: "hi"},
			`{"recipient":{"user_id":"2468458835296197922"},"message":{"text":"hi"}}`},
		{"quote reply", sdk.Outbound{Type: "text", Text: "vâng", ReplyTo: "96d3cdf3af150460909"},
			`{"recipient":{"user_id":"2468458835296197922"},"message":{"text":"vâng","quote_message_id":"96d3cdf3af150460909"}}`},
		{"image by url", sdk.Outbound{Type: "image", Text: "mẫu mới", Attachments: []sdk.Attachment{{Type: "image", URL: "https://cdn.example.vn/a.jpg"}}},
			`{"recipient":{"user_id":"2468458835296197922"},"message":{"text":"mẫu mới","attachment":{"type":"template","payload":{"template_type":"media","elements":[{"media_type":"image","url":"https://cdn.example.vn/a.jpg"}]}}}}`},
		{"image by upload id", sdk.Outbound{Type: "image", Attachments: []sdk.Attachment{{Type: "image", MediaID: "4402c73f7e7a9724ce6b", Caption: "cap"}}},
			`{"recipient":{"user_id":"2468458835296197922"},"message":{"text":"cap","attachment":{"type":"template","payload":{"template_type":"media","elements":[{"media_type":"image","attachment_id":"4402c73f7e7a9724ce6b"}]}}}}`},
		{"file by token", sdk.Outbound{Type: "file", Attachments: []sdk.Attachment{{Type: "file", MediaID: "tok123"}}},
			`{"recipient":{"user_id":"2468458835296197922"},"message":{"attachment":{"type":"file","payload":{"token":"tok123"}}}}`},
		{"buttons", sdk.Outbound{Type: "interactive", Text: "Anh cần gì ạ?", Buttons: []sdk.Button{
			{Title: "Xem giá", URL: "https://shop.example.vn/gia"}, {Title: "Gọi shop", URL: "tel:0912345678"}, {ID: "consult", Title: "Tư vấn"}}},
			`{"recipient":{"user_id":"2468458835296197922"},"message":{"text":"Anh cần gì ạ?","attachment":{"type":"template","payload":{"buttons":[` +
				`{"title":"Xem giá","type":"oa.open.url","payload":{"url":"https://shop.example.vn/gia"}},` +
				`{"title":"Gọi shop","type":"oa.open.phone","payload":{"phone_code":"0912345678"}},` +
				`{"title":"Tư vấn","type":"oa.query.show","payload":"consult"}]}}}}`},
		{"text with buttons becomes interactive", sdk.Outbound{Type: "text", Text: "?", Buttons: []sdk.Button{{Title: "OK", Payload: "#ok"}}},
			`{"recipient":{"user_id":"2468458835296197922"},"message":{"text":"?","attachment":{"type":"template","payload":{"buttons":[{"title":"OK","type":"oa.query.show","payload":"#ok"}]}}}}`},
		{"link list", sdk.Outbound{Type: "interactive", Attachments: []sdk.Attachment{
			{Type: "link", URL: "https://shop.example.vn/p/1", Name: "Áo khoác", Caption: "450.000đ", ThumbnailURL: "https://shop.example.vn/p/1.jpg"},
			{Type: "link", URL: "https://shop.example.vn/p/2"}}},
			`{"recipient":{"user_id":"2468458835296197922"},"message":{"attachment":{"type":"template","payload":{"template_type":"list","elements":[` +
				`{"title":"Áo khoác","subtitle":"450.000đ","image_url":"https://shop.example.vn/p/1.jpg","default_action":{"type":"oa.open.url","url":"https://shop.example.vn/p/1"}},` +
				`{"title":"https://shop.example.vn/p/2","default_action":{"type":"oa.open.url","url":"https://shop.example.vn/p/2"}}]}}}}`},
		{"empty text", sdk.Outbound{Type: "text", Text: "  "}, ""},
		{"image without media", sdk.Outbound{Type: "image"}, ""},
		{"file by url only", sdk.Outbound{Type: "file", Attachments: []sdk.Attachment{{Type: "file", URL: "https://x/y.pdf"}}}, ""},
		{"interactive without buttons or links", sdk.Outbound{Type: "interactive", Text: "x"}, ""},
		{"template", sdk.Outbound{Type: "template", Template: &sdk.Template{Name: "order"}}, ""},
		{"unknown type", sdk.Outbound{Type: "carousel", Text: "x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := buildPayload(u, &tt.msg)
			if tt.want == "" {
				if sdk.CodeOf(err) != sdk.CodeInvalid {
					t.Fatalf("got %s / %v, want an Invalid error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("body\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestSendRecipient(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	c := configure(t, fake, sdk.NewMemoryHost(nil), nil, nil)
	for _, tt := range []struct {
		name string
		msg  sdk.Outbound
		ok   bool
	}{
		{"user id", sdk.Outbound{To: sdk.Identity{Channel: "zalo", UserID: goldenUser}, Text: "a"}, true},
		{"conversation key", sdk.Outbound{ConversationKey: ConversationKey(goldenOAID, goldenUser), Text: "b"}, true},
		{"other OA's conversation", sdk.Outbound{ConversationKey: ConversationKey("1", goldenUser), Text: "c"}, false},
		{"other channel", sdk.Outbound{To: sdk.Identity{Channel: "whatsapp", UserID: goldenUser}, Text: "d"}, false},
		{"phone, not a user id", sdk.Outbound{To: sdk.Identity{Phone: "+84912345678"}, Text: "e"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Send(ctxT(t), &tt.msg)
			if tt.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok && sdk.CodeOf(err) != sdk.CodeInvalid {
				t.Errorf("got %v, want Invalid", err)
			}
		})
	}
}

// TestSendAndEcho: a send reaches the fake with the access token, its echo
// is dropped (the hub has it as the bot's message) while a person's message
// from the OA manager is an agent's.
func TestSendAndEcho(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	c := configure(t, fake, sdk.NewMemoryHost(nil), nil, nil)
	user := zalofake.NewID()
	userWrote(t, c, fake, user)
	res, err := c.Send(ctxT(t), &sdk.Outbound{IdempotencyKey: "in-1", To: sdk.Identity{Channel: "zalo", UserID: user}, Type: "text", Text: "Dạ shop còn ạ"})
	if err != nil {
		t.Fatal(err)
	}
	sent := fake.Accepted()
	if len(sent) != 1 || sent[0].MessageID != res.ProviderMessageID || sent[0].UserID != user || sent[0].Text != "Dạ shop còn ạ" {
		t.Fatalf("fake got %+v, send result %+v", sent, res)
	}
	access, _ := fake.Tokens()
	if sent[0].AccessToken != access {
		t.Error("send did not carry the OA access token in the access_token header")
	}

	echo, err := c.HandleWebhook(ctxT(t), fake.WebhookRequest(fake.OAEcho(sent[0])))
	if err != nil || echo.Response.Status != 200 {
		t.Fatalf("%v %+v", err, echo)
	}
	if len(echo.Events) != 0 {
		t.Errorf("the echo of our own send became %d events: %+v", len(echo.Events), echo.Events[0])
	}

	human, err := c.HandleWebhook(ctxT(t), fake.WebhookRequest(fake.OAText(user, "Em là Lan, em hỗ trợ anh nhé", "5187465213698521478")))
	if err != nil || len(human.Events) != 1 {
		t.Fatalf("%v %+v", err, human)
	}
	if e := human.Events[0]; e.Author != sdk.AuthorAgent || e.Direction != sdk.DirectionOutbound || e.AgentID != "5187465213698521478" {
		t.Errorf("agent message normalized as %+v", e)
	}
	// Without admin_id, an OA message we did not send is still an agent's.
	other, err := c.HandleWebhook(ctxT(t), fake.WebhookRequest(fake.OAText(user, "sent by another tool", "")))
	if err != nil || len(other.Events) != 1 || other.Events[0].Author != sdk.AuthorAgent {
		t.Fatalf("%v %+v", err, other)
	}
}

// echoFirst is a transport that, before a send reaches Zalo, delivers the
// echo of it to the connector: Zalo's echo webhook overtaking its answer.
type echoFirst struct {
	fake      *zalofake.Server
	c         *Connector
	user      string
	mu        sync.Mutex
	seen      []sdk.Event
	delivered int
}

func (e *echoFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == PathSendCS {
		var body struct {
			Message struct {
				Text string `json:"text"`
			} `json:"message"`
		}
		b, _ := r.GetBody()
		_ = json.NewDecoder(b).Decode(&body)
		res, err := e.c.HandleWebhook(r.Context(), e.fake.WebhookRequest(e.fake.OAText(e.user, body.Message.Text, "")))
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		e.delivered++
		e.seen = append(e.seen, res.Events...)
		e.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestEchoOvertakingTheAnswerIsOurs(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	rt := &echoFirst{fake: fake, user: zalofake.NewID()}
	c := New(WithHTTPClient(&http.Client{Transport: rt}))
	rt.c = c
	if err := c.Configure(ctxT(t), sdk.ConfigureRequest{Config: fake.PluginConfig(nil), Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))}); err != nil {
		t.Fatal(err)
	}
	userWrote(t, c, fake, rt.user)
	if _, err := c.Send(ctxT(t), &sdk.Outbound{To: sdk.Identity{UserID: rt.user}, Text: "bot reply"}); err != nil {
		t.Fatal(err)
	}
	if rt.delivered != 1 {
		t.Fatalf("the echo was delivered %d times, want 1", rt.delivered)
	}
	if len(rt.seen) != 0 {
		t.Errorf("an echo of our in-flight send became an agent message: %+v", rt.seen)
	}
}

// TestSendErrorMapping: each Zalo error (HTTP 200 + code) and each HTTP
// failure becomes the right typed error, with no secret in its text.
func TestSendErrorMapping(t *testing.T) {
	tests := []struct {
		name       string
		inject     func(f *zalofake.Server)
		code       sdk.ErrorCode
		reason     string
		provider   string
		retryAfter time.Duration
		sends      int // calls the fake sees
	}{
		{"rate limit -32", func(f *zalofake.Server) { f.RateLimitSends(1) }, sdk.CodeRateLimited, "rate_limited", "-32", 30 * time.Second, 1},
		{"bad parameter -201", func(f *zalofake.Server) { f.FailSends(1, -201, "recipient is invalid!") }, sdk.CodeInvalid, "invalid_parameter", "-201", 0, 1},
		{"OA disabled -204", func(f *zalofake.Server) { f.FailSends(1, -204, "OA is disabled") }, sdk.CodePermanent, "oa_unavailable", "-204", 0, 1},
		{"out of quota -211", func(f *zalofake.Server) { f.FailSends(1, -211, "Out of quota") }, sdk.CodePermanent, "quota_exhausted", "-211", 0, 1},
		{"not follower -213", func(f *zalofake.Server) { f.FailSends(1, -213, "User has not followed OA") }, sdk.CodePermanent, "window_closed", "-213", 0, 1},
		{"no interaction -230", func(f *zalofake.Server) {
			f.FailSends(1, -230, "User has not interacted with the OA in the past 7 days")
		}, sdk.CodePermanent, "window_closed", "-230", 0, 1},
		{"no interaction -232", func(f *zalofake.Server) { f.FailSends(1, -232, "User has no interaction") }, sdk.CodePermanent, "window_closed", "-232", 0, 1},
		{"no permission -223", func(f *zalofake.Server) { f.FailSends(1, -223, "OA has not authorized") }, sdk.CodeUnauthorized, "permission_denied", "-223", 0, 1},
		{"tier -224", func(f *zalofake.Server) { f.FailSends(1, -224, "upgrade") }, sdk.CodePermanent, "tier_required", "-224", 0, 1},
		{"user inactive -227", func(f *zalofake.Server) { f.FailSends(1, -227, "banned") }, sdk.CodePermanent, "user_unreachable", "-227", 0, 1},
		{"message type -233", func(f *zalofake.Server) { f.FailSends(1, -233, "type") }, sdk.CodeInvalid, "message_type_unsupported", "-233", 0, 1},
		{"restricted -244", func(f *zalofake.Server) { f.FailSends(1, -244, "restricted") }, sdk.CodePermanent, "user_restricted", "-244", 0, 1},
		{"ZCA -321", func(f *zalofake.Server) { f.FailSends(1, -321, "no money") }, sdk.CodePermanent, "billing", "-321", 0, 1},
		{"unknown code", func(f *zalofake.Server) { f.FailSends(1, -999, "??") }, sdk.CodeRetryable, "provider_error", "-999", 0, 1},
		{"token invalid twice", func(f *zalofake.Server) { f.FailSends(2, -216, "Access token is invalid") }, sdk.CodeUnauthorized, "token_invalid", "-216", 0, 2},
		{"HTTP 429 with Retry-After", func(f *zalofake.Server) { f.FailSendsHTTP(1, 429, http.Header{"Retry-After": {"7"}}) }, sdk.CodeRateLimited, "rate_limited", "429", 7 * time.Second, 1},
		{"HTTP 503", func(f *zalofake.Server) { f.FailSendsHTTP(1, 503, nil) }, sdk.CodeRetryable, "provider_unavailable", "503", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, zalofake.Config{})
			c := configure(t, fake, sdk.NewMemoryHost(nil), nil, nil)
			user := zalofake.NewID()
			userWrote(t, c, fake, user)
			tt.inject(fake)
			_, err := c.Send(ctxT(t), &sdk.Outbound{IdempotencyKey: "k", To: sdk.Identity{UserID: user}, Text: "hello"})
			var e *sdk.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want a typed error", err)
			}
			if e.Code != tt.code || e.Reason != tt.reason || e.ProviderCode != tt.provider || e.RetryAfter != tt.retryAfter {
				t.Errorf("got code=%s reason=%q provider=%q after=%s, want %s %q %q %s (%v)",
					e.Code, e.Reason, e.ProviderCode, e.RetryAfter, tt.code, tt.reason, tt.provider, tt.retryAfter, err)
			}
			if n := len(fake.Sends()); n != tt.sends {
				t.Errorf("fake saw %d sends, want %d", n, tt.sends)
			}
			a, r := fake.Tokens()
			for _, secret := range []string{a, r, fake.Config().AppSecret, fake.Config().OASecretKey} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks a secret: %v", err)
				}
			}
			// The idempotency claim is freed: the hub's retry goes through.
			if _, err := c.Send(ctxT(t), &sdk.Outbound{IdempotencyKey: "k", To: sdk.Identity{UserID: user}, Text: "hello"}); err != nil && tt.reason != "window_closed" && tt.reason != "quota_exhausted" {
				t.Errorf("retry after %s: %v", tt.name, err)
			}
		})
	}
}

// TestWindowRefusalRemembered: once Zalo says the user is outside the
// window, further sends are refused without calling Zalo until the user
// writes again.
func TestWindowRefusalRemembered(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	c := configure(t, fake, sdk.NewMemoryHost(nil), nil, nil)
	user := zalofake.NewID()
	userWrote(t, c, fake, user)
	fake.FailSends(1, -230, "User has not interacted with the OA in the past 7 days")
	out := &sdk.Outbound{To: sdk.Identity{UserID: user}, Text: "x"}
	if _, err := c.Send(ctxT(t), out); sdk.ReasonOf(err) != "window_closed" {
		t.Fatalf("got %v", err)
	}
	_, err := c.Send(ctxT(t), out)
	if sdk.ReasonOf(err) != "window_closed" || sdk.CodeOf(err) != sdk.CodePermanent {
		t.Fatalf("second send: %v", err)
	}
	if n := len(fake.Sends()); n != 1 {
		t.Errorf("Zalo was called %d times, want 1", n)
	}
	// Zalo stamps messages in milliseconds, and a message stamped no later
	// than the last one known is not news: the user writes again in a
	// later millisecond.
	for ms := time.Now().UnixMilli(); time.Now().UnixMilli() == ms; {
		runtime.Gosched()
	}
	userWrote(t, c, fake, user)
	if _, err := c.Send(ctxT(t), out); err != nil {
		t.Fatalf("after the user wrote again: %v", err)
	}
}

// TestReplyAllowance: Zalo's 8 free replies within 48 h of the user's last
// message are tracked from webhooks and sends; the hub learns before the
// call that a reply would be refused.
func TestReplyAllowance(t *testing.T) {
	clk := newClock(time.Now())
	fake := newFake(t, zalofake.Config{Now: clk.Now, EnforceReplyQuota: true})
	c := configure(t, fake, sdk.NewMemoryHost(nil), clk.Now, nil)
	user := zalofake.NewID()
	send := func(i int) error {
		_, err := c.Send(ctxT(t), &sdk.Outbound{IdempotencyKey: fmt.Sprint("r", i), To: sdk.Identity{UserID: user}, Text: fmt.Sprint("reply ", i)})
		return err
	}
	userWrote(t, c, fake, user)
	for i := range 8 {
		if err := send(i); err != nil {
			t.Fatalf("reply %d: %v", i+1, err)
		}
	}
	err := send(8)
	if sdk.CodeOf(err) != sdk.CodePermanent || sdk.ReasonOf(err) != "quota_exhausted" {
		t.Fatalf("9th reply: %v, want permanent quota_exhausted", err)
	}
	if n := len(fake.Sends()); n != 8 {
		t.Errorf("Zalo saw %d sends, want 8: the 9th must be refused before the call", n)
	}

	// A new message from the user starts the count again.
	clk.Add(time.Minute)
	userWrote(t, c, fake, user)
	if err := send(9); err != nil {
		t.Fatalf("after a new user message: %v", err)
	}
	// Messages typed by agents in the OA manager count too.
	for range 7 {
		res, err := c.HandleWebhook(ctxT(t), fake.WebhookRequest(fake.OAText(user, "agent", "5187465213698521478")))
		if err != nil || len(res.Events) != 1 {
			t.Fatal(err, res)
		}
	}
	if err := send(10); sdk.ReasonOf(err) != "quota_exhausted" {
		t.Fatalf("after 1 reply and 7 agent messages: %v", err)
	}

	// 48 h after the user's last message the window is closed.
	clk.Add(48*time.Hour + time.Minute)
	userWrote(t, c, fake, user) // then the user writes again...
	clk.Add(48*time.Hour + time.Minute)
	err = send(11) // ...and two days pass
	if sdk.CodeOf(err) != sdk.CodePermanent || sdk.ReasonOf(err) != "window_closed" || !strings.Contains(err.Error(), "48h") {
		t.Fatalf("after 48 h: %v, want permanent window_closed naming the window", err)
	}
}

func TestReplyAllowanceConfigurable(t *testing.T) {
	clk := newClock(time.Now())
	fake := newFake(t, zalofake.Config{Now: clk.Now})
	known := zalofake.NewID()
	for _, tt := range []struct {
		name   string
		extra  map[string]any
		user   string
		sends  int // that succeed
		reason string
	}{
		{"2 free replies", map[string]any{"reply_allowance": map[string]any{"free_replies": 2}}, known, 2, "quota_exhausted"},
		{"not enforced", map[string]any{"reply_allowance": map[string]any{"enforce": false, "free_replies": 2}}, known, 5, ""},
		{"unknown contact allowed by default", nil, zalofake.NewID(), 5, ""},
		{"unknown contact refused", map[string]any{"reply_allowance": map[string]any{"unknown_contact": "refuse"}}, zalofake.NewID(), 0, "window_closed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := configure(t, fake, sdk.NewMemoryHost(nil), clk.Now, tt.extra)
			if tt.user == known {
				userWrote(t, c, fake, known)
			}
			var err error
			n := 0
			for range 5 {
				if _, err = c.Send(ctxT(t), &sdk.Outbound{To: sdk.Identity{UserID: tt.user}, Text: "x"}); err != nil {
					break
				}
				n++
			}
			if n != tt.sends || sdk.ReasonOf(err) != tt.reason {
				t.Fatalf("%d sends then %v; want %d then reason %q", n, err, tt.sends, tt.reason)
			}
		})
	}
}

// TestReplyAllowanceConcurrent: sends racing for the last slots never
// overrun the allowance.
func TestReplyAllowanceConcurrent(t *testing.T) {
	fake := newFake(t, zalofake.Config{EnforceReplyQuota: true})
	host := sdk.NewMemoryHost(nil)
	a := configure(t, fake, host, nil, nil)
	b := configure(t, fake, host, nil, nil) // a second replica on the same store
	user := zalofake.NewID()
	userWrote(t, a, fake, user)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a
			if i%2 == 1 {
				c = b
			}
			_, err := c.Send(ctxT(t), &sdk.Outbound{IdempotencyKey: fmt.Sprint("c", i), To: sdk.Identity{UserID: user}, Text: fmt.Sprint(i)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case sdk.ReasonOf(err) == "quota_exhausted":
				refused++
			default:
				t.Errorf("send %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok != 8 || refused != 12 || len(fake.Accepted()) != 8 {
		t.Errorf("%d sent, %d refused, fake accepted %d; want 8, 12, 8", ok, refused, len(fake.Accepted()))
	}
}

func TestSendIdempotent(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	host := sdk.NewMemoryHost(nil)
	a := configure(t, fake, host, nil, nil)
	b := configure(t, fake, host, nil, nil)
	user := zalofake.NewID()
	userWrote(t, a, fake, user)
	msg := func() *sdk.Outbound {
		return &sdk.Outbound{IdempotencyKey: "reply-to-96d3", To: sdk.Identity{UserID: user}, Text: "once"}
	}
	first, err := a.Send(ctxT(t), msg())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a
			if i%2 == 0 {
				c = b
			}
			res, err := c.Send(ctxT(t), msg())
			if err != nil || res.ProviderMessageID != first.ProviderMessageID {
				t.Errorf("repeat %d: %v %+v, want message %s", i, err, res, first.ProviderMessageID)
			}
		}()
	}
	wg.Wait()
	if n := len(fake.Accepted()); n != 1 {
		t.Errorf("Zalo accepted %d messages for one idempotency key", n)
	}

	// Concurrent first sends of a new key: one reaches Zalo, the others
	// are told to retry (in flight) or get its result.
	var mu sync.Mutex
	results := map[string]int{}
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a
			if i%2 == 0 {
				c = b
			}
			res, err := c.Send(ctxT(t), &sdk.Outbound{IdempotencyKey: "race", To: sdk.Identity{UserID: user}, Text: "race"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				results[res.ProviderMessageID]++
			case sdk.ReasonOf(err) == "in_flight" && sdk.IsRetryable(err):
				results["in_flight"]++
			default:
				t.Errorf("race %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if n := len(fake.Accepted()); n != 2 {
		t.Errorf("Zalo accepted %d messages in total, want 2", n)
	}
	delete(results, "in_flight")
	if len(results) != 1 {
		t.Errorf("racing sends of one key returned message ids %v", results)
	}
}

func TestSendCancelledContext(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	c := configure(t, fake, sdk.NewMemoryHost(nil), nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Send(ctx, &sdk.Outbound{To: sdk.Identity{UserID: goldenUser}, Text: "x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n := len(fake.Sends()); n != 0 {
		t.Errorf("a cancelled send reached Zalo %d times", n)
	}
}

func TestNotConfigured(t *testing.T) {
	c := New()
	if _, err := c.Send(ctxT(t), &sdk.Outbound{Text: "x"}); sdk.ReasonOf(err) != "not_configured" {
		t.Errorf("Send: %v", err)
	}
	if _, err := c.HandleWebhook(ctxT(t), &sdk.WebhookRequest{}); sdk.ReasonOf(err) != "not_configured" {
		t.Errorf("HandleWebhook: %v", err)
	}
	m, err := c.Describe(ctxT(t))
	if err != nil || m.Name != "zalo" || m.Kind != sdk.KindChannel || !json.Valid(m.ConfigSchema) {
		t.Errorf("Describe: %v %+v", err, m)
	}
}

func TestHealthAndProfiles(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	c := configure(t, fake, sdk.NewMemoryHost(nil), nil, map[string]any{"fetch_profiles": true})
	if err := c.CheckHealth(ctxT(t)); err != nil {
		t.Fatalf("CheckHealth: %v", err)
	}
	user := zalofake.NewID()
	fake.SetUserProfile(user, "Trần Thị Bình")
	ev := userWrote(t, c, fake, user)
	if ev.Contact.DisplayName != "Trần Thị Bình" {
		t.Errorf("display name %q", ev.Contact.DisplayName)
	}
	// The name is cached: the second message does not ask Zalo again.
	before := len(fake.Calls())
	ev = userWrote(t, c, fake, user)
	if ev.Contact.DisplayName != "Trần Thị Bình" || len(fake.Calls()) != before {
		t.Errorf("second lookup: %q, %d new calls", ev.Contact.DisplayName, len(fake.Calls())-before)
	}
	fake.ExpireAccessTokens()
	fake.RevokeRefreshTokens()
	if err := c.CheckHealth(ctxT(t)); sdk.CodeOf(err) != sdk.CodeUnauthorized {
		t.Errorf("CheckHealth with dead tokens: %v", err)
	}
}

// TestEchoOverHTTP: the fake echoes an accepted send to a webhook endpoint
// over real HTTP (as a hub's ingress would receive it); the echo of our
// own message yields no event.
func TestEchoOverHTTP(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	c := configure(t, fake, sdk.NewMemoryHost(nil), nil, nil)
	var mu sync.Mutex
	var events []sdk.Event
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := c.HandleWebhook(r.Context(), &sdk.WebhookRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header, Body: body})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		mu.Lock()
		events = append(events, res.Events...)
		mu.Unlock()
		w.WriteHeader(res.Response.Status)
	}))
	defer ingress.Close()
	fake.SetEchoURL(ingress.URL + "/webhooks/zalo")
	user := zalofake.NewID()
	res, err := fake.PostWebhook(ctxT(t), ingress.URL+"/webhooks/zalo", fake.Text(user, "còn size M không?"))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%v %v", err, res)
	}
	res.Body.Close()
	if _, err := c.Send(ctxT(t), &sdk.Outbound{To: sdk.Identity{UserID: user}, Text: "Dạ còn ạ"}); err != nil {
		t.Fatal(err)
	}
	if err := fake.WaitFor(ctxT(t), func(f *zalofake.Server) bool { return len(f.Echoes()) == 1 }); err != nil {
		t.Fatal(err)
	}
	if e := fake.Echoes()[0]; e.Status != 200 || e.Err != nil {
		t.Fatalf("echo delivery %+v", e)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Author != sdk.AuthorCustomer {
		t.Errorf("events %+v, want only the customer's message", events)
	}
}

// TestNoPIIInLogs: message text and phone numbers never reach the log at
// info level or above, and secrets never at any level.
func TestNoPIIInLogs(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	host := sdk.NewMemoryHost(nil)
	c := configure(t, fake, host, nil, nil)
	user := zalofake.NewID()
	const secretText = "số của em là 0912345678"
	for _, ev := range []zalofake.Event{fake.Text(user, secretText), fake.SubmitInfo(user, zalofake.Info{Name: "An", Phone: "0912345678"})} {
		if _, err := c.HandleWebhook(ctxT(t), fake.WebhookRequest(ev)); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c.HandleWebhook(ctxT(t), fake.WebhookRequest(fake.Text(user, secretText), zalofake.WrongSecret()))
	fake.ExpireAccessTokens()
	if _, err := c.Send(ctxT(t), &sdk.Outbound{To: sdk.Identity{UserID: user}, Text: secretText}); err != nil {
		t.Fatal(err)
	}
	access, refresh := fake.Tokens()
	for _, l := range host.Logs() {
		all := l.Message
		for k, v := range l.Attrs {
			all += " " + k + "=" + v
		}
		for _, s := range []string{access, refresh, fake.Config().AppSecret, fake.Config().OASecretKey} {
			if strings.Contains(all, s) {
				t.Fatalf("log leaks a secret: %s", l.Message)
			}
		}
		if l.Level >= slog.LevelInfo && (strings.Contains(all, "0912345678") || strings.Contains(all, "số của em")) {
			t.Fatalf("info log carries customer PII: %s", all)
		}
	}
	if len(host.Logs()) == 0 {
		t.Fatal("nothing was logged; the test checks nothing")
	}
}
