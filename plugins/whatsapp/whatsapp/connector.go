package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Version of this plugin, reported in Describe.
const Version = "0.1.0"

// Connector implements sdk.Channel (and sdk.HealthChecker) for one
// WhatsApp business phone number. All methods are safe for concurrent use;
// Configure swaps an immutable runtime atomically.
type Connector struct {
	now        func() time.Time
	after      func(time.Duration) <-chan time.Time
	httpClient *http.Client

	mu sync.Mutex // serialises Configure
	rt atomic.Pointer[runtime]
}

var (
	_ sdk.Channel       = (*Connector)(nil)
	_ sdk.HealthChecker = (*Connector)(nil)
)

// Option changes a Connector's defaults, for tests and embedding.
type Option func(*Connector)

// WithClock sets the clock used for the 24-hour window and the send rate
// limiter. The after function is the limiter's timer; nil keeps time.After.
func WithClock(now func() time.Time, after func(time.Duration) <-chan time.Time) Option {
	return func(c *Connector) {
		c.now = now
		if after != nil {
			c.after = after
		}
	}
}

// WithHTTPClient sets the client used for the Graph API; its Timeout is
// replaced by http_timeout unless already set.
func WithHTTPClient(h *http.Client) Option { return func(c *Connector) { c.httpClient = h } }

// New returns an unconfigured connector.
func New(opts ...Option) *Connector {
	c := &Connector{now: time.Now, after: time.After}
	for _, o := range opts {
		o(c)
	}
	return c
}

// runtime is everything Configure decided; replaced whole, never mutated.
type runtime struct {
	cfg      Config
	instance string
	log      *slog.Logger
	graph    *graphClient
	limiter  *limiter
	windows  windows
	claims   claims
}

var errNotConfigured = errors.New("whatsapp: plugin not configured yet")

func (c *Connector) runtime() (*runtime, error) {
	rt := c.rt.Load()
	if rt == nil {
		// Retryable: the hub configures plugins after each (re)start.
		return nil, sdk.Retryable(errNotConfigured, time.Second).WithReason("not_configured")
	}
	return rt, nil
}

// Describe returns the manifest; it does not depend on Configure.
func (c *Connector) Describe(context.Context) (sdk.Manifest, error) {
	return sdk.Manifest{
		Name:        ChannelName,
		Kind:        sdk.KindChannel,
		Version:     Version,
		Description: "WhatsApp Business Cloud API (with WhatsApp Business App coexistence)",
		Capabilities: []string{
			"webhook_verification", "webhook_signature", "send_text", "send_media", "send_interactive",
			"send_template", "send_reaction", "customer_service_window", "window_fallback_template",
			"send_rate_limit", "idempotent_send", "coexistence_echoes", "coexistence_contact_sync",
			"coexistence_history", "health_check",
		},
		ConfigSchema: configSchema,
	}, nil
}

// Configure validates the config and prepares the runtime. It makes no
// network call: a Graph outage must not stop the hub from starting.
func (c *Connector) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	cfg, err := ParseConfig(req.Config)
	if err != nil {
		return sdk.Invalid(err)
	}
	if req.Host == nil {
		return sdk.Invalid(errors.New("whatsapp: configure without host services"))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	hc := c.httpClient
	if hc == nil {
		hc = sdk.NewHTTPClient(0)
	}
	if hc.Timeout == 0 {
		cp := *hc
		cp.Timeout = time.Duration(cfg.HTTPTimeout)
		hc = &cp
	}
	lim := newLimiter(cfg.SendRatePerSecond, cfg.SendBurst, c.now, c.after)
	if old := c.rt.Load(); old != nil && old.cfg.PhoneNumberID == cfg.PhoneNumberID &&
		old.limiter.same(cfg.SendRatePerSecond, cfg.SendBurst) {
		lim = old.limiter // keep the bucket: a reconfigure must not allow a burst
	}
	log := req.Host.Logger()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt := &runtime{
		cfg:      cfg,
		instance: req.Instance,
		log:      log.With("plugin", ChannelName),
		graph:    &graphClient{base: cfg.graphBase(), pnid: cfg.PhoneNumberID, token: cfg.AccessToken, http: hc},
		limiter:  lim,
		windows:  windows{kv: sdk.NewHintedKV(req.Host.KV()), pn: cfg.PhoneNumberID, now: c.now},
		claims:   claims{kv: req.Host.KV(), now: c.now},
	}
	c.rt.Store(rt)
	if cfg.VerifyToken == "" {
		rt.log.Warn("verify_token is not set: the webhook verification handshake will be refused")
	}
	return nil
}

// CheckHealth reads the phone number object with the configured token.
func (c *Connector) CheckHealth(ctx context.Context) error {
	rt, err := c.runtime()
	if err != nil {
		return err
	}
	return rt.graph.phoneNumberInfo(ctx)
}

// HandleWebhook answers Meta's GET handshake and verifies and parses POSTed
// notifications.
func (c *Connector) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResult, error) {
	rt, err := c.runtime()
	if err != nil {
		return nil, err
	}
	switch req.Method {
	case http.MethodGet:
		return rt.handshake(req), nil
	case http.MethodPost:
	default:
		return reply(http.StatusMethodNotAllowed, "method not allowed"), nil
	}
	if err := verifySignature(rt.cfg.AppSecret, headerValue(req.Header, SignatureHeader), req.Body); err != nil {
		status := http.StatusForbidden
		if errors.Is(err, errNoSignature) {
			status = http.StatusUnauthorized
		}
		rt.log.Warn("webhook refused: signature check failed", "reason", err.Error(), "remote_addr", req.RemoteAddr,
			"request_id", req.RequestID)
		return reply(status, "invalid signature"), nil
	}
	p, err := parseNotification(req.Body, parseOptions{instance: rt.instance, phoneNumberID: rt.cfg.PhoneNumberID})
	if err != nil {
		rt.log.Warn("webhook refused: body is not a WhatsApp notification", "request_id", req.RequestID)
		return reply(http.StatusBadRequest, "malformed notification"), nil
	}
	for user, at := range p.opens {
		if err := rt.windows.renew(ctx, user, at); err != nil {
			// Without the window record a reply would be refused later; an
			// error makes the hub answer 5xx and Meta redeliver.
			return nil, sdk.Retryable(fmt.Errorf("whatsapp webhook: %w", err), 0)
		}
	}
	if p.malformed > 0 {
		rt.log.Warn("webhook items skipped: unreadable", "count", p.malformed, "request_id", req.RequestID)
	}
	for _, e := range p.accountErrors {
		rt.log.Warn("WhatsApp reported an account-level error", "code", e.Code, "title", redactDigits(e.Title),
			"reason", classify(e.Code, 0).reason)
	}
	res := reply(http.StatusOK, "")
	res.Events = p.events
	return res, nil
}

func reply(status int, body string) *sdk.WebhookResult {
	r := &sdk.WebhookResult{Response: sdk.WebhookResponse{Status: status}}
	if body != "" {
		r.Response.Header = http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
		r.Response.Body = []byte(body)
	}
	return r
}

// Send delivers one message: window check (or template fallback),
// idempotency claim, rate limit, then POST /{phone-number-id}/messages.
func (c *Connector) Send(ctx context.Context, msg *sdk.Outbound) (*sdk.SendResult, error) {
	rt, err := c.runtime()
	if err != nil {
		return nil, err
	}
	if msg == nil {
		return nil, invalid("no message")
	}
	to, err := resolveRecipient(msg, rt.cfg.PhoneNumberID)
	if err != nil {
		return nil, err
	}
	payload, freeForm, err := buildPayload(msg, to, &rt.cfg)
	if err != nil {
		return nil, err
	}
	// The claim comes first: a retry of a message that already went out
	// returns its id even if the window has closed since.
	var claimVer int64
	if key := msg.IdempotencyKey; key != "" {
		prior, ver, err := rt.claims.claim(ctx, key)
		if err != nil {
			return nil, asTyped(err)
		}
		if prior != "" {
			return &sdk.SendResult{ProviderMessageID: prior, AcceptedAt: c.now()}, nil
		}
		claimVer = ver
	}
	// detached bounds KV writes that must happen even when the call's own
	// context is what stopped us.
	detached := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	}
	fail := func(err error) (*sdk.SendResult, error) {
		if claimVer != 0 {
			dctx, cancel := detached()
			defer cancel()
			rt.claims.release(dctx, msg.IdempotencyKey, claimVer)
		}
		return nil, err
	}

	var win windowState
	if freeForm && rt.cfg.windowEnforced() {
		if win, err = rt.windows.get(ctx, to.key()); err != nil {
			return fail(sdk.Retryable(fmt.Errorf("whatsapp send: %w", err), 0))
		}
		if !win.open {
			t := rt.cfg.WindowFallbackTemplate
			if t == nil || payload.Type == "reaction" {
				return fail(sdk.Permanent(errors.New("whatsapp send: the 24-hour customer-service window is closed " +
					"(no customer message in the last 24 hours); only an approved template may be sent")).
					WithReason(ReasonWindowClosed))
			}
			if payload, err = fallbackPayload(payload, t, &rt.cfg); err != nil {
				return fail(err)
			}
			rt.log.Info("window closed: sending the fallback template instead", "template", t.Name)
		}
	}
	if err := rt.limiter.wait(ctx); err != nil {
		return fail(err)
	}
	resp, err := rt.graph.sendMessage(ctx, payload)
	if err != nil {
		if sdk.ReasonOf(err) == ReasonWindowClosed && payload.Type != "template" {
			dctx, cancel := detached()
			rt.windows.close(dctx, to.key(), win.version)
			cancel()
		}
		return fail(err)
	}
	id := resp.Messages[0].ID
	if claimVer != 0 {
		dctx, cancel := detached()
		if err := rt.claims.complete(dctx, msg.IdempotencyKey, claimVer, id); err != nil {
			// Sent, but a retry would send again: worth a warning, not a
			// failure (the message is out).
			rt.log.Warn("could not record the sent message id for idempotency", "error", err.Error())
		}
		cancel()
	}
	return &sdk.SendResult{ProviderMessageID: id, AcceptedAt: c.now()}, nil
}

// asTyped keeps typed errors and marks KV failures retryable.
func asTyped(err error) error {
	var e *sdk.Error
	if errors.As(err, &e) && e.Code != sdk.CodeUnknown {
		return err
	}
	return sdk.Retryable(fmt.Errorf("whatsapp send: %w", err), 0)
}
