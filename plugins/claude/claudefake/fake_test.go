package claudefake

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func start(t *testing.T, opts ...Option) *Server {
	t.Helper()
	s := New(opts...)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func post(t *testing.T, s *Server, body string, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-api-key", DefaultAPIKey)
	req.Header.Set("anthropic-version", APIVersion)
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, b}
}

const simple = `{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"Giá gói Pro?"}]}`

var reqIDRe = regexp.MustCompile(`^req_011C[0-9A-Za-z]{22}$`)

func errorType(t *testing.T, b []byte) (string, string) {
	t.Helper()
	var e wireError
	if err := json.Unmarshal(b, &e); err != nil || e.Type != "error" {
		t.Fatalf("not an error envelope: %s", b)
	}
	if !reqIDRe.MatchString(e.RequestID) {
		t.Errorf("request_id %q", e.RequestID)
	}
	return e.Error.Type, e.Error.Message
}

func TestHeadersAreChecked(t *testing.T) {
	s := start(t)
	tests := []struct {
		name     string
		headers  map[string]string
		status   int
		errType  string
		contains string
	}{
		{"missing key", map[string]string{"x-api-key": ""}, 401, "authentication_error", "x-api-key header is required"},
		{"wrong key", map[string]string{"x-api-key": "sk-ant-nope"}, 401, "authentication_error", "invalid x-api-key"},
		{"missing version", map[string]string{"anthropic-version": ""}, 400, "invalid_request_error", "anthropic-version"},
		{"wrong version", map[string]string{"anthropic-version": "2020-01-01"}, 400, "invalid_request_error", "invalid version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := post(t, s, simple, tt.headers)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			typ, msg := errorType(t, a.body)
			if typ != tt.errType || !strings.Contains(msg, tt.contains) {
				t.Errorf("error %s %q", typ, msg)
			}
			if !reqIDRe.MatchString(a.header.Get("request-id")) {
				t.Errorf("request-id header %q", a.header.Get("request-id"))
			}
		})
	}
	a := post(t, s, simple, nil)
	if a.status != 200 || !reqIDRe.MatchString(a.header.Get("request-id")) || a.header.Get("anthropic-ratelimit-requests-limit") == "" {
		t.Errorf("a good request: %d %v", a.status, a.header)
	}
}

func TestRequestValidation(t *testing.T) {
	s := start(t, WithMaxBodyBytes(4096))
	tests := []struct {
		name, body string
		status     int
		contains   string
	}{
		{"bad json", `{`, 400, "error parsing the body"},
		{"no model", `{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}`, 400, "model: Field required"},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, 400, "max_tokens"},
		{"no messages", `{"model":"m","max_tokens":1,"messages":[]}`, 400, "messages: Field required"},
		{"bad role", `{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}`, 400, "messages.0.role"},
		{"empty text block", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]}`, 400, "text content blocks must be non-empty"},
		{"empty system block", `{"model":"m","max_tokens":1,"system":[{"type":"text","text":""}],"messages":[{"role":"user","content":"x"}]}`, 400, "system: text content blocks must be non-empty"},
		{"too many breakpoints", `{"model":"m","max_tokens":1,"system":[` + strings.Repeat(`{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},`, 4) + `{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"x"}]}`, 400, "maximum of 4 blocks"},
		{"unknown forced tool", `{"model":"claude-haiku-4-5","max_tokens":1,"tools":[{"name":"a","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"b"},"messages":[{"role":"user","content":"x"}]}`, 400, "Tool 'b' not found"},
		{"forced tool on sonnet 5.5", `{"model":"claude-sonnet-5-5","max_tokens":1,"tools":[{"name":"a","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"a"},"messages":[{"role":"user","content":"x"}]}`, 400, "forced tool use is not supported"},
		{"minimum in output schema", `{"model":"m","max_tokens":1,"output_config":{"format":{"type":"json_schema","schema":{"type":"object","additionalProperties":false,"properties":{"n":{"type":"integer","minimum":0}}}}},"messages":[{"role":"user","content":"x"}]}`, 400, "For 'integer' type, property 'minimum' is not supported"},
		{"open object in output schema", `{"model":"m","max_tokens":1,"output_config":{"format":{"type":"json_schema","schema":{"type":"object","properties":{}}}},"messages":[{"role":"user","content":"x"}]}`, 400, "additionalProperties"},
		{"streaming", `{"model":"m","max_tokens":1,"stream":true,"messages":[{"role":"user","content":"x"}]}`, 400, "stream"},
		{"too large", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"` + strings.Repeat("x", 5000) + `"}]}`, 413, "exceeds the maximum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := post(t, s, tt.body, nil)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if _, msg := errorType(t, a.body); !strings.Contains(msg, tt.contains) {
				t.Errorf("message %q, want %q", msg, tt.contains)
			}
		})
	}
	if got := s.Requests(); len(got) != len(tests) || got[len(got)-1].Status != 413 {
		t.Errorf("every request is recorded with its status: %d", len(got))
	}
}

// TestGoldenErrors pins the error wire format (reference §3): status,
// envelope, and the headers clients read.
func TestGoldenErrors(t *testing.T) {
	fixed := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	s := start(t, WithClock(func() time.Time { return fixed }))
	tests := []struct {
		file  string
		reply Reply
	}{
		{"fake_429_rate_limit.json", RateLimited(7 * time.Second)},
		{"fake_429_spend_limit.json", SpendLimitReached()},
		{"fake_529_overloaded.json", Overloaded(10 * time.Second)},
		{"fake_500_api_error.json", ServerError()},
		{"fake_401_authentication_error.json", Unauthorized()},
		{"fake_403_permission_error.json", PermissionDenied()},
		{"fake_404_not_found_error.json", NotFoundModel("claude-nope")},
		{"fake_400_invalid_request_error.json", InvalidRequest("messages: text content blocks must be non-empty")},
		{"fake_413_request_too_large.json", TooLarge()},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			s.ScriptNext(tt.reply)
			a := post(t, s, simple, nil)
			var body map[string]any
			if err := json.Unmarshal(a.body, &body); err != nil {
				t.Fatal(err)
			}
			body["request_id"] = "req_X"
			headers := map[string]string{}
			for k := range a.header {
				lk := strings.ToLower(k)
				if lk == "retry-after" || lk == "x-should-retry" || strings.HasPrefix(lk, "anthropic-ratelimit-") || lk == "content-type" {
					headers[lk] = a.header.Get(k)
				}
			}
			doc, _ := json.Marshal(map[string]any{"status": a.status, "headers": headers, "body": body})
			golden(t, tt.file, doc)
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	path := filepath.Join("..", "testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from golden:\n%s", name, buf.Bytes())
	}
}

func decode(t *testing.T, a answer) wireResponse {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var r wireResponse
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStructuredModes(t *testing.T) {
	s := start(t)
	schema := `{"type":"object","additionalProperties":false,"properties":{"reply":{"type":"string"},"intent":{"type":"string","enum":["quote","other"]}},"required":["reply","intent"]}`
	facts := map[string]any{"reply": "Dạ", "intent": "quote"}
	tests := []struct {
		name, body string
		reply      Reply
		check      func(t *testing.T, r wireResponse)
	}{
		{"forced tool → tool_use", `{"model":"claude-haiku-4-5","max_tokens":100,"tools":[{"name":"record","input_schema":` + schema + `}],"tool_choice":{"type":"tool","name":"record"},"messages":[{"role":"user","content":"x"}]}`,
			FactsReply(facts), func(t *testing.T, r wireResponse) {
				if r.StopReason != "tool_use" || len(r.Content) != 1 || r.Content[0].Type != "tool_use" || r.Content[0].Name != "record" ||
					!strings.HasPrefix(r.Content[0].ID, "toolu_01") || string(r.Content[0].Input) != `{"intent":"quote","reply":"Dạ"}` {
					t.Errorf("%+v", r)
				}
			}},
		{"json_schema → JSON text", `{"model":"claude-sonnet-5-5","max_tokens":100,"output_config":{"format":{"type":"json_schema","schema":` + schema + `}},"messages":[{"role":"user","content":"x"}]}`,
			FactsReply(facts), func(t *testing.T, r wireResponse) {
				if r.StopReason != "end_turn" || r.Content[0].Type != "text" || *r.Content[0].Text != `{"intent":"quote","reply":"Dạ"}` {
					t.Errorf("%+v", r)
				}
			}},
		{"no format → text with a data block", simple, FactsReply(facts), func(t *testing.T, r wireResponse) {
			if *r.Content[0].Text != `<data>{"intent":"quote","reply":"Dạ"}</data>` {
				t.Errorf("%q", *r.Content[0].Text)
			}
		}},
		{"ignoring the forced tool", `{"model":"claude-haiku-4-5","max_tokens":100,"tools":[{"name":"record","input_schema":` + schema + `}],"tool_choice":{"type":"tool","name":"record"},"messages":[{"role":"user","content":"x"}]}`,
			DataBlockReply("Chào anh", facts), func(t *testing.T, r wireResponse) {
				if r.StopReason != "end_turn" || *r.Content[0].Text != `Chào anh`+"\n\n"+`<data>{"intent":"quote","reply":"Dạ"}</data>` {
					t.Errorf("%+v", r)
				}
			}},
		{"default responder honours the schema", `{"model":"claude-sonnet-5-5","max_tokens":100,"output_config":{"format":{"type":"json_schema","schema":` + schema + `}},"messages":[{"role":"user","content":"Báo giá giúp em"}]}`,
			Reply{}, func(t *testing.T, r wireResponse) {
				var m map[string]any
				if err := json.Unmarshal([]byte(*r.Content[0].Text), &m); err != nil || m["intent"] != "quote" || len(m) != 2 {
					t.Errorf("%v %v", m, err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.reply.Facts != nil || tt.reply.Text != "" {
				s.ScriptNext(tt.reply)
			}
			r := decode(t, post(t, s, tt.body, nil))
			if !strings.HasPrefix(r.ID, "msg_01") || r.Type != "message" || r.Role != "assistant" || r.Usage.InputTokens == 0 || r.Usage.OutputTokens == 0 {
				t.Errorf("envelope %+v", r)
			}
			tt.check(t, r)
		})
	}
}

func TestCacheAccounting(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := start(t, WithClock(clock))
	long := strings.Repeat("Quy tắc kinh doanh. ", 1000) // ≈ 5000 tokens: above every model's minimum
	body := func(model, ttl string) string {
		cc := `{"type":"ephemeral"}`
		if ttl != "" {
			cc = `{"type":"ephemeral","ttl":"` + ttl + `"}`
		}
		return `{"model":"` + model + `","max_tokens":10,"system":[{"type":"text","text":"` + long + `","cache_control":` + cc + `}],"messages":[{"role":"user","content":"Hi"}]}`
	}
	first := decode(t, post(t, s, body("claude-haiku-4-5", ""), nil)).Usage
	if first.CacheCreationInputTokens == 0 || first.CacheReadInputTokens != 0 || first.CacheCreation.Ephemeral5m != first.CacheCreationInputTokens {
		t.Fatalf("first use writes the cache: %+v", first)
	}
	second := decode(t, post(t, s, body("claude-haiku-4-5", ""), nil)).Usage
	if second.CacheReadInputTokens != first.CacheCreationInputTokens || second.CacheCreationInputTokens != 0 || second.InputTokens != first.InputTokens {
		t.Fatalf("a repeat reads it: %+v vs %+v", second, first)
	}
	other := decode(t, post(t, s, body("claude-sonnet-5-5", "1h"), nil)).Usage
	if other.CacheReadInputTokens != 0 || other.CacheCreation.Ephemeral1h == 0 {
		t.Errorf("caches are per model and report the 1h TTL: %+v", other)
	}
	mu.Lock()
	now = now.Add(6 * time.Minute)
	mu.Unlock()
	if expired := decode(t, post(t, s, body("claude-haiku-4-5", ""), nil)).Usage; expired.CacheCreationInputTokens == 0 {
		t.Errorf("the 5-minute entry expired: %+v", expired)
	}
	short := `{"model":"claude-haiku-4-5","max_tokens":10,"system":[{"type":"text","text":"short","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"Hi"}]}`
	if u := decode(t, post(t, s, short, nil)).Usage; u.CacheCreationInputTokens != 0 || u.CacheReadInputTokens != 0 {
		t.Errorf("a prefix under the model's minimum is not cached: %+v", u)
	}
}

func TestScripts(t *testing.T) {
	s := start(t)
	s.Script("conv-a", FactsReply(map[string]any{"n": 1}), RateLimited(time.Second))
	s.ScriptMarker("#marker", TextReply("marked"))
	s.ScriptNext(TextReply("next"))
	body := func(user, text string) string {
		return `{"model":"m","max_tokens":10,"metadata":{"user_id":"` + user + `"},"messages":[{"role":"user","content":"` + text + `"}]}`
	}
	a := post(t, s, body(UserID("conv-a"), "x"), nil)
	if !strings.Contains(string(a.body), `{\"n\":1}`) {
		t.Errorf("conversation script 1: %s", a.body)
	}
	if a := post(t, s, body(UserID("conv-a"), "x"), nil); a.status != 429 {
		t.Errorf("conversation script 2: %d", a.status)
	}
	if a := post(t, s, body("someone", "hi #marker"), nil); !strings.Contains(string(a.body), "marked") {
		t.Errorf("marker script: %s", a.body)
	}
	if a := post(t, s, body(UserID("conv-a"), "x"), nil); !strings.Contains(string(a.body), `"next"`) {
		t.Errorf("used-up conversation scripts fall through to the next queue: %s", a.body)
	}
	if a := post(t, s, body("", "hello"), nil); a.status != 200 || !strings.Contains(string(a.body), "<data>") {
		t.Errorf("then the default responder: %s", a.body)
	}
	if n := s.RequestCount(); n != 5 {
		t.Errorf("recorded %d", n)
	}
	s.Reset()
	if s.RequestCount() != 0 {
		t.Error("Reset keeps requests")
	}
}

func TestLatencyEndsWithTheClient(t *testing.T) {
	s := start(t, WithLatency(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/v1/messages", strings.NewReader(simple))
	req.Header.Set("x-api-key", DefaultAPIKey)
	req.Header.Set("anthropic-version", APIVersion)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("want a timeout")
	}
}

func TestRuleOfThumb(t *testing.T) {
	tests := []struct {
		text                     string
		intent, budget, timeline any
		decision                 any
		action                   string
		replyLang                string // "vi" or "en": a word the reply must hold
	}{
		{"Cho em xin báo giá gói Pro, ngân sách khoảng 50 triệu, cần triển khai trong tháng này. Em là giám đốc.", "quote", "50 triệu", "tháng này", true, "handoff_to_sale", "Dạ"},
		{"How much is the Pro plan? My budget is $500 and I need it this week", "quote", "$500", "this week", nil, "handoff_to_sale", "sales"},
		{"Toi muon dung thu demo", "demo", nil, nil, nil, "handoff_to_sale", "Dạ"},
		{"Cho tôi gặp nhân viên tư vấn", "human_request", nil, nil, nil, "handoff_to_sale", "chuyển"},
		{"Phần mềm bị lỗi, tôi muốn khiếu nại", "complaint", nil, nil, nil, "handoff_to_support", "rất tiếc"},
		{"Kiếm tiền online nhanh, click vào link", "spam", nil, nil, nil, "ignore", "Dạ"},
		{"I need help, I cannot log in", "support", nil, nil, nil, "reply", "help"},
		{"Sếp tôi sẽ quyết định, báo giá giúp", "quote", nil, nil, false, "ask_info", "Dạ"},
		{"ok", "other", nil, nil, nil, "reply", "Thanks"},
	}
	for _, tt := range tests {
		req := &Request{Messages: []Message{{Role: "user", Blocks: []Block{{Type: "text", Text: tt.text}}}}}
		m := RuleOfThumb(req).Facts.(map[string]any)
		if m["intent"] != tt.intent || m["budget"] != tt.budget || m["timeline"] != tt.timeline || m["decision_maker"] != tt.decision || m["action"] != tt.action {
			t.Errorf("%q → %v", tt.text, m)
		}
		if !strings.Contains(m["reply"].(string), tt.replyLang) {
			t.Errorf("%q → reply %q", tt.text, m["reply"])
		}
		if e := m["lead_estimate"].(int); e < 0 || e > 100 {
			t.Errorf("estimate %d", e)
		}
	}
	// A quote quotes the prompt's own knowledge, never an invented price.
	req := &Request{System: []Block{{Type: "text", Text: "<knowledge>\n<section title=\"Pro\">\nprice: 599.000đ mỗi tháng\n</section>\n</knowledge>"}},
		Messages: []Message{{Role: "user", Blocks: []Block{{Type: "text", Text: "giá gói pro?"}}}}}
	if m := RuleOfThumb(req).Facts.(map[string]any); !strings.Contains(m["reply"].(string), "599.000đ") {
		t.Errorf("reply %q", m["reply"])
	}
}

func TestConform(t *testing.T) {
	schema := json.RawMessage(`{"type":"object","additionalProperties":false,"required":["label","score","tags","nested"],"properties":{
		"label":{"type":"string","enum":["hot","cold"]},"score":{"type":"integer","minimum":1},"tags":{"type":"array"},
		"intent":{"type":"string"},"nested":{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}}}`)
	got := Conform(map[string]any{"intent": "quote", "label": "warm", "extra": 1}, schema)
	b, _ := json.Marshal(got)
	if string(b) != `{"intent":"quote","label":"hot","nested":{"ok":false},"score":1,"tags":[]}` {
		t.Errorf("got %s", b)
	}
}
