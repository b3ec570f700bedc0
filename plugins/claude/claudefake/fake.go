// Package claudefake is a fake of Anthropic's Messages API for tests, the
// hub's end-to-end tests and the sandbox. It speaks the wire format of
// ../../../shared/reference/anthropic-messages.md: the same headers, the same
// error envelopes and status codes, tool_use blocks for forced tools, JSON
// text under output_config.format, and usage with cache reads and writes.
//
// Replies are deterministic: scripted per conversation (see UserID), per
// marker in the last user message, or in a global queue; otherwise a
// rule-of-thumb responder derives intent and BANT facts from Vietnamese and
// English keywords so the sandbox behaves plausibly without scripts.
//
//	fake := claudefake.New()
//	url := fake.Start() // loopback; Close when done
//	fake.Script("zalo:oa1:u42", claudefake.RateLimited(3*time.Second), claudefake.FactsReply(facts))
package claudefake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultAPIKey is the key the fake accepts unless WithAPIKeys says otherwise.
const DefaultAPIKey = "sk-ant-fake-0000"

// APIVersion is the anthropic-version the fake requires.
const APIVersion = "2023-06-01"

// MaxBodyBytes is the Messages API's request size limit (32 MB).
const MaxBodyBytes = 32 << 20

// UserID is the metadata.user_id the Switchboard Claude plugin sends for a
// conversation: the first 32 hex digits of sha256("switchboard:" + key). It is
// an opaque hash, as Anthropic asks, and it lets the fake key scripts by
// conversation without ever seeing the conversation key.
func UserID(conversationKey string) string {
	sum := sha256.Sum256([]byte("switchboard:" + conversationKey))
	return hex.EncodeToString(sum[:16])
}

// Mode is how the request asked for structured output.
type Mode string

const (
	ModeTool       Mode = "tool"        // tool_choice forces one tool
	ModeJSONSchema Mode = "json_schema" // output_config.format
	ModeText       Mode = "text"        // neither
)

// Request is one recorded POST /v1/messages, decoded.
type Request struct {
	Header      http.Header
	Body        []byte
	Model       string
	MaxTokens   int
	System      []Block
	Messages    []Message
	Tools       []Tool
	ToolChoice  *ToolChoice
	Format      *OutputFormat
	UserID      string
	Temperature *float64
	Mode        Mode
	// Status is what the fake answered (200 or the error status).
	Status int
}

// Schema is the JSON schema the request constrains the output to: the
// forced tool's input_schema or output_config.format.schema.
func (r *Request) Schema() json.RawMessage {
	switch r.Mode {
	case ModeTool:
		for _, t := range r.Tools {
			if r.ToolChoice != nil && (t.Name == r.ToolChoice.Name || r.ToolChoice.Type == "any") {
				return t.InputSchema
			}
		}
	case ModeJSONSchema:
		return r.Format.Schema
	}
	return nil
}

// SystemText joins the system blocks.
func (r *Request) SystemText() string {
	parts := make([]string, 0, len(r.System))
	for _, b := range r.System {
		parts = append(parts, b.Text)
	}
	return strings.Join(parts, "\n\n")
}

// LastUserText is the text of the last user message.
func (r *Request) LastUserText() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Text()
		}
	}
	return ""
}

// Option configures a Server.
type Option func(*Server)

// WithAPIKeys sets the accepted x-api-key values.
func WithAPIKeys(keys ...string) Option {
	return func(s *Server) {
		s.keys = map[string]bool{}
		for _, k := range keys {
			s.keys[k] = true
		}
	}
}

// WithLatency delays every answer, like a real model does (benchmarks use
// about 800 ms). A cancelled client request ends the wait.
func WithLatency(d time.Duration) Option { return func(s *Server) { s.latency = d } }

// WithCacheMinTokens overrides the per-model minimum cacheable prefix, so
// tests with short prompts see cache writes and reads.
func WithCacheMinTokens(n int64) Option { return func(s *Server) { s.cacheMin = n } }

// WithClock sets the clock used for cache expiry and rate-limit resets.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithResponder replaces the rule-of-thumb responder used when no script
// matches.
func WithResponder(f func(*Request) Reply) Option { return func(s *Server) { s.responder = f } }

// WithForcedToolRejected sets the model id prefixes that answer a forced
// tool_choice with a 400, as the newest models do. The default is
// claude-sonnet-5-5 and claude-opus-5-5.
func WithForcedToolRejected(prefixes ...string) Option {
	return func(s *Server) { s.noForcedTool = prefixes }
}

// WithMaxBodyBytes lowers the 413 threshold (default 32 MB).
func WithMaxBodyBytes(n int64) Option { return func(s *Server) { s.maxBody = n } }

// Server is the fake. It is an http.Handler; Start serves it on loopback.
type Server struct {
	keys         map[string]bool
	latency      time.Duration
	cacheMin     int64
	now          func() time.Time
	responder    func(*Request) Reply
	noForcedTool []string
	maxBody      int64

	mu       sync.Mutex
	byConv   map[string][]Reply
	byMarker []markerScript
	next     []Reply
	cache    map[string]cacheEntry
	requests []*Request
	ts       *httptest.Server
}

type markerScript struct {
	marker  string
	replies []Reply
}

// New returns an unstarted fake.
func New(opts ...Option) *Server {
	s := &Server{
		keys:         map[string]bool{DefaultAPIKey: true},
		cacheMin:     -1,
		now:          time.Now,
		responder:    RuleOfThumb,
		noForcedTool: []string{"claude-sonnet-5-5", "claude-opus-5-5"},
		maxBody:      MaxBodyBytes,
		byConv:       map[string][]Reply{},
		cache:        map[string]cacheEntry{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Start serves the fake on a loopback port and returns its base URL.
func (s *Server) Start() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ts == nil {
		s.ts = httptest.NewServer(s)
	}
	return s.ts.URL
}

// URL is the base URL after Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// Close stops the server started by Start.
func (s *Server) Close() {
	s.mu.Lock()
	ts := s.ts
	s.ts = nil
	s.mu.Unlock()
	if ts != nil {
		ts.Close()
	}
}

// Script queues replies for the conversation whose key is conversationKey
// (matched through metadata.user_id, see UserID). They are used in order;
// once used up the conversation falls back to the default responder.
func (s *Server) Script(conversationKey string, replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := UserID(conversationKey)
	s.byConv[id] = append(s.byConv[id], replies...)
}

// ScriptMarker queues replies for requests whose last user message contains
// marker.
func (s *Server) ScriptMarker(marker string, replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.byMarker {
		if s.byMarker[i].marker == marker {
			s.byMarker[i].replies = append(s.byMarker[i].replies, replies...)
			return
		}
	}
	s.byMarker = append(s.byMarker, markerScript{marker: marker, replies: replies})
}

// ScriptNext queues replies for whichever requests come next and match no
// conversation or marker script.
func (s *Server) ScriptNext(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = append(s.next, replies...)
}

// Reset forgets scripts, recorded requests and the prompt cache.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byConv = map[string][]Reply{}
	s.byMarker = nil
	s.next = nil
	s.cache = map[string]cacheEntry{}
	s.requests = nil
}

// Requests returns the POST /v1/messages requests seen so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
	}
	return out
}

// RequestCount is len(Requests()) without the copies.
func (s *Server) RequestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *Server) pick(req *Request) Reply {
	s.mu.Lock()
	if q := s.byConv[req.UserID]; req.UserID != "" && len(q) > 0 {
		s.byConv[req.UserID] = q[1:]
		s.mu.Unlock()
		return q[0]
	}
	last := req.LastUserText()
	for i := range s.byMarker {
		m := &s.byMarker[i]
		if len(m.replies) > 0 && strings.Contains(last, m.marker) {
			r := m.replies[0]
			m.replies = m.replies[1:]
			s.mu.Unlock()
			return r
		}
	}
	if len(s.next) > 0 {
		r := s.next[0]
		s.next = s.next[1:]
		s.mu.Unlock()
		return r
	}
	s.mu.Unlock()
	return s.responder(req)
}

// ServeHTTP implements the subset of the API the plugin uses:
// POST /v1/messages and GET /v1/models/{id}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newID("req_011C")
	w.Header().Set("request-id", reqID)
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/models/") {
		if bad, ok := s.checkHeaders(r); !ok {
			s.writeError(w, reqID, bad)
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
		writeJSON(w, http.StatusOK, map[string]any{"type": "model", "id": id, "display_name": id, "created_at": "2025-10-01T00:00:00Z"})
		return
	}
	if r.URL.Path != "/v1/messages" {
		s.writeError(w, reqID, ErrorReply(http.StatusNotFound, "not_found_error", "Not Found"))
		return
	}
	if r.Method != http.MethodPost {
		s.writeError(w, reqID, ErrorReply(http.StatusMethodNotAllowed, "invalid_request_error", "Method Not Allowed"))
		return
	}
	// rec is filled completely before it is shared, so Requests() can copy
	// it while the answer is still being written; only Status changes
	// later, under the lock.
	rec := &Request{Header: r.Header.Clone(), Status: http.StatusOK}
	body, readErr := io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
	rec.Body = body
	var bad *Reply
	if reply, ok := s.checkHeaders(r); !ok {
		bad = &reply
	} else if readErr != nil {
		reply := InvalidRequest("could not read request body")
		bad = &reply
	} else if int64(len(body)) > s.maxBody {
		reply := TooLarge()
		bad = &reply
	} else if msg := s.decode(body, rec); msg != "" {
		reply := InvalidRequest(msg)
		bad = &reply
	}
	if bad != nil {
		rec.Status = bad.Status
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	if bad != nil {
		s.writeError(w, reqID, *bad)
		return
	}
	reply := s.pick(rec)
	if d := s.latency + reply.Latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if reply.isError() {
		s.mu.Lock()
		rec.Status = reply.Status
		s.mu.Unlock()
		s.writeError(w, reqID, reply)
		return
	}
	s.writeMessage(w, rec, reply)
}

// checkHeaders checks the two headers every call needs and returns the
// error the API would answer when one is wrong.
func (s *Server) checkHeaders(r *http.Request) (Reply, bool) {
	key := r.Header.Get("x-api-key")
	version := r.Header.Get("anthropic-version")
	switch {
	case key == "":
		return ErrorReply(http.StatusUnauthorized, "authentication_error", "x-api-key header is required"), false
	case !s.keys[key]:
		return Unauthorized(), false
	case version == "":
		return InvalidRequest("anthropic-version: header is required"), false
	case version != APIVersion:
		return InvalidRequest(fmt.Sprintf("anthropic-version: invalid version %q", version)), false
	}
	return Reply{}, true
}

// decode fills rec from body and returns the 400 message of the first
// problem the real API would reject, or "".
func (s *Server) decode(body []byte, rec *Request) string {
	var wr wireRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&wr); err != nil {
		return "There was an error parsing the body of your request: " + err.Error()
	}
	rec.Model, rec.MaxTokens, rec.Tools, rec.ToolChoice = wr.Model, wr.MaxTokens, wr.Tools, wr.ToolChoice
	rec.Temperature = wr.Temperature
	if wr.Metadata != nil {
		rec.UserID = wr.Metadata.UserID
	}
	if wr.OutputConfig != nil {
		rec.Format = wr.OutputConfig.Format
	}
	sys, err := blocksOf(wr.System, "system")
	if err != nil {
		return err.Error()
	}
	rec.System = sys
	for i, m := range wr.Messages {
		bs, err := blocksOf(m.Content, fmt.Sprintf("messages.%d.content", i))
		if err != nil {
			return err.Error()
		}
		rec.Messages = append(rec.Messages, Message{Role: m.Role, Blocks: bs})
	}
	switch {
	case rec.ToolChoice != nil && (rec.ToolChoice.Type == "tool" || rec.ToolChoice.Type == "any"):
		rec.Mode = ModeTool
	case rec.Format != nil:
		rec.Mode = ModeJSONSchema
	default:
		rec.Mode = ModeText
	}

	switch {
	case wr.Model == "":
		return "model: Field required"
	case wr.MaxTokens < 1:
		return "max_tokens: Input should be greater than or equal to 1"
	case len(wr.Messages) == 0:
		return "messages: Field required"
	case wr.Stream:
		return "stream: the fake serves non-streaming requests only"
	}
	breakpoints := 0
	if wr.CacheControl != nil {
		breakpoints++
	}
	for i, b := range sys {
		if b.Type != "text" {
			return fmt.Sprintf("system.%d.type: Input should be 'text'", i)
		}
		if b.Text == "" {
			return "system: text content blocks must be non-empty"
		}
		if b.CacheControl != nil {
			breakpoints++
		}
	}
	for i, m := range rec.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		if len(m.Blocks) == 0 {
			return fmt.Sprintf("messages.%d: all messages must have non-empty content except for the optional final assistant message", i)
		}
		for j, b := range m.Blocks {
			switch b.Type {
			case "text":
				if b.Text == "" {
					return "messages: text content blocks must be non-empty"
				}
			case "image", "tool_use", "tool_result", "document":
			default:
				return fmt.Sprintf("messages.%d.content.%d.type: unknown content block type %q", i, j, b.Type)
			}
			if b.CacheControl != nil {
				breakpoints++
			}
		}
	}
	for _, t := range rec.Tools {
		if t.CacheControl != nil {
			breakpoints++
		}
	}
	if breakpoints > 4 {
		return fmt.Sprintf("A maximum of 4 blocks with cache_control may be provided. Found %d.", breakpoints)
	}
	if rec.Mode == ModeTool && rec.ToolChoice.Type == "tool" {
		found := false
		for _, t := range rec.Tools {
			found = found || t.Name == rec.ToolChoice.Name
		}
		if !found {
			return fmt.Sprintf("tool_choice.name: Tool '%s' not found in tools", rec.ToolChoice.Name)
		}
		for _, p := range s.noForcedTool {
			if strings.HasPrefix(rec.Model, p) {
				return fmt.Sprintf("tool_choice: forced tool use is not supported on %s; use output_config.format for structured output", rec.Model)
			}
		}
	}
	if rec.Format != nil {
		if rec.Format.Type != "json_schema" {
			return "output_config.format.type: Input should be 'json_schema'"
		}
		if msg := checkOutputSchema(rec.Format.Schema); msg != "" {
			return "output_config.format.schema: " + msg
		}
	}
	return ""
}

// checkOutputSchema rejects what structured outputs reject: numeric and
// length bounds, and objects that allow extra properties.
func checkOutputSchema(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "Input should be a valid JSON schema object"
	}
	m, ok := v.(map[string]any)
	if !ok {
		return "Input should be a valid JSON schema object"
	}
	return checkSchemaNode(m)
}

var unsupportedKeywords = []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
	"minLength", "maxLength", "maxItems", "uniqueItems", "minProperties", "maxProperties"}

func checkSchemaNode(m map[string]any) string {
	typ, _ := m["type"].(string)
	if _, isList := m["type"].([]any); isList {
		typ = "list"
	}
	for _, k := range unsupportedKeywords {
		if _, ok := m[k]; ok {
			return fmt.Sprintf("For '%s' type, property '%s' is not supported", typ, k)
		}
	}
	if typ == "object" {
		if ap, ok := m["additionalProperties"].(bool); !ok || ap {
			return "For 'object' type, 'additionalProperties' must be explicitly set to false"
		}
	}
	if props, ok := m["properties"].(map[string]any); ok {
		for _, p := range props {
			if pm, ok := p.(map[string]any); ok {
				if msg := checkSchemaNode(pm); msg != "" {
					return msg
				}
			}
		}
	}
	for _, k := range []string{"anyOf", "allOf", "oneOf"} {
		if list, ok := m[k].([]any); ok {
			for _, p := range list {
				if pm, ok := p.(map[string]any); ok {
					if msg := checkSchemaNode(pm); msg != "" {
						return msg
					}
				}
			}
		}
	}
	if it, ok := m["items"].(map[string]any); ok {
		return checkSchemaNode(it)
	}
	return ""
}

func (s *Server) writeMessage(w http.ResponseWriter, rec *Request, reply Reply) {
	var content []respBlock
	stop := "end_turn"
	text := func(t string) { content = append(content, respBlock{Type: "text", Text: &t}) }
	structured := ""
	switch {
	case reply.Raw != "":
		structured = reply.Raw
	case reply.Facts != nil:
		structured = string(mustJSON(reply.Facts))
	}
	mode := rec.Mode
	if reply.IgnoreFormat {
		mode = ModeText
	}
	switch {
	case mode == ModeText:
		out := reply.Text
		if reply.Raw != "" {
			out = strings.TrimSpace(out + "\n\n" + reply.Raw)
		} else if reply.Facts != nil {
			out = strings.TrimSpace(out + "\n\n<data>" + structured + "</data>")
		}
		text(out)
	case structured == "":
		text(reply.Text)
	case mode == ModeTool && json.Valid([]byte(structured)) && strings.HasPrefix(strings.TrimSpace(structured), "{"):
		name := ""
		if rec.ToolChoice != nil {
			name = rec.ToolChoice.Name
		}
		if name == "" && len(rec.Tools) > 0 {
			name = rec.Tools[0].Name
		}
		content = append(content, respBlock{Type: "tool_use", ID: newID("toolu_01"), Name: name, Input: json.RawMessage(structured)})
		stop = "tool_use"
	default: // JSON schema mode, or a forced tool the model answered in text
		text(structured)
	}
	if reply.StopReason != "" {
		stop = reply.StopReason
	}
	var outLen int
	for _, b := range content {
		if b.Text != nil {
			outLen += len(*b.Text)
		}
		outLen += len(b.Input)
	}
	resp := wireResponse{
		ID: newID("msg_01"), Type: "message", Role: "assistant", Model: rec.Model,
		Content: content, StopReason: stop, Usage: s.usage(rec, outLen),
	}
	s.rateLimitHeaders(w.Header(), 49, time.Minute)
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) rateLimitHeaders(h http.Header, remaining int, reset time.Duration) {
	at := s.now().Add(reset).UTC().Format(time.RFC3339)
	h.Set("anthropic-ratelimit-requests-limit", "50")
	h.Set("anthropic-ratelimit-requests-remaining", strconv.Itoa(remaining))
	h.Set("anthropic-ratelimit-requests-reset", at)
	for _, kind := range []string{"tokens", "input-tokens", "output-tokens"} {
		h.Set("anthropic-ratelimit-"+kind+"-limit", "50000")
		if remaining == 0 && kind != "output-tokens" {
			h.Set("anthropic-ratelimit-"+kind+"-remaining", "0")
		} else {
			h.Set("anthropic-ratelimit-"+kind+"-remaining", "48000")
		}
		h.Set("anthropic-ratelimit-"+kind+"-reset", at)
	}
}

func (s *Server) writeError(w http.ResponseWriter, reqID string, r Reply) {
	for k, vs := range r.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if r.Status == http.StatusTooManyRequests && r.ErrorDetails == nil {
		reset := r.RetryAfter
		if reset <= 0 {
			reset = time.Minute
		}
		s.rateLimitHeaders(w.Header(), 0, reset)
	}
	if r.RetryAfter > 0 {
		w.Header().Set("retry-after", strconv.Itoa(int((r.RetryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, r.Status, wireError{Type: "error", RequestID: reqID,
		Error: wireErrorBody{Type: r.ErrorType, Message: r.ErrorMessage, Details: r.ErrorDetails}})
}

// writeJSON writes v as the API does: without Go's HTML escaping of <, >
// and &, which matters to a client looking for "<data>" in the text.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimRight(buf.Bytes(), "\n"))
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID makes ids shaped like the API's (msg_01…, toolu_01…, req_011C…).
func newID(prefix string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for range 22 {
		b.WriteByte(base62[rand.IntN(len(base62))])
	}
	return b.String()
}
