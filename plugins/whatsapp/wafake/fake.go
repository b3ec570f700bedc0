// Package wafake is a fake of the WhatsApp Business Cloud API for tests,
// the sandbox and benchmarks: a Graph API server on loopback that checks the
// Bearer token, answers POST /{version}/{phone-number-id}/messages with
// Meta's success and error bodies, enforces the 24-hour window and an
// optional throughput limit, can be told to fail, and records what it got;
// plus builders for webhook notifications signed with the app secret
// exactly as Meta signs them.
//
// Wire format: ../../../shared/reference/whatsapp-cloud.md.
package wafake

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults, the sample values of Meta's documentation.
const (
	DefaultAppSecret          = "wafake-app-secret"
	DefaultAccessToken        = "wafake-access-token"
	DefaultVerifyToken        = "wafake-verify-token"
	DefaultPhoneNumberID      = "106540352242922"
	DefaultDisplayPhoneNumber = "15550783881"
	DefaultWABAID             = "102290129340398"
	DefaultAPIVersion         = "v25.0"
)

// Options configure a Fake; zero values take the defaults above.
type Options struct {
	AppSecret          string
	AccessToken        string
	VerifyToken        string
	PhoneNumberID      string
	DisplayPhoneNumber string
	WABAID             string
	APIVersion         string // only used by ChannelConfig; the fake serves any vN.N
	// ThroughputMPS > 0 answers 130429 to sends beyond that many in one
	// second of the fake's clock (20 for a coexistence number).
	ThroughputMPS int
	// IgnoreWindow accepts free-form sends to users who never wrote.
	IgnoreWindow bool
	// AsyncWindowErrors accepts free-form sends outside the window with 200,
	// as Meta sometimes does, and marks them to fail with 131047 in their
	// "failed" status (StatusOf) instead of answering 400 at once.
	AsyncWindowErrors bool
	// Now is the fake's clock (timestamps, window, throughput).
	Now func() time.Time
}

// Fake is a running fake Graph API. Safe for concurrent use.
type Fake struct {
	// URL is the base URL to give the plugin as base_url.
	URL string

	opts   Options
	server *httptest.Server

	mu       sync.Mutex
	token    string
	expired  bool
	failNext []*GraphError
	failAll  *GraphError
	windows  map[string]time.Time
	second   int64
	inSecond int
	seq      int
	requests []Request
	sent     []SentMessage
	changed  chan struct{}
}

// Request is one call the fake received.
type Request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
	// Status is what the fake answered.
	Status int
}

// SentMessage is one message the fake accepted (HTTP 200).
type SentMessage struct {
	ID        string // the wamid it answered
	To        string // "to" (wa_id) or "recipient" (BSUID)
	Type      string
	Text      string // text body, caption, interactive body or template name
	Template  string
	Payload   map[string]any
	Raw       []byte
	At        time.Time
	Opaque    string      // biz_opaque_callback_data
	AsyncFail *GraphError // set when the message will fail asynchronously
}

// New starts a fake on loopback. Close it when done (Start does that for a
// test).
func New(opts Options) *Fake {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&opts.AppSecret, DefaultAppSecret)
	def(&opts.AccessToken, DefaultAccessToken)
	def(&opts.VerifyToken, DefaultVerifyToken)
	def(&opts.PhoneNumberID, DefaultPhoneNumberID)
	def(&opts.DisplayPhoneNumber, DefaultDisplayPhoneNumber)
	def(&opts.WABAID, DefaultWABAID)
	def(&opts.APIVersion, DefaultAPIVersion)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &Fake{opts: opts, token: opts.AccessToken, windows: map[string]time.Time{}, changed: make(chan struct{})}
	f.server = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	f.URL = f.server.URL
	return f
}

// Start is New plus Close at the end of the test.
func Start(t testing.TB, opts Options) *Fake {
	t.Helper()
	f := New(opts)
	t.Cleanup(f.Close)
	return f
}

// Close stops the server.
func (f *Fake) Close() { f.server.Close() }

// Handler serves the fake's Graph API, to mount it elsewhere (sandbox).
func (f *Fake) Handler() http.Handler { return http.HandlerFunc(f.serveHTTP) }

// Options returns the effective options (defaults filled in).
func (f *Fake) Options() Options { return f.opts }

// AppSecret, AccessToken, VerifyToken, PhoneNumberID and DisplayPhoneNumber
// are the identities the fake uses and expects.
func (f *Fake) AppSecret() string          { return f.opts.AppSecret }
func (f *Fake) VerifyToken() string        { return f.opts.VerifyToken }
func (f *Fake) PhoneNumberID() string      { return f.opts.PhoneNumberID }
func (f *Fake) DisplayPhoneNumber() string { return f.opts.DisplayPhoneNumber }
func (f *Fake) AccessToken() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token
}

func (f *Fake) now() time.Time { return f.opts.Now() }

// ChannelConfig is a config block for the whatsapp plugin pointing at this
// fake. Keys in extra override or add; a nil value removes a key.
func (f *Fake) ChannelConfig(extra map[string]any) json.RawMessage {
	c := map[string]any{
		"phone_number_id": f.opts.PhoneNumberID,
		"access_token":    f.AccessToken(),
		"app_secret":      f.opts.AppSecret,
		"verify_token":    f.opts.VerifyToken,
		"base_url":        f.URL,
		"api_version":     f.opts.APIVersion,
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c)
	return b
}

// ---------------------------------------------------------------- control

// FailNext makes the next len(errs) message sends answer these errors, in
// order, before any other check but auth.
func (f *Fake) FailNext(errs ...*GraphError) {
	f.mu.Lock()
	f.failNext = append(f.failNext, errs...)
	f.mu.Unlock()
}

// FailAlways makes every send answer e until ClearFailures.
func (f *Fake) FailAlways(e *GraphError) {
	f.mu.Lock()
	f.failAll = e
	f.mu.Unlock()
}

// ClearFailures drops queued and permanent failures.
func (f *Fake) ClearFailures() {
	f.mu.Lock()
	f.failNext, f.failAll = nil, nil
	f.mu.Unlock()
}

// ExpireToken makes the current token answer 190/463 until SetAccessToken.
func (f *Fake) ExpireToken() {
	f.mu.Lock()
	f.expired = true
	f.mu.Unlock()
}

// SetAccessToken accepts a new token (and only it) from now on.
func (f *Fake) SetAccessToken(tok string) {
	f.mu.Lock()
	f.token, f.expired = tok, false
	f.mu.Unlock()
}

// SetThroughput changes the messages-per-second limit (0: none).
func (f *Fake) SetThroughput(mps int) {
	f.mu.Lock()
	f.opts.ThroughputMPS = mps
	f.mu.Unlock()
}

// OpenWindow records a customer message from user at time at (zero: now).
func (f *Fake) OpenWindow(user string, at time.Time) {
	if at.IsZero() {
		at = f.now()
	}
	f.mu.Lock()
	if at.After(f.windows[user]) {
		f.windows[user] = at
	}
	f.mu.Unlock()
}

// CloseWindow forgets user's last message.
func (f *Fake) CloseWindow(user string) {
	f.mu.Lock()
	delete(f.windows, user)
	f.mu.Unlock()
}

// Reset forgets recorded requests and sends (not windows or failures).
func (f *Fake) Reset() {
	f.mu.Lock()
	f.requests, f.sent = nil, nil
	f.mu.Unlock()
}

// Requests returns a copy of every request received.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// Sent returns a copy of every accepted message.
func (f *Fake) Sent() []SentMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]SentMessage(nil), f.sent...)
}

// WaitSent waits until at least n messages were accepted, or ctx ends.
func (f *Fake) WaitSent(ctx context.Context, n int) ([]SentMessage, error) {
	for {
		f.mu.Lock()
		if len(f.sent) >= n {
			out := append([]SentMessage(nil), f.sent...)
			f.mu.Unlock()
			return out, nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return f.Sent(), fmt.Errorf("wafake: waiting for %d sent messages: %w", n, ctx.Err())
		}
	}
}

// ---------------------------------------------------------------- server

var pathRE = regexp.MustCompile(`^/(v\d+\.\d+)/([^/]+)(?:/([a-z_]+))?$`)

func (f *Fake) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	status, hdr, out := f.route(r, body)
	f.mu.Lock()
	f.requests = append(f.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, Status: status})
	f.mu.Unlock()
	for k, vs := range hdr {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func (f *Fake) fail(e *GraphError) (int, http.Header, []byte) {
	f.mu.Lock()
	f.seq++
	trace := fmt.Sprintf("A%06dfakeTrace", f.seq)
	f.mu.Unlock()
	hdr := http.Header{}
	for k, v := range e.Header {
		hdr[k] = v
	}
	if e.HTTPStatus == http.StatusUnauthorized {
		hdr.Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token" "`+e.Message+`"`)
	}
	return e.HTTPStatus, hdr, e.Body(trace)
}

func (f *Fake) route(r *http.Request, body []byte) (int, http.Header, []byte) {
	if strings.HasPrefix(r.URL.Path, "/media/") {
		if e := f.checkAuth(r); e != nil {
			return f.fail(e)
		}
		return http.StatusOK, http.Header{"Content-Type": {"image/jpeg"}}, []byte("fake media " + strings.TrimPrefix(r.URL.Path, "/media/"))
	}
	m := pathRE.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return f.fail(ErrUnknownObject(strings.Trim(r.URL.Path, "/"), strings.ToLower(r.Method)))
	}
	if e := f.checkAuth(r); e != nil {
		return f.fail(e)
	}
	object, edge := m[2], m[3]
	switch {
	case object == f.opts.PhoneNumberID && edge == "messages" && r.Method == http.MethodPost:
		return f.messages(body)
	case object == f.opts.PhoneNumberID && edge == "smb_app_data" && r.Method == http.MethodPost:
		return ok(map[string]any{"messaging_product": "whatsapp", "request_id": f.newID("req")})
	case object == f.opts.PhoneNumberID && edge == "" && r.Method == http.MethodGet:
		return ok(map[string]any{"verified_name": "Switchboard Test", "display_phone_number": f.opts.DisplayPhoneNumber,
			"id": f.opts.PhoneNumberID, "quality_rating": "GREEN", "platform_type": "CLOUD_API", "throughput": map[string]any{"level": "STANDARD"}})
	case edge == "" && r.Method == http.MethodGet && object != f.opts.PhoneNumberID:
		// Media URL lookup: GET /{media-id}.
		return ok(map[string]any{"messaging_product": "whatsapp", "url": f.URL + "/media/" + object,
			"mime_type": "image/jpeg", "sha256": "0000", "file_size": "13", "id": object})
	}
	return f.fail(ErrUnknownObject(object, strings.ToLower(r.Method)))
}

func ok(v any) (int, http.Header, []byte) {
	b, _ := json.Marshal(v)
	return http.StatusOK, nil, b
}

func (f *Fake) checkAuth(r *http.Request) *GraphError {
	f.mu.Lock()
	tok, expired := f.token, f.expired
	f.mu.Unlock()
	got, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !found || got != tok:
		return ErrTokenInvalid()
	case expired:
		return ErrTokenExpired()
	}
	return nil
}

func (f *Fake) messages(body []byte) (int, http.Header, []byte) {
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		return f.fail(ErrInvalidParameter("Request body is not valid JSON"))
	}
	if p["messaging_product"] != "whatsapp" {
		return f.fail(ErrInvalidParameter("The parameter messaging_product is required."))
	}
	to, _ := p["to"].(string)
	toKind := "wa_id"
	if to == "" {
		to, _ = p["recipient"].(string)
		toKind = "user_id"
	}
	if to == "" {
		return f.fail(ErrInvalidParameter("The parameter to is required."))
	}
	typ, _ := p["type"].(string)
	if typ == "" {
		typ = "text"
	}
	obj, _ := p[typ].(map[string]any)
	if obj == nil {
		return f.fail(ErrInvalidParameter("The parameter " + typ + " is required."))
	}
	sm := SentMessage{To: to, Type: typ, Payload: p, Raw: body}
	sm.Opaque, _ = p["biz_opaque_callback_data"].(string)
	switch typ {
	case "text":
		sm.Text, _ = obj["body"].(string)
		if sm.Text == "" {
			return f.fail(ErrInvalidParameter("The parameter text['body'] is required."))
		}
	case "image", "video", "audio", "document", "sticker":
		if obj["id"] == nil && obj["link"] == nil {
			return f.fail(ErrInvalidParameter("Parameter '" + typ + "' must have either 'id' or 'link'."))
		}
		sm.Text, _ = obj["caption"].(string)
	case "interactive":
		if b, ok := obj["body"].(map[string]any); ok {
			sm.Text, _ = b["text"].(string)
		}
	case "template":
		sm.Template, _ = obj["name"].(string)
		lang, _ := obj["language"].(map[string]any)
		if sm.Template == "" || lang == nil || lang["code"] == nil {
			return f.fail(ErrInvalidParameter("The parameter template['name'] and template['language'] are required."))
		}
		sm.Text = sm.Template
	case "reaction":
		sm.Text, _ = obj["emoji"].(string)
	default:
		return f.fail(ErrInvalidParameter("Unsupported message type " + typ))
	}

	now := f.now()
	f.mu.Lock()
	if len(f.failNext) > 0 {
		e := f.failNext[0]
		f.failNext = f.failNext[1:]
		f.mu.Unlock()
		return f.fail(e)
	}
	if e := f.failAll; e != nil {
		f.mu.Unlock()
		return f.fail(e)
	}
	if mps := f.opts.ThroughputMPS; mps > 0 {
		if sec := now.Unix(); sec != f.second {
			f.second, f.inSecond = sec, 0
		}
		if f.inSecond >= mps {
			f.mu.Unlock()
			return f.fail(ErrThroughput())
		}
		f.inSecond++
	}
	if typ != "template" && !f.opts.IgnoreWindow {
		last, seen := f.windows[to]
		if !seen || !now.Before(last.Add(24*time.Hour)) {
			if !f.opts.AsyncWindowErrors {
				f.mu.Unlock()
				return f.fail(ErrReengagement())
			}
			sm.AsyncFail = ErrReengagement()
		}
	}
	f.seq++
	sm.ID = wamid(to, f.seq)
	sm.At = now
	f.sent = append(f.sent, sm)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()

	msg := map[string]any{"id": sm.ID}
	if typ == "template" {
		msg["message_status"] = "accepted"
	}
	return ok(map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []any{map[string]any{"input": to, toKind: to}},
		"messages":          []any{msg},
	})
}

// wamid makes an id shaped like Meta's: "wamid." + base64 of a protobuf-ish
// blob that embeds the user's number.
func wamid(to string, seq int) string {
	raw := fmt.Sprintf("\x1c\x18\x0b%s\x15\x02\x00\x11\x18\x12%020X\x00", to, seq)
	return "wamid." + base64.StdEncoding.EncodeToString([]byte(raw))
}

func (f *Fake) newID(prefix string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	return fmt.Sprintf("%s_%d_%d", prefix, f.now().Unix(), f.seq)
}
