package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
)

const customer = "16505551234"

var toCustomer = sdk.Identity{Channel: "whatsapp", UserID: customer, Phone: "+" + customer}

// TestSendPayloads sends each message shape to the fake and compares the
// JSON Meta received with the reviewed golden body in testdata/send.
func TestSendPayloads(t *testing.T) {
	img := sdk.Attachment{Type: "image", URL: "https://cdn.example.com/p/42.jpg"}
	buttons := func(n int) []sdk.Button {
		var bs []sdk.Button
		for i := 1; i <= n; i++ {
			bs = append(bs, sdk.Button{ID: fmt.Sprintf("opt_%d", i), Title: fmt.Sprintf("Option %d", i)})
		}
		return bs
	}
	tests := []struct {
		name string
		msg  sdk.Outbound
	}{
		{"text", sdk.Outbound{IdempotencyKey: "in-1", To: toCustomer, Type: "text", Text: "Xin chào! How can we help?"}},
		{"text_reply_preview", sdk.Outbound{To: toCustomer, Text: "See https://example.com/pricing", ReplyTo: "wamid.Q1",
			Metadata: map[string]string{MetaPreviewURL: "true"}}},
		{"text_by_conversation_key", sdk.Outbound{ConversationKey: "whatsapp:" + wafake.DefaultPhoneNumberID + ":" + customer, Text: "by key"}},
		{"text_by_phone", sdk.Outbound{To: sdk.Identity{Phone: "+1 650-555-1234"}, Text: "by phone"}},
		{"text_to_bsuid", sdk.Outbound{To: sdk.Identity{Channel: "whatsapp", UserID: "US.13491208655302741918"}, Text: "to a username"}},
		{"image_link_caption", sdk.Outbound{To: toCustomer, Type: "image", Text: "Our bestseller", Attachments: []sdk.Attachment{img}}},
		{"image_by_id_inferred", sdk.Outbound{To: toCustomer, Attachments: []sdk.Attachment{{Type: "image", MediaID: "1003383421387256", Caption: "by id"}}}},
		{"video", sdk.Outbound{To: toCustomer, Type: "video", Attachments: []sdk.Attachment{{URL: "https://cdn.example.com/demo.mp4"}}}},
		{"audio", sdk.Outbound{To: toCustomer, Type: "audio", Attachments: []sdk.Attachment{{MediaID: "1522658765278453"}}}},
		{"document", sdk.Outbound{To: toCustomer, Type: "file", Text: "Your quote",
			Attachments: []sdk.Attachment{{Type: "file", URL: "https://cdn.example.com/q.pdf", Name: "quote-1234.pdf"}}}},
		{"sticker", sdk.Outbound{To: toCustomer, Type: "sticker", Attachments: []sdk.Attachment{{MediaID: "1380418139319786"}}}},
		{"interactive_buttons", sdk.Outbound{To: toCustomer, Type: "interactive", Text: "Which plan?", Buttons: buttons(3),
			Metadata: map[string]string{MetaFooter: "Reply anytime"}}},
		{"interactive_buttons_image_header", sdk.Outbound{To: toCustomer, Text: "Like it?", Attachments: []sdk.Attachment{img},
			Buttons: []sdk.Button{{Payload: "yes", Title: "Yes"}, {Title: "No"}}}},
		{"interactive_list", sdk.Outbound{To: toCustomer, Type: "interactive", Text: "Pick a slot", Buttons: buttons(5),
			Metadata: map[string]string{MetaHeader: "Demo booking", MetaListButton: "See slots"}}},
		{"interactive_cta_url", sdk.Outbound{To: toCustomer, Text: "Pay here", Buttons: []sdk.Button{{Title: "Pay now", URL: "https://pay.example.com/i/42"}}}},
		{"template", sdk.Outbound{To: toCustomer, Type: "template", Template: &sdk.Template{Name: "order_update", Language: "vi", Params: []string{"#1234", "Thứ Hai"}}}},
		{"template_default_language", sdk.Outbound{To: toCustomer, Template: &sdk.Template{Name: "hello_world"}}},
		{"reaction", sdk.Outbound{To: toCustomer, Type: "reaction", Text: "❤️", ReplyTo: "wamid.Q2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, wafake.Options{IgnoreWindow: true}, map[string]any{"enforce_window": false})
			res, err := e.conn.Send(context.Background(), &tc.msg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			sent := e.fake.Sent()
			if len(sent) != 1 || res.ProviderMessageID != sent[0].ID || !strings.HasPrefix(res.ProviderMessageID, "wamid.") {
				t.Fatalf("provider id %q, fake accepted %+v", res.ProviderMessageID, sent)
			}
			reqs := e.fake.Requests()
			if got := reqs[0].Header.Get("Authorization"); got != "Bearer "+wafake.DefaultAccessToken {
				t.Errorf("Authorization %q", got)
			}
			if want := "/" + DefaultAPIVersion + "/" + wafake.DefaultPhoneNumberID + "/messages"; reqs[0].Path != want {
				t.Errorf("path %s, want %s", reqs[0].Path, want)
			}
			compareGolden(t, "testdata/send/"+tc.name+".json", e.sentPayload(0))
		})
	}
}

// TestSendRefusesInvalid: messages WhatsApp would reject are refused as
// Invalid before any request.
func TestSendRefusesInvalid(t *testing.T) {
	long := strings.Repeat("a", maxTextLen+1)
	tests := []struct {
		name   string
		msg    sdk.Outbound
		reason string
	}{
		{"empty text", sdk.Outbound{To: toCustomer, Text: "  "}, ReasonInvalidParameter},
		{"text too long", sdk.Outbound{To: toCustomer, Text: long}, ReasonInvalidParameter},
		{"no recipient", sdk.Outbound{Text: "x"}, ""},
		{"other channel", sdk.Outbound{To: sdk.Identity{Channel: "zalo", UserID: "1"}, Text: "x"}, ""},
		{"key of another number", sdk.Outbound{ConversationKey: "whatsapp:999:" + customer, Text: "x"}, ""},
		{"key of another channel", sdk.Outbound{ConversationKey: "zalo:1:2", Text: "x"}, ""},
		{"recipient not an id", sdk.Outbound{To: sdk.Identity{UserID: "bob smith"}, Text: "x"}, ""},
		{"two attachments", sdk.Outbound{To: toCustomer, Type: "image", Attachments: []sdk.Attachment{{MediaID: "1"}, {MediaID: "2"}}}, ReasonTooManyAttachment},
		{"no attachment", sdk.Outbound{To: toCustomer, Type: "image"}, ReasonInvalidParameter},
		{"attachment without source", sdk.Outbound{To: toCustomer, Type: "image", Attachments: []sdk.Attachment{{Name: "x"}}}, ReasonInvalidParameter},
		{"audio with caption", sdk.Outbound{To: toCustomer, Type: "audio", Text: "listen", Attachments: []sdk.Attachment{{MediaID: "1"}}}, ReasonInvalidParameter},
		{"interactive without body", sdk.Outbound{To: toCustomer, Type: "interactive", Buttons: []sdk.Button{{Title: "a"}}}, ReasonInvalidParameter},
		{"interactive without buttons", sdk.Outbound{To: toCustomer, Type: "interactive", Text: "x"}, ReasonInvalidParameter},
		{"button title too long", sdk.Outbound{To: toCustomer, Text: "x", Buttons: []sdk.Button{{Title: "a title that is longer than twenty"}}}, ReasonInvalidParameter},
		{"link mixed with replies", sdk.Outbound{To: toCustomer, Text: "x", Buttons: []sdk.Button{{Title: "a", URL: "https://x"}, {Title: "b"}}}, ReasonInvalidParameter},
		{"eleven rows", sdk.Outbound{To: toCustomer, Text: "x", Buttons: make11()}, ReasonInvalidParameter},
		{"template without Template", sdk.Outbound{To: toCustomer, Type: "template"}, ReasonInvalidParameter},
		{"template empty param", sdk.Outbound{To: toCustomer, Template: &sdk.Template{Name: "t", Params: []string{""}}}, ReasonInvalidParameter},
		{"reaction without target", sdk.Outbound{To: toCustomer, Type: "reaction", Text: "👍"}, ReasonInvalidParameter},
		{"unknown type", sdk.Outbound{To: toCustomer, Type: "carousel", Text: "x"}, ReasonInvalidParameter},
	}
	e := newEnv(t, wafake.Options{IgnoreWindow: true}, map[string]any{"enforce_window": false})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.conn.Send(context.Background(), &tc.msg)
			if sdk.CodeOf(err) != sdk.CodeInvalid {
				t.Fatalf("err %v, want invalid", err)
			}
			if tc.reason != "" && sdk.ReasonOf(err) != tc.reason {
				t.Errorf("reason %q, want %q", sdk.ReasonOf(err), tc.reason)
			}
		})
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Fatalf("%d requests reached Meta for invalid messages", n)
	}
}

func make11() []sdk.Button {
	var bs []sdk.Button
	for i := range 11 {
		bs = append(bs, sdk.Button{Title: fmt.Sprint("row ", i)})
	}
	return bs
}

// TestSendErrorMapping: each Graph error code becomes the typed error the
// hub acts on, with Meta's code and a retry-after where the limit implies
// one.
func TestSendErrorMapping(t *testing.T) {
	withRetryAfter := wafake.ErrAppRateLimit()
	withRetryAfter.Header = http.Header{"Retry-After": {"30"}}
	unknown500 := &wafake.GraphError{HTTPStatus: 500, Code: 987654, Message: "(#987654) new error"}
	unknown400 := &wafake.GraphError{HTTPStatus: 400, Code: 987654, Message: "(#987654) new error"}
	unknown403 := &wafake.GraphError{HTTPStatus: 403, Code: 987654, Message: "(#987654) new error"}
	tests := []struct {
		name   string
		err    *wafake.GraphError
		code   sdk.ErrorCode
		reason string
		after  time.Duration
	}{
		{"190 expired token", wafake.ErrTokenExpired(), sdk.CodeUnauthorized, ReasonTokenExpired, 0},
		{"190 invalid token", wafake.ErrTokenInvalid(), sdk.CodeUnauthorized, ReasonTokenInvalid, 0},
		{"131047 outside the window", wafake.ErrReengagement(), sdk.CodePermanent, ReasonWindowClosed, 0},
		{"130429 throughput", wafake.ErrThroughput(), sdk.CodeRateLimited, ReasonThroughputLimit, time.Second},
		{"131056 pair rate limit", wafake.ErrPairRateLimit(), sdk.CodeRateLimited, ReasonPairRateLimit, 6 * time.Second},
		{"80007 account rate limit", wafake.ErrAccountRateLimit(), sdk.CodeRateLimited, ReasonAccountRateLimit, time.Minute},
		{"4 app rate limit (HTTP 429)", wafake.ErrAppRateLimit(), sdk.CodeRateLimited, ReasonAppRateLimit, time.Minute},
		{"4 with Retry-After", withRetryAfter, sdk.CodeRateLimited, ReasonAppRateLimit, 30 * time.Second},
		{"131048 spam rate limit", wafake.ErrSpamRateLimit(), sdk.CodeRateLimited, ReasonSpamRateLimit, 15 * time.Minute},
		{"131026 undeliverable", wafake.ErrUndeliverable(), sdk.CodePermanent, ReasonUndeliverable, 0},
		{"100 invalid parameter", wafake.ErrInvalidParameter("Parameter value is not valid"), sdk.CodeInvalid, ReasonInvalidParameter, 0},
		{"131000 something went wrong", wafake.ErrGeneric(), sdk.CodeRetryable, ReasonProviderError, 0},
		{"131016 service unavailable", wafake.ErrServiceUnavailable(), sdk.CodeRetryable, ReasonProviderError, 0},
		{"132001 template missing", wafake.ErrTemplateNotFound(), sdk.CodeInvalid, ReasonTemplateNotFound, 0},
		{"unknown code, HTTP 500", unknown500, sdk.CodeRetryable, ReasonProviderError, 0},
		{"unknown code, HTTP 400", unknown400, sdk.CodeInvalid, "", 0},
		{"unknown code, HTTP 403", unknown403, sdk.CodeUnauthorized, ReasonPermissionDenied, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, wafake.Options{IgnoreWindow: true}, map[string]any{"enforce_window": false})
			e.fake.FailNext(tc.err)
			_, err := e.conn.Send(context.Background(), &sdk.Outbound{IdempotencyKey: "k", To: toCustomer, Text: "hello"})
			var se *sdk.Error
			if !errors.As(err, &se) {
				t.Fatalf("err %v (%T), want *sdk.Error", err, err)
			}
			if se.Code != tc.code || se.Reason != tc.reason || se.RetryAfter != tc.after {
				t.Errorf("got %s reason %q after %s; want %s reason %q after %s", se.Code, se.Reason, se.RetryAfter, tc.code, tc.reason, tc.after)
			}
			if se.ProviderCode != fmt.Sprint(tc.err.Code) {
				t.Errorf("provider code %q, want %d", se.ProviderCode, tc.err.Code)
			}
			if !strings.Contains(se.Message, "fbtrace_id") {
				t.Errorf("message %q lacks the fbtrace_id Meta support asks for", se.Message)
			}
			if strings.Contains(err.Error(), wafake.DefaultAccessToken) {
				t.Error("error leaks the access token")
			}
			// The claim was released: the hub's retry goes through.
			if _, err := e.conn.Send(context.Background(), &sdk.Outbound{IdempotencyKey: "k", To: toCustomer, Text: "hello"}); err != nil {
				t.Errorf("retry after the error: %v", err)
			}
		})
	}
}

// TestGraphErrorBodies covers answers the fake does not produce: bodies
// from a proxy, is_transient, and a hostile message quoting the token and
// a phone number.
func TestGraphErrorBodies(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		code   sdk.ErrorCode
		after  time.Duration
	}{
		{"HTML 502 from a proxy", 502, nil, "<html>Bad Gateway</html>", sdk.CodeRetryable, 0},
		{"empty 429 with Retry-After", 429, http.Header{"Retry-After": {"12"}}, "", sdk.CodeRateLimited, 12 * time.Second},
		{"empty 401", 401, nil, "", sdk.CodeUnauthorized, 0},
		{"is_transient", 400, nil, `{"error":{"message":"x","code":999999,"is_transient":true,"fbtrace_id":"T"}}`, sdk.CodeRetryable, 0},
		{"Retry-After ignored on permanent", 400, http.Header{"Retry-After": {"5"}}, `{"error":{"message":"(#131047) Re-engagement message","code":131047}}`, sdk.CodePermanent, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			err := mapGraphError("send", tc.status, h, []byte(tc.body))
			if err.Code != tc.code || err.RetryAfter != tc.after {
				t.Fatalf("got %s after %s, want %s after %s (%v)", err.Code, err.RetryAfter, tc.code, tc.after, err)
			}
		})
	}
	t.Run("secrets and phone numbers are scrubbed", func(t *testing.T) {
		body := `{"error":{"message":"(#100) token EAAG-secret-token is bad for +16505551234","code":100,"fbtrace_id":"T"}}`
		err := mapGraphError("send", 400, http.Header{}, []byte(body), "EAAG-secret-token")
		if s := err.Error(); strings.Contains(s, "EAAG-secret-token") || strings.Contains(s, "6505551234") {
			t.Fatalf("leaks: %s", s)
		}
	})
}

// TestWindowEnforcement: a free-form message outside the window is refused
// before calling Meta; templates always go; a 131047 from Meta closes our
// record of the window.
func TestWindowEnforcement(t *testing.T) {
	ctx := context.Background()
	text := &sdk.Outbound{To: toCustomer, Text: "are you still there?"}
	tmpl := &sdk.Outbound{To: toCustomer, Template: &sdk.Template{Name: "follow_up"}}

	t.Run("refused before Meta", func(t *testing.T) {
		e := newEnv(t, wafake.Options{}, nil)
		_, err := e.conn.Send(ctx, text)
		if sdk.CodeOf(err) != sdk.CodePermanent || sdk.ReasonOf(err) != ReasonWindowClosed {
			t.Fatalf("err %v, want permanent window_closed", err)
		}
		if n := len(e.fake.Requests()); n != 0 {
			t.Fatalf("%d requests reached Meta", n)
		}
		if _, err := e.conn.Send(ctx, tmpl); err != nil {
			t.Fatalf("a template outside the window: %v", err)
		}
		// The refusal released the idempotency claim: once the customer
		// writes, the hub's retry of the same key goes out.
		keyed := &sdk.Outbound{IdempotencyKey: "k-window", To: toCustomer, Text: "x"}
		if _, err := e.conn.Send(ctx, keyed); sdk.ReasonOf(err) != ReasonWindowClosed {
			t.Fatalf("err %v", err)
		}
		e.inbound(customer, "hi")
		if _, err := e.conn.Send(ctx, keyed); err != nil {
			t.Fatalf("retry once the window opened: %v", err)
		}
	})
	t.Run("open for 24 hours after the customer's message", func(t *testing.T) {
		e := newEnv(t, wafake.Options{}, nil)
		e.inbound(customer, "hi")
		if _, err := e.conn.Send(ctx, text); err != nil {
			t.Fatalf("inside the window: %v", err)
		}
		e.clock.Advance(WindowDuration - time.Second)
		if _, err := e.conn.Send(ctx, text); err != nil {
			t.Fatalf("one second before the window closes: %v", err)
		}
		e.clock.Advance(time.Second)
		if _, err := e.conn.Send(ctx, text); sdk.ReasonOf(err) != ReasonWindowClosed {
			t.Fatalf("24h later: %v, want window_closed", err)
		}
		if n := len(e.fake.Sent()); n != 2 {
			t.Fatalf("fake accepted %d, want 2", n)
		}
	})
	t.Run("fallback template", func(t *testing.T) {
		e := newEnv(t, wafake.Options{}, map[string]any{"window_fallback_template": map[string]any{
			"name": "reopen_conversation", "language": "vi", "params": []string{"Switchboard"}}})
		res, err := e.conn.Send(ctx, &sdk.Outbound{IdempotencyKey: "in-9", To: toCustomer, Text: "free-form", ReplyTo: "wamid.OLD"})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if sent := e.fake.Sent(); len(sent) != 1 || sent[0].Template != "reopen_conversation" || sent[0].ID != res.ProviderMessageID {
			t.Fatalf("fake got %+v", sent)
		}
		compareGolden(t, "testdata/send/window_fallback_template.json", e.sentPayload(0))
		e.inbound(customer, "hello again")
		if _, err := e.conn.Send(ctx, &sdk.Outbound{To: toCustomer, Text: "free-form"}); err != nil {
			t.Fatal(err)
		}
		if got := e.fake.Sent()[1].Type; got != "text" {
			t.Fatalf("inside the window the fallback replaced the text: %s", got)
		}
		// A reaction is not worth a template: refused.
		_, err = e.conn.Send(ctx, &sdk.Outbound{To: sdk.Identity{UserID: "84900000002"}, Type: "reaction", Text: "👍", ReplyTo: "wamid.X"})
		if sdk.ReasonOf(err) != ReasonWindowClosed {
			t.Fatalf("reaction outside the window: %v", err)
		}
	})
	t.Run("Meta's 131047 closes the window", func(t *testing.T) {
		e := newEnv(t, wafake.Options{}, nil)
		e.inbound(customer, "hi")
		e.fake.CloseWindow(customer) // Meta disagrees with our record
		if _, err := e.conn.Send(ctx, text); sdk.ReasonOf(err) != ReasonWindowClosed || sdk.RetryAfterOf(err) != 0 {
			t.Fatalf("err %v, want Meta's window_closed", err)
		}
		if e.windowOpen(customer) {
			t.Fatal("our record still says open")
		}
		before := len(e.fake.Requests())
		if _, err := e.conn.Send(ctx, text); sdk.ReasonOf(err) != ReasonWindowClosed {
			t.Fatalf("second send: %v", err)
		}
		if len(e.fake.Requests()) != before {
			t.Fatal("the second send reached Meta")
		}
	})
	t.Run("enforce_window false leaves it to Meta", func(t *testing.T) {
		e := newEnv(t, wafake.Options{}, map[string]any{"enforce_window": false})
		_, err := e.conn.Send(ctx, text)
		var se *sdk.Error
		if !errors.As(err, &se) || se.Reason != ReasonWindowClosed || se.ProviderCode != "131047" {
			t.Fatalf("err %v, want Meta's 131047", err)
		}
	})
	t.Run("a BSUID user's window", func(t *testing.T) {
		e := newEnv(t, wafake.Options{}, nil)
		m := wafake.Text("", "hi")
		m.BSUID, m.NoWaID = "US.13491208655302741918", true
		e.webhook(e.fake.WebhookRequest(e.fake.Inbound(m)))
		if _, err := e.conn.Send(ctx, &sdk.Outbound{To: sdk.Identity{UserID: m.BSUID}, Text: "reply"}); err != nil {
			t.Fatalf("reply to a username user: %v", err)
		}
	})
}

// TestSendIdempotent: the same IdempotencyKey sends once, also when the
// hub retries concurrently.
func TestSendIdempotent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, wafake.Options{IgnoreWindow: true}, map[string]any{"enforce_window": false})
	msg := &sdk.Outbound{IdempotencyKey: "inbound-wamid-1/reply", To: toCustomer, Text: "once"}
	a, err := e.conn.Send(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.conn.Send(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if a.ProviderMessageID != b.ProviderMessageID || len(e.fake.Sent()) != 1 {
		t.Fatalf("ids %s / %s, fake accepted %d", a.ProviderMessageID, b.ProviderMessageID, len(e.fake.Sent()))
	}
	if _, err := e.conn.Send(ctx, &sdk.Outbound{IdempotencyKey: "other", To: toCustomer, Text: "twice"}); err != nil {
		t.Fatal(err)
	}
	if len(e.fake.Sent()) != 2 {
		t.Fatal("a different key was deduplicated")
	}

	t.Run("a retry after the window closed returns the first id", func(t *testing.T) {
		e := newEnv(t, wafake.Options{}, nil)
		e.inbound(customer, "hi")
		msg := &sdk.Outbound{IdempotencyKey: "late-retry", To: toCustomer, Text: "answer"}
		first, err := e.conn.Send(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(WindowDuration + time.Minute)
		again, err := e.conn.Send(ctx, msg)
		if err != nil || again.ProviderMessageID != first.ProviderMessageID {
			t.Fatalf("retry: %v %+v, want the first id %s", err, again, first.ProviderMessageID)
		}
	})

	t.Run("concurrent retries", func(t *testing.T) {
		e := newEnv(t, wafake.Options{IgnoreWindow: true}, map[string]any{"enforce_window": false})
		const n = 12
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			ids  = map[string]int{}
			errs []error
		)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.conn.Send(ctx, &sdk.Outbound{IdempotencyKey: "race", To: toCustomer, Text: "once"})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				ids[res.ProviderMessageID]++
			}()
		}
		wg.Wait()
		if got := len(e.fake.Sent()); got != 1 {
			t.Fatalf("fake accepted %d messages for one key", got)
		}
		if len(ids) != 1 {
			t.Fatalf("different ids for one key: %v", ids)
		}
		for _, err := range errs {
			if sdk.ReasonOf(err) != ReasonInFlight || !sdk.IsRetryable(err) {
				t.Errorf("concurrent duplicate: %v, want retryable %s", err, ReasonInFlight)
			}
		}
	})
}

func TestExpiredTokenAndHealth(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, wafake.Options{IgnoreWindow: true}, map[string]any{"enforce_window": false})
	if err := e.conn.CheckHealth(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	e.fake.ExpireToken()
	if err := e.conn.CheckHealth(ctx); sdk.CodeOf(err) != sdk.CodeUnauthorized {
		t.Fatalf("health with an expired token: %v", err)
	}
	_, err := e.conn.Send(ctx, &sdk.Outbound{To: toCustomer, Text: "x"})
	if sdk.CodeOf(err) != sdk.CodeUnauthorized || sdk.ReasonOf(err) != ReasonTokenExpired {
		t.Fatalf("send with an expired token: %v", err)
	}
	// A new token arrives through the hub's config (a secret rotation).
	e.fake.SetAccessToken("rotated-token")
	cfg := e.fake.ChannelConfig(map[string]any{"enforce_window": false})
	if err := e.conn.Configure(ctx, sdk.ConfigureRequest{Instance: "wa-test", Config: cfg, Host: sdk.HostFromBackend(e.host)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.conn.Send(ctx, &sdk.Outbound{To: toCustomer, Text: "x"}); err != nil {
		t.Fatalf("after the new token: %v", err)
	}
}

func TestSendUnreachable(t *testing.T) {
	e := newEnv(t, wafake.Options{}, map[string]any{"enforce_window": false})
	e.fake.Close()
	_, err := e.conn.Send(context.Background(), &sdk.Outbound{IdempotencyKey: "u", To: toCustomer, Text: "x"})
	if sdk.CodeOf(err) != sdk.CodeRetryable {
		t.Fatalf("Graph unreachable: %v, want retryable", err)
	}
}
