// Package zalo is the Zalo Official Account channel connector: it verifies
// and normalizes Zalo's webhooks, sends customer-service messages through
// the v3 OA API, keeps the OAuth v4 tokens fresh in the host KV (shared by
// every hub replica), and tracks Zalo's free-reply allowance so the hub
// learns before sending that a reply would be refused.
package zalo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Version of the plugin.
const Version = "0.1.0"

// Connector implements sdk.Channel for one Zalo OA. Its methods are safe
// for concurrent use; Configure may be called again to replace the config.
type Connector struct {
	opts  options
	owner string
	st    atomic.Pointer[state]
}

type options struct {
	now        func() time.Time
	httpClient *http.Client
	poll       time.Duration
}

// Option changes a Connector for tests and embedding.
type Option func(*options)

// WithClock sets the clock used for webhook freshness, token expiry and the
// reply allowance.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithHTTPClient sets the HTTP client for Zalo's APIs (its Timeout is
// overridden by http_timeout only when it has none).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithLeasePoll sets how often a replica waiting for another's token
// refresh looks at the KV again.
func WithLeasePoll(d time.Duration) Option { return func(o *options) { o.poll = d } }

// New returns an unconfigured connector.
func New(opts ...Option) *Connector {
	o := options{now: time.Now, poll: 100 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	return &Connector{opts: o, owner: randomID()}
}

// state is everything Configure builds; swapped atomically.
type state struct {
	cfg      *Config
	instance string
	owner    string
	kv       sdk.KV
	log      *slog.Logger
	api      *apiClient
	tokens   *tokenStore
	window   *allowance
	now      func() time.Time
}

var _ sdk.Channel = (*Connector)(nil)
var _ sdk.HealthChecker = (*Connector)(nil)

// Describe returns the manifest; it needs no config.
func (c *Connector) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{
		Name:         "zalo",
		Kind:         sdk.KindChannel,
		Version:      Version,
		Description:  "Zalo Official Account: signed webhooks, v3 customer-service messages, OAuth v4 token rotation, free-reply allowance",
		Capabilities: []string{"text", "image", "file", "interactive", "agent_echo", "delivery_status", "reply_window", "idempotent_send"},
		ConfigSchema: json.RawMessage(configSchema),
	}, nil
}

// Configure validates the config and seeds the token store.
func (c *Connector) Configure(ctx context.Context, req sdk.ConfigureRequest) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return sdk.Invalid(err)
	}
	if req.Host == nil {
		return sdk.Invalid(errors.New("zalo: the host offers no KV; the plugin needs it for tokens"))
	}
	log := req.Host.Logger()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("plugin", "zalo", "oa_id", cfg.OAID)
	hc := c.opts.httpClient
	if hc == nil {
		hc = sdk.NewHTTPClient(cfg.HTTPTimeout.D())
	}
	api := &apiClient{http: hc, openapi: cfg.BaseURL.OpenAPI, oauth: cfg.BaseURL.OAuth, appID: cfg.AppID,
		appSecret: cfg.AppSecret, rateLimitRetryAfter: cfg.RateLimitRetryAfter.D()}
	kv := sdk.NewHintedKV(req.Host.KV())
	st := &state{cfg: cfg, instance: req.Instance, owner: c.owner, kv: kv, log: log, api: api, now: c.opts.now}
	st.tokens = &tokenStore{kv: kv, key: tokenKey(cfg.OAID), owner: c.owner, api: api, now: c.opts.now,
		refreshBefore: cfg.RefreshBefore.D(), lease: cfg.TokenLease.D(), httpTimeout: cfg.HTTPTimeout.D(),
		poll: c.opts.poll, log: log, sem: make(chan struct{}, 1)}
	st.window = &allowance{kv: kv, oa: cfg.OAID, enforce: *cfg.ReplyAllowance.Enforce, free: cfg.ReplyAllowance.FreeReplies,
		window: cfg.ReplyAllowance.Window.D(), refuse: cfg.ReplyAllowance.UnknownContact == "refuse", now: c.opts.now}
	if err := st.tokens.seed(ctx, cfg); err != nil {
		return err
	}
	c.st.Store(st)
	log.Info("zalo: configured", "openapi", cfg.BaseURL.OpenAPI, "oauth", cfg.BaseURL.OAuth)
	return nil
}

func (c *Connector) configured() (*state, error) {
	st := c.st.Load()
	if st == nil {
		return nil, sdk.Retryable(errors.New("zalo: plugin not configured yet"), time.Second).WithReason("not_configured")
	}
	return st, nil
}

// CheckHealth checks that the OA token works by reading the OA's profile.
func (c *Connector) CheckHealth(ctx context.Context) error {
	st, err := c.configured()
	if err != nil {
		return err
	}
	tok, err := st.tokens.Access(ctx)
	if err != nil {
		return err
	}
	_, err = st.api.openAPI(ctx, http.MethodGet, "/v2.0/oa/getoa", tok, nil, nil)
	if isTokenError(err) {
		if tok, err = st.tokens.Invalidate(ctx, tok); err != nil {
			return err
		}
		_, err = st.api.openAPI(ctx, http.MethodGet, "/v2.0/oa/getoa", tok, nil, nil)
	}
	var pe *providerError
	if errors.As(err, &pe) {
		return st.api.mapProviderError(pe)
	}
	return err
}

// ---------------------------------------------------------------- webhooks

func webhookAnswer(status int, msg string) *sdk.WebhookResult {
	b, _ := json.Marshal(map[string]any{"error": status != http.StatusOK, "message": msg})
	return &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: status,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: b}}
}

// HandleWebhook verifies one Zalo webhook and returns its events. Forged,
// stale and malformed requests get a 4xx and no events.
func (c *Connector) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	st, err := c.configured()
	if err != nil {
		return nil, err
	}
	if req == nil {
		return webhookAnswer(http.StatusBadRequest, "no request"), nil
	}
	if req.Method != "" && req.Method != http.MethodPost {
		res := webhookAnswer(http.StatusMethodNotAllowed, "POST only")
		res.Response.Header.Set("Allow", http.MethodPost)
		return res, nil
	}
	w, err := DecodeWebhook(req.Body)
	if err != nil {
		st.log.Debug("zalo: malformed webhook", "error", err.Error())
		return webhookAnswer(http.StatusBadRequest, "malformed webhook"), nil
	}
	sig := headerValue(req.Header, SignatureHeader)
	if sig == "" {
		st.log.Warn("zalo: webhook without signature refused", "remote", req.RemoteAddr)
		return webhookAnswer(http.StatusUnauthorized, "missing signature"), nil
	}
	if !VerifySignature(sig, string(w.AppID), req.Body, string(w.Timestamp), st.cfg.OASecretKey) {
		st.log.Warn("zalo: webhook with a wrong signature refused", "remote", req.RemoteAddr, "event", w.EventName)
		return webhookAnswer(http.StatusUnauthorized, "bad signature"), nil
	}
	if string(w.AppID) != st.cfg.AppID {
		st.log.Warn("zalo: webhook for another app refused", "event", w.EventName)
		return webhookAnswer(http.StatusForbidden, "unknown app"), nil
	}
	ts, ok := w.Time()
	if !ok {
		return webhookAnswer(http.StatusBadRequest, "bad timestamp"), nil
	}
	now := st.now()
	if age := now.Sub(ts); age > st.cfg.WebhookMaxAge.D() {
		st.log.Warn("zalo: stale webhook refused", "event", w.EventName, "age", age.Round(time.Second).String())
		return webhookAnswer(http.StatusForbidden, "stale webhook"), nil
	} else if ts.After(now.Add(st.cfg.WebhookMaxSkew.D())) {
		// (Not -age > skew: a timestamp centuries ahead saturates age at
		// its minimum, whose negation overflows and let it through.)
		st.log.Warn("zalo: webhook from the future refused", "event", w.EventName, "ahead", (-age).Round(time.Second).String())
		return webhookAnswer(http.StatusForbidden, "timestamp in the future"), nil
	}

	events := w.Events(st.cfg.OAID, st.instance, req.Body)
	events, err = st.track(ctx, w, events)
	if err != nil {
		// Could not tell our own echoes apart: let Zalo deliver again.
		return nil, err
	}
	if n := headerValue(req.Header, "num_retry"); n != "" {
		for i := range events {
			events[i].Metadata["num_retry"] = n
		}
	}
	st.log.Debug("zalo: webhook accepted", "event", w.EventName, "events", len(events))
	return &sdk.WebhookResult{Response: webhookAnswer(http.StatusOK, "ok").Response, Events: events}, nil
}

// track updates the reply allowance from the webhook and drops the echoes
// of messages this plugin sent itself.
func (st *state) track(ctx context.Context, w *Webhook, events []sdk.Event) ([]sdk.Event, error) {
	out := events[:0]
	for _, ev := range events {
		if ev.Kind != sdk.EventMessage || ev.Message == nil || ev.Message.Type == "reaction" {
			out = append(out, ev)
			continue
		}
		user := ev.Contact.UserID
		switch ev.Author {
		case sdk.AuthorCustomer:
			if ev.Metadata["anonymous"] == "" {
				if err := st.window.noteUserMessage(ctx, user, ev.Timestamp); err != nil {
					// The message matters more than the count: pass it on.
					st.log.Warn("zalo: could not update the reply allowance", "error", err.Error())
				}
			}
			if st.cfg.FetchProfiles {
				ev.Contact.DisplayName = st.displayName(ctx, user)
			}
		case sdk.AuthorAgent:
			ours, err := st.isOwnEcho(ctx, user, ev)
			if err != nil {
				return nil, err
			}
			if ours {
				continue
			}
			if err := st.window.noteOAMessage(ctx, user, ev.ID, ev.Timestamp); err != nil {
				st.log.Warn("zalo: could not count an agent's message", "error", err.Error())
			}
		}
		out = append(out, ev)
	}
	return out, nil
}

// isOwnEcho tells the echo of a message this plugin sent (the hub already
// has it as the bot's) from one a person sent in the OA manager.
func (st *state) isOwnEcho(ctx context.Context, user string, ev sdk.Event) (bool, error) {
	if ev.AgentID != "" {
		return false, nil // admin_id: typed by a person in Zalo's chat tool
	}
	if _, _, err := st.kv.Get(ctx, sentKey(st.cfg.OAID, ev.ID)); err == nil {
		return true, nil
	} else if !isNotFound(err) {
		return false, fmt.Errorf("zalo: look up sent message: %w", err)
	}
	// The echo can overtake Zalo's answer to our send: match it against
	// our sends in flight to this user.
	ours, err := st.window.inflight(ctx, user, ev.Message.Text)
	if err != nil {
		return false, fmt.Errorf("zalo: look up sends in flight: %w", err)
	}
	return ours, nil
}

// displayName returns the user's Zalo name, cached in the KV; "" when the
// lookup fails (it must not hold up the webhook).
func (st *state) displayName(ctx context.Context, user string) string {
	if b, _, err := st.kv.Get(ctx, profileKey(st.cfg.OAID, user)); err == nil {
		return string(b)
	}
	lctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	tok, err := st.tokens.Access(lctx)
	if err != nil {
		return ""
	}
	qd, _ := json.Marshal(map[string]string{"user_id": user})
	q := url.Values{"data": {string(qd)}}
	data, err := st.api.openAPI(lctx, http.MethodGet, "/v3.0/oa/user/detail", tok, q, nil)
	if err != nil {
		st.log.Debug("zalo: profile lookup failed", "error", err.Error())
		return ""
	}
	var d struct {
		DisplayName string `json:"display_name"`
	}
	if json.Unmarshal(data, &d) != nil || strings.TrimSpace(d.DisplayName) == "" {
		return ""
	}
	if _, err := st.kv.Put(ctx, profileKey(st.cfg.OAID, user), []byte(d.DisplayName), 7*24*time.Hour); err != nil {
		st.log.Debug("zalo: could not cache a profile", "error", err.Error())
	}
	return d.DisplayName
}
