// Package zalofake is a fake Zalo Official Account platform for tests, the
// sandbox and benchmarks. It speaks Zalo's wire format (see
// shared/reference/zalo-oa.md): it signs the webhooks it sends the way Zalo
// does (X-ZEvent-Signature: mac=sha256(app_id+body+timestamp+OA secret key)),
// serves the v3 customer-service message endpoint (HTTP 200 even on failure,
// the "error" field decides) and the OAuth v4 token endpoint (single-use,
// rotating refresh tokens), can be told to fail, rate-limit or expire a
// token, and records what it received. Every method is safe for concurrent
// use.
//
// One server plays both Zalo hosts (openapi.zalo.me and oauth.zaloapp.com):
// point both base URLs of the plugin at URL().
package zalofake

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Zalo's error codes the fake answers with (reference §4 and §5).
const (
	CodeOK                 = 0
	CodeRateLimited        = -32
	CodeParamInvalid       = -201
	CodeOutOfQuota         = -211
	CodeNotFollower        = -213
	CodeTokenInvalid       = -216
	CodeTokenExpired       = -220
	CodeNoPermission       = -223
	CodeUserInactive       = -227
	CodeNoInteraction      = -230
	CodeNoValidInteraction = -232
	CodeMessageTypeInvalid = -233

	CodeInvalidRefreshToken = -14014
	CodeRefreshTokenExpired = -14020
	CodeInvalidCode         = -14005
	// CodeInvalidSecretKey is the fake's answer to a wrong secret_key header.
	// The reference lists no code for it; the value is the fake's choice.
	CodeInvalidSecretKey = -14002
)

// Paths of the endpoints the fake serves.
const (
	PathSendCS      = "/v3.0/oa/message/cs"
	PathAccessToken = "/v4/oa/access_token"
	PathGetOA       = "/v2.0/oa/getoa"
	PathUserDetail  = "/v3.0/oa/user/detail"
)

// Config sets the fake's identity and behaviour. Zero values get defaults.
type Config struct {
	AppID       string
	OAID        string
	OASecretKey string // signs webhooks
	AppSecret   string // the secret_key header of the token endpoint
	// AccessTTL is the lifetime of issued access tokens (Zalo: 25 h,
	// answered as expires_in "90000").
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token (Zalo: 3 months).
	RefreshTTL time.Duration
	// Now is the fake's clock; time.Now when nil.
	Now func() time.Time

	// EnforceReplyQuota makes the send endpoint refuse like Zalo does when
	// the user has not written within ReplyWindow (-230) or the OA already
	// used its FreeReplies since the user's last message (-211). A user's
	// message counts once the fake has produced its webhook.
	EnforceReplyQuota bool
	FreeReplies       int           // default 8
	ReplyWindow       time.Duration // default 48h

	// EchoURL, when set, receives a signed oa_send_* echo of every message
	// the fake accepts, as Zalo may echo API sends to the webhook.
	EchoURL string
}

// Server is a running fake.
type Server struct {
	cfg Config
	srv *httptest.Server

	mu        sync.Mutex
	access    map[string]time.Time // access token → expiry
	refresh   map[string]*refreshState
	codes     map[string]bool // unused authorization codes
	current   [2]string       // the latest access and refresh token issued
	sends     []Send
	tokenReqs []TokenRequest
	calls     []Call
	faults    []fault
	oauthFail []fault
	users     map[string]*userState
	profiles  map[string]string
	echoURL   string
	echoes    []Echo
	changed   chan struct{}
}

// Echo is one echo webhook the fake delivered for an accepted send.
type Echo struct {
	MessageID string
	Status    int   // the receiver's HTTP status
	Err       error // transport error
}

type refreshState struct {
	expires time.Time
	used    bool
}

type userState struct {
	lastMessage time.Time
	replies     int
}

type fault struct {
	code    int
	message string
	status  int
	header  http.Header
}

// Send is one call to the customer-service message endpoint.
type Send struct {
	At          time.Time
	AccessToken string
	UserID      string
	Body        []byte          // the raw request body
	Message     json.RawMessage // the "message" object as sent
	Text        string
	MessageID   string // set when the fake accepted the message
	ErrorCode   int    // the "error" the fake answered
}

// TokenRequest is one call to the OAuth v4 token endpoint.
type TokenRequest struct {
	At           time.Time
	GrantType    string
	RefreshToken string
	Code         string
	AppID        string
	SecretKeyOK  bool
	ErrorCode    int
	NewRefresh   string // the refresh token issued, on success
}

// Call is any request the fake received.
type Call struct {
	At     time.Time
	Method string
	Path   string
}

// New starts a fake on a loopback port. Close it when done.
func New(cfg Config) *Server {
	if cfg.AppID == "" {
		cfg.AppID = NewID()
	}
	if cfg.OAID == "" {
		cfg.OAID = NewID()
	}
	if cfg.OASecretKey == "" {
		cfg.OASecretKey = randToken(15)
	}
	if cfg.AppSecret == "" {
		cfg.AppSecret = randToken(15)
	}
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = 90000 * time.Second
	}
	if cfg.RefreshTTL == 0 {
		cfg.RefreshTTL = 90 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FreeReplies == 0 {
		cfg.FreeReplies = 8
	}
	if cfg.ReplyWindow == 0 {
		cfg.ReplyWindow = 48 * time.Hour
	}
	s := &Server{
		cfg:      cfg,
		access:   map[string]time.Time{},
		refresh:  map[string]*refreshState{},
		codes:    map[string]bool{},
		users:    map[string]*userState{},
		profiles: map[string]string{},
		echoURL:  cfg.EchoURL,
		changed:  make(chan struct{}),
	}
	s.mu.Lock()
	s.issueLocked()
	s.mu.Unlock()
	s.srv = httptest.NewServer(s.Handler())
	return s
}

// URL is the base URL of both fake hosts (openapi and oauth).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Config returns the fake's configuration with defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Tokens returns the latest access and refresh token the fake issued.
func (s *Server) Tokens() (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current[0], s.current[1]
}

// IssueTokens issues a fresh token pair, as completing the OAuth consent
// again would. Earlier pairs stay valid until used or expired.
func (s *Server) IssueTokens() (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issueLocked()
	return s.current[0], s.current[1]
}

// IssueAuthCode returns an authorization code for the code grant.
func (s *Server) IssueAuthCode() string {
	c := randToken(24)
	s.mu.Lock()
	s.codes[c] = true
	s.mu.Unlock()
	return c
}

func (s *Server) issueLocked() {
	now := s.cfg.Now()
	a, r := randToken(48), randToken(48)
	s.access[a] = now.Add(s.cfg.AccessTTL)
	s.refresh[r] = &refreshState{expires: now.Add(s.cfg.RefreshTTL)}
	s.current = [2]string{a, r}
}

// PluginConfig returns a config block for the zalo plugin pointing at this
// fake with its current tokens; extra keys are merged over it.
func (s *Server) PluginConfig(extra map[string]any) json.RawMessage {
	a, r := s.Tokens()
	m := map[string]any{
		"app_id":        s.cfg.AppID,
		"oa_id":         s.cfg.OAID,
		"app_secret":    s.cfg.AppSecret,
		"oa_secret_key": s.cfg.OASecretKey,
		"access_token":  a,
		"refresh_token": r,
		"base_url":      s.URL(),
	}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

// ---------------------------------------------------------------- controls

// FailSends makes the next n send calls answer HTTP 200 with the given Zalo
// error code and message (as Zalo does).
func (s *Server) FailSends(n int, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{code: code, message: message})
	}
}

// RateLimitSends makes the next n send calls answer Zalo's per-app limit
// error (-32).
func (s *Server) RateLimitSends(n int) {
	s.FailSends(n, CodeRateLimited, "The application has reached the API call limit")
}

// FailSendsHTTP makes the next n send calls answer a bare HTTP status (a
// proxy or outage, not Zalo's API), with optional headers such as
// Retry-After.
func (s *Server) FailSendsHTTP(n int, status int, header http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{status: status, header: header})
	}
}

// FailTokenRefresh makes the next n token calls answer the given error code
// without consuming the refresh token.
func (s *Server) FailTokenRefresh(n int, code int, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.oauthFail = append(s.oauthFail, fault{code: code, message: description})
	}
}

// ExpireAccessTokens expires every access token issued so far, as if 25
// hours had passed for them.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.cfg.Now().Add(-time.Second)
	for k := range s.access {
		s.access[k] = past
	}
}

// RevokeRefreshTokens invalidates every refresh token issued so far.
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.refresh {
		st.used = true
	}
}

// SetUserProfile sets the display name the user-detail endpoint answers.
func (s *Server) SetUserProfile(userID, displayName string) {
	s.mu.Lock()
	s.profiles[userID] = displayName
	s.mu.Unlock()
}

// SetEchoURL sets (or, with "", clears) where echoes of accepted sends go.
func (s *Server) SetEchoURL(url string) {
	s.mu.Lock()
	s.echoURL = url
	s.mu.Unlock()
}

// Echoes returns the echo deliveries made so far.
func (s *Server) Echoes() []Echo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Echo(nil), s.echoes...)
}

// echo posts the oa_send_text echo of an accepted send.
func (s *Server) echo(url string, sent Send) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := Echo{MessageID: sent.MessageID}
	res, err := s.PostWebhook(ctx, url, s.OAEcho(sent))
	if err != nil {
		e.Err = err
	} else {
		e.Status = res.StatusCode
		res.Body.Close()
	}
	s.mu.Lock()
	s.echoes = append(s.echoes, e)
	s.notifyLocked()
	s.mu.Unlock()
}

// UserMessaged records that the user wrote to the OA at t, which opens the
// free-reply allowance when EnforceReplyQuota is on. Webhooks the fake
// produces for user_send_* events call it themselves.
func (s *Server) UserMessaged(userID string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userID]
	if u == nil {
		u = &userState{}
		s.users[userID] = u
	}
	if t.After(u.lastMessage) {
		u.lastMessage = t
		u.replies = 0
	}
}

// Reset forgets the recorded calls and pending faults; tokens stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sends, s.tokenReqs, s.calls, s.faults, s.oauthFail = nil, nil, nil, nil, nil
	s.notifyLocked()
}

// ---------------------------------------------------------------- records

// Sends returns every send call received so far.
func (s *Server) Sends() []Send {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Send(nil), s.sends...)
}

// Accepted returns the send calls the fake accepted (error 0).
func (s *Server) Accepted() []Send {
	var out []Send
	for _, m := range s.Sends() {
		if m.MessageID != "" {
			out = append(out, m)
		}
	}
	return out
}

// TokenRequests returns every call to the token endpoint so far.
func (s *Server) TokenRequests() []TokenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TokenRequest(nil), s.tokenReqs...)
}

// RefreshUses counts how many times each refresh token was presented.
func (s *Server) RefreshUses() map[string]int {
	out := map[string]int{}
	for _, r := range s.TokenRequests() {
		if r.GrantType == "refresh_token" {
			out[r.RefreshToken]++
		}
	}
	return out
}

// Calls returns every request received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// WaitFor blocks until cond holds or ctx ends. cond is evaluated after
// every request the fake records, so tests never sleep.
func (s *Server) WaitFor(ctx context.Context, cond func(*Server) bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("zalofake: condition not met: %w", ctx.Err())
		case <-ch:
		}
	}
}

// WaitAccepted waits until at least n messages were accepted and returns
// them.
func (s *Server) WaitAccepted(ctx context.Context, n int) ([]Send, error) {
	err := s.WaitFor(ctx, func(s *Server) bool { return len(s.Accepted()) >= n })
	return s.Accepted(), err
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// ---------------------------------------------------------------- HTTP

// Handler serves the fake's endpoints; New mounts it on a loopback server,
// and the sandbox can mount it elsewhere.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathSendCS, s.handleSend)
	mux.HandleFunc("POST "+PathAccessToken, s.handleToken)
	mux.HandleFunc("GET "+PathGetOA, s.handleGetOA)
	mux.HandleFunc("GET "+PathUserDetail, s.handleUserDetail)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls = append(s.calls, Call{At: s.cfg.Now(), Method: r.Method, Path: r.URL.Path})
		s.notifyLocked()
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError is Zalo's OpenAPI error body: always HTTP 200.
func apiError(w http.ResponseWriter, code int, message string) {
	writeJSON(w, http.StatusOK, map[string]any{"error": code, "message": message})
}

// checkAccessLocked answers Zalo's token error and returns false when the
// access_token header is missing, unknown or expired.
func (s *Server) checkAccessLocked(token string) (int, string) {
	exp, ok := s.access[token]
	switch {
	case token == "" || !ok:
		return CodeTokenInvalid, "Access token is invalid"
	case !s.cfg.Now().Before(exp):
		// Zalo answers -216 for an expired token too (Chatwoot keys off it).
		return CodeTokenInvalid, "Access token is invalid"
	}
	return CodeOK, ""
}

type csRequest struct {
	Recipient struct {
		UserID string `json:"user_id"`
	} `json:"recipient"`
	Message json.RawMessage `json:"message"`
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	rec := Send{At: s.cfg.Now(), AccessToken: r.Header.Get("access_token"), Body: body}
	s.mu.Lock()
	defer func() {
		s.sends = append(s.sends, rec)
		s.notifyLocked()
		s.mu.Unlock()
	}()
	if err != nil {
		rec.ErrorCode = CodeParamInvalid
		apiError(w, CodeParamInvalid, "body is invalid!")
		return
	}
	if code, msg := s.checkAccessLocked(rec.AccessToken); code != CodeOK {
		rec.ErrorCode = code
		apiError(w, code, msg)
		return
	}
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		if f.status != 0 {
			for k, vs := range f.header {
				for _, v := range vs {
					w.Header().Add(k, v)
				}
			}
			rec.ErrorCode = f.status
			w.WriteHeader(f.status)
			_, _ = w.Write([]byte(http.StatusText(f.status)))
			return
		}
		rec.ErrorCode = f.code
		apiError(w, f.code, f.message)
		return
	}
	var req csRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		rec.ErrorCode = CodeParamInvalid
		apiError(w, CodeParamInvalid, "body is invalid!")
		return
	}
	rec.UserID, rec.Message = req.Recipient.UserID, req.Message
	if !isDecimal(req.Recipient.UserID) {
		rec.ErrorCode = CodeParamInvalid
		apiError(w, CodeParamInvalid, "user_id is invalid!")
		return
	}
	var msg struct {
		Text       string          `json:"text"`
		Attachment json.RawMessage `json:"attachment"`
	}
	if len(req.Message) == 0 || json.Unmarshal(req.Message, &msg) != nil || (msg.Text == "" && len(msg.Attachment) == 0) {
		rec.ErrorCode = CodeParamInvalid
		apiError(w, CodeParamInvalid, "message is invalid!")
		return
	}
	rec.Text = msg.Text
	if s.cfg.EnforceReplyQuota {
		u := s.users[req.Recipient.UserID]
		switch {
		case u == nil || s.cfg.Now().Sub(u.lastMessage) > s.cfg.ReplyWindow:
			rec.ErrorCode = CodeNoInteraction
			apiError(w, CodeNoInteraction, "User has not interacted with the OA in the past 7 days")
			return
		case u.replies >= s.cfg.FreeReplies:
			rec.ErrorCode = CodeOutOfQuota
			apiError(w, CodeOutOfQuota, "Out of quota")
			return
		}
		u.replies++
	}
	rec.MessageID = NewMessageID()
	if s.echoURL != "" {
		// After the answer, as Zalo would: the echo can still overtake it.
		go s.echo(s.echoURL, rec)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"error":   0,
		"message": "Success",
		"data":    map[string]any{"message_id": rec.MessageID, "user_id": req.Recipient.UserID},
	})
}

// oauthError is the token endpoint's error body (reference §5).
func oauthError(w http.ResponseWriter, code int, name, description string) {
	writeJSON(w, http.StatusOK, map[string]any{
		"error":             code,
		"error_name":        name,
		"error_reason":      description,
		"ref_doc":           "https://developers.zalo.me/docs/official-account/bat-dau/xac-thuc-va-uy-quyen-cho-ung-dung-new",
		"error_description": description,
	})
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	err := r.ParseForm()
	req := TokenRequest{At: now, GrantType: r.PostForm.Get("grant_type"), RefreshToken: r.PostForm.Get("refresh_token"),
		Code: r.PostForm.Get("code"), AppID: r.PostForm.Get("app_id"), SecretKeyOK: r.Header.Get("secret_key") == s.cfg.AppSecret}
	s.mu.Lock()
	defer func() {
		s.tokenReqs = append(s.tokenReqs, req)
		s.notifyLocked()
		s.mu.Unlock()
	}()
	fail := func(code int, name, desc string) {
		req.ErrorCode = code
		oauthError(w, code, name, desc)
	}
	switch {
	case err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"):
		fail(-14001, "Invalid parameter", "Request must be application/x-www-form-urlencoded")
		return
	case !req.SecretKeyOK:
		fail(CodeInvalidSecretKey, "Invalid secret key", "Invalid secret key")
		return
	case req.AppID != s.cfg.AppID:
		fail(-14001, "Invalid app id", "Invalid app_id")
		return
	}
	if len(s.oauthFail) > 0 {
		f := s.oauthFail[0]
		s.oauthFail = s.oauthFail[1:]
		fail(f.code, "Error", f.message)
		return
	}
	switch req.GrantType {
	case "refresh_token":
		st := s.refresh[req.RefreshToken]
		switch {
		case st == nil || st.used:
			fail(CodeInvalidRefreshToken, "Invalid refresh token", "Invalid refresh token")
			return
		case !now.Before(st.expires):
			fail(CodeRefreshTokenExpired, "Refresh token expired", "Refresh token is expired")
			return
		}
		st.used = true // single use: the token rotates on every refresh
	case "authorization_code":
		if !s.codes[req.Code] {
			fail(CodeInvalidCode, "Invalid code", "Invalid authorization code")
			return
		}
		delete(s.codes, req.Code)
	default:
		fail(-14001, "Invalid grant type", "Invalid grant_type")
		return
	}
	s.issueLocked()
	req.NewRefresh = s.current[1]
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  s.current[0],
		"refresh_token": s.current[1],
		"expires_in":    strconv.Itoa(int(s.cfg.AccessTTL / time.Second)),
	})
}

func (s *Server) handleGetOA(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	code, msg := s.checkAccessLocked(r.Header.Get("access_token"))
	s.mu.Unlock()
	if code != CodeOK {
		apiError(w, code, msg)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"error": 0, "message": "Success",
		"data": map[string]any{"oa_id": s.cfg.OAID, "name": "Fake OA", "description": "zalofake"}})
}

func (s *Server) handleUserDetail(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	code, msg := s.checkAccessLocked(r.Header.Get("access_token"))
	s.mu.Unlock()
	if code != CodeOK {
		apiError(w, code, msg)
		return
	}
	var q struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal([]byte(r.URL.Query().Get("data")), &q); err != nil || !isDecimal(q.UserID) {
		apiError(w, CodeParamInvalid, "user_id is invalid!")
		return
	}
	s.mu.Lock()
	name, ok := s.profiles[q.UserID]
	s.mu.Unlock()
	if !ok {
		name = "Zalo User " + q.UserID[len(q.UserID)-4:]
	}
	writeJSON(w, http.StatusOK, map[string]any{"error": 0, "message": "Success",
		"data": map[string]any{"user_id": q.UserID, "display_name": name,
			"avatars": map[string]string{"120": "https://s120.avatar.talk.zdn.vn/fake.jpg", "240": "https://s240.avatar.talk.zdn.vn/fake.jpg"}}})
}

func readBody(r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, 1<<20))
	return buf.Bytes(), err
}

// ---------------------------------------------------------------- ids

// NewID returns a random Zalo-style id: a 19-digit decimal string, above
// 2^53 so that a float64 decoder would corrupt it.
func NewID() string {
	n, err := rand.Int(rand.Reader, big.NewInt(8e18))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1e18)).String()
}

// NewMessageID returns a random Zalo-style message id (hex).
func NewMessageID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:19]
}

func randToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Signature computes Zalo's webhook signature header value:
// "mac=" + hex(sha256(appID + body + timestamp + oaSecretKey)). It is a
// plain hash, not an HMAC (reference §2).
func Signature(appID string, body []byte, timestamp, oaSecretKey string) string {
	h := sha256.New()
	h.Write([]byte(appID))
	h.Write(body)
	h.Write([]byte(timestamp))
	h.Write([]byte(oaSecretKey))
	return "mac=" + hex.EncodeToString(h.Sum(nil))
}
