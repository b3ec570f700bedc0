package assign

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/rules"
)

// Notification is what an agent or supervisor is told.
type Notification struct {
	// Key is the idempotency key: a receiver that sees a key twice drops
	// the second (webhook header X-Switchboard-Delivery).
	Key  string `json:"key"`
	Kind string `json:"kind"` // handoff, assignment, sla_breach, reminder, followup
	// Target is the route: "zalo:<user id>", "whatsapp:<phone>" or
	// "webhook".
	Target    string `json:"target"`
	Agent     string `json:"agent,omitempty"`
	AgentName string `json:"agent_name,omitempty"`
	Conv      string `json:"conv"`
	Team      string `json:"team,omitempty"`
	Text      string `json:"text"` // the rendered message, as chat targets get it
	// Summary fields, for webhook receivers.
	Summary *Summary          `json:"summary,omitempty"`
	Params  map[string]string `json:"params,omitempty"` // a follow-up's params
	At      time.Time         `json:"at"`
	// URL overrides the configured webhook URL (a follow-up's own url).
	URL string `json:"url,omitempty"`
}

// Summary describes a handed-off conversation for the person taking it.
type Summary struct {
	Name       string   `json:"name,omitempty"`
	Channel    string   `json:"channel,omitempty"`
	Need       string   `json:"need,omitempty"`
	Budget     string   `json:"budget,omitempty"`
	Timeline   string   `json:"timeline,omitempty"`
	Score      int      `json:"score"`
	Tier       string   `json:"tier,omitempty"`
	Explain    string   `json:"explain,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Priority   string   `json:"priority,omitempty"`
	ContactURL string   `json:"contact_url,omitempty"`
	Last       []string `json:"last_messages,omitempty"`
}

// summarize builds the summary of a conversation from the pipeline.
func (a *Assigner) summarize(ctx context.Context, conv string) *Summary {
	pc := a.pconv(ctx, conv)
	if pc == nil {
		return nil
	}
	s := &Summary{Name: pc.Contact.DisplayName, Channel: pc.Channel, Need: pc.Facts.Need, Budget: pc.Facts.Budget,
		Timeline: pc.Facts.Timeline, Score: pc.Score, Tier: pc.Tier, Explain: strings.TrimSpace(pc.Explain),
		Reason: pc.HandoffReason, Priority: pc.Priority, ContactURL: pc.ContactURL}
	hist, _ := a.o.Pipeline.History(ctx, conv)
	if len(hist) > 6 {
		hist = hist[len(hist)-6:]
	}
	for _, t := range hist {
		s.Last = append(s.Last, roleLabel(t.Role)+": "+oneLine(t.Text, 300))
	}
	return s
}

func roleLabel(role string) string {
	switch role {
	case "customer":
		return "Khách"
	case "bot":
		return "Bot"
	case "agent":
		return "NV"
	}
	return role
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}

// render writes a notification for a chat: short lines, the explanation
// cut to the rules that fired.
func render(headline string, s *Summary, conv string) string {
	var b strings.Builder
	b.WriteString(headline)
	b.WriteByte('\n')
	if s == nil {
		fmt.Fprintf(&b, "Conversation: %s\n", conv)
		return b.String()
	}
	name := firstNonEmpty(s.Name, "(no name)")
	fmt.Fprintf(&b, "Customer: %s (%s)\n", name, s.Channel)
	if s.Reason != "" {
		fmt.Fprintf(&b, "Why: %s\n", s.Reason)
	}
	for _, kv := range [][2]string{{"Need", s.Need}, {"Budget", s.Budget}, {"Timeline", s.Timeline}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
		}
	}
	fmt.Fprintf(&b, "Score: %d", s.Score)
	if s.Tier != "" {
		fmt.Fprintf(&b, " (%s)", s.Tier)
	}
	if s.Priority != "" {
		fmt.Fprintf(&b, ", priority %s", s.Priority)
	}
	b.WriteByte('\n')
	if s.Explain != "" {
		// The "because" lines say why the score is what it is.
		if _, because, ok := strings.Cut(s.Explain, "because:\n"); ok {
			b.WriteString("Because:\n")
			for _, l := range strings.Split(strings.TrimRight(because, "\n"), "\n") {
				if l = strings.TrimSpace(l); l != "" {
					b.WriteString("  " + l + "\n")
				}
			}
		}
	}
	if len(s.Last) > 0 {
		b.WriteString("Last messages:\n")
		for _, l := range s.Last {
			b.WriteString("  " + l + "\n")
		}
	}
	if s.ContactURL != "" {
		fmt.Fprintf(&b, "CRM: %s\n", s.ContactURL)
	}
	return b.String()
}

// notifyAssignee tells a new assignee about their conversation, once per
// assignment.
func (a *Assigner) notifyAssignee(ctx context.Context, rs *rules.Ruleset, rec *Record, res *Assignment) {
	if res.Agent == "" {
		return
	}
	head := "New conversation for you"
	switch {
	case strings.HasPrefix(res.Reason, "sla_"):
		head = "Escalated to you: the previous agent did not answer in time"
	case res.Reason == "owner":
		head = "Your customer is back"
	}
	a.notifyAgents(ctx, rs, "assignment", []string{res.Agent}, rec.Conv, "assign:"+rec.Conv+":"+rec.Token, head)
}

// notifyAgents sends one notification per agent and route, each through a
// timer so that failures retry with backoff and survive restarts.
func (a *Assigner) notifyAgents(ctx context.Context, rs *rules.Ruleset, kind string, agents []string, conv, key, headline string) {
	sum := a.summarize(ctx, conv)
	text := render(headline, sum, conv)
	team := ""
	if r, _ := a.getRecord(ctx, conv); r != nil {
		team = r.Team
	}
	all := rs.Agents()
	for _, id := range agents {
		ag, ok := all[id]
		if !ok {
			continue
		}
		n := &Notification{Kind: kind, Agent: id, AgentName: ag.Name, Conv: conv, Team: team, Text: text, Summary: sum, At: a.now()}
		a.deliver(ctx, n, ag.Notify, key+":"+id)
	}
}

// deliver sends n on every route of target, each with its own key.
func (a *Assigner) deliver(ctx context.Context, n *Notification, target, key string) {
	if a.o.Notifier == nil {
		return
	}
	routes := a.routes(target)
	if len(routes) == 0 {
		a.m.Notifications.WithLabelValues(n.Kind, "none", "undeliverable").Inc()
		a.audit(ctx, pipeline.AuditRecord{Kind: "notification_undeliverable", Conv: n.Conv, Target: n.Agent,
			Detail: fmt.Sprintf("%s: no route for %q (configure handoff.notify_channels or handoff.webhook_url)", n.Kind, target)})
		return
	}
	for _, r := range routes {
		c := *n
		c.Target, c.Key = r, key+":"+routeKind(r)
		a.sendNotification(ctx, &c, 1)
	}
}

func routeKind(r string) string {
	k, _, _ := strings.Cut(r, ":")
	return k
}

// Router is optionally implemented by a Notifier to say how it reaches a
// target (an agent's notify string): the routes to deliver on, each
// becoming one Notification.Target.
type Router interface {
	Routes(target string) []string
}

func (a *Assigner) routes(target string) []string {
	if r, ok := a.o.Notifier.(Router); ok {
		return r.Routes(target)
	}
	if target == "" {
		return nil
	}
	return []string{target}
}

type notifyTimer struct {
	N       *Notification `json:"n"`
	Attempt int           `json:"attempt"`
}

func notifyTimerID(key string) string { return "notify:" + key }

// sendNotification hands n to a timer (due now), which delivers it and
// retries with backoff. Without a pipeline it delivers at once.
func (a *Assigner) sendNotification(ctx context.Context, n *Notification, attempt int) {
	if a.o.Pipeline == nil {
		_ = a.deliverNow(ctx, n, attempt)
		return
	}
	if done, _ := a.effectDone(ctx, notifyTimerID(n.Key)); done {
		return
	}
	if err := a.o.Pipeline.Schedule(ctx, notifyTimerID(n.Key), a.now(), TimerNotify, notifyTimer{N: n, Attempt: attempt}); err != nil {
		a.log.Warn("scheduling a notification failed", "kind", n.Kind, "conv", n.Conv, "err", err)
	}
}

func (a *Assigner) onNotify(ctx context.Context, raw json.RawMessage) error {
	var t notifyTimer
	if json.Unmarshal(raw, &t) != nil || t.N == nil {
		return nil
	}
	return a.deliverNow(ctx, t.N, t.Attempt)
}

// deliverNow delivers once (by key) and schedules the retry of a
// retryable failure.
func (a *Assigner) deliverNow(ctx context.Context, n *Notification, attempt int) error {
	id := notifyTimerID(n.Key)
	if done, err := a.effectDone(ctx, id); err != nil {
		return err
	} else if done {
		return nil
	}
	err := a.o.Notifier.Notify(ctx, n)
	route := routeKind(n.Target)
	if err == nil {
		a.m.Notifications.WithLabelValues(n.Kind, route, "sent").Inc()
		_ = a.markEffect(ctx, id, n.Target)
		a.audit(ctx, pipeline.AuditRecord{Kind: "notification", Conv: n.Conv, Key: n.Key, Target: n.Agent,
			Detail: n.Kind + " via " + route})
		return nil
	}
	if sdk.IsRetryable(err) && attempt < a.o.NotifyRetries && a.o.Pipeline != nil {
		a.m.Notifications.WithLabelValues(n.Kind, route, "retry").Inc()
		wait := min(a.o.NotifyBackoff<<(attempt-1), 10*time.Minute)
		if ra := sdk.RetryAfterOf(err); ra > wait {
			wait = ra
		}
		a.log.Warn("notification failed; will retry", "kind", n.Kind, "route", route, "attempt", attempt, "in", wait, "err", err)
		return a.o.Pipeline.Schedule(ctx, id, a.now().Add(wait), TimerNotify, notifyTimer{N: n, Attempt: attempt + 1})
	}
	a.m.Notifications.WithLabelValues(n.Kind, route, "failed").Inc()
	a.log.Warn("notification failed; giving up", "kind", n.Kind, "route", route, "attempt", attempt, "err", err)
	a.audit(ctx, pipeline.AuditRecord{Kind: "notification_failed", Conv: n.Conv, Key: n.Key, Target: n.Agent,
		Detail: n.Kind + " via " + route + ": " + err.Error()})
	return nil
}

// effectDone and markEffect record effects done, beside the pipeline's,
// so a retried timer does not do them twice.
func (a *Assigner) effectDone(ctx context.Context, key string) (bool, error) {
	_, ok, err := a.o.Store.Recorded(ctx, pipeline.EffectKey(key))
	return ok, err
}

func (a *Assigner) markEffect(ctx context.Context, key, val string) error {
	return a.o.Store.Record(ctx, pipeline.EffectKey(key), []byte(val), 30*24*time.Hour)
}

// ---------------------------------------------------------------- dispatcher

// Dispatcher is the hub's Notifier: chat targets ("zalo:<user id>",
// "whatsapp:<phone>") go out through a channel plugin instance, and every
// notification also goes to the outgoing webhook when one is configured.
type Dispatcher struct {
	// Channel finds the plugin instance that sends on a channel ("zalo"),
	// or false when there is none.
	Channel func(channel string) (pipeline.ChannelPlugin, bool)
	// WebhookURL and WebhookSecret configure the signed outgoing webhook.
	WebhookURL    string
	WebhookSecret string
	Client        *http.Client
	Now           func() time.Time
}

// Routes: the agent's chat target when a channel instance can reach it,
// plus the webhook when configured.
func (d *Dispatcher) Routes(target string) []string {
	var out []string
	if ch, id, ok := strings.Cut(target, ":"); ok && id != "" && d.Channel != nil {
		if _, ok := d.Channel(ch); ok {
			out = append(out, target)
		}
	}
	if d.WebhookURL != "" {
		out = append(out, "webhook")
	}
	return out
}

// Notify delivers n on its route.
func (d *Dispatcher) Notify(ctx context.Context, n *Notification) error {
	if n.Target == "webhook" {
		return d.post(ctx, firstNonEmpty(n.URL, d.WebhookURL), n)
	}
	ch, id, _ := strings.Cut(n.Target, ":")
	c, ok := d.Channel(ch)
	if !ok {
		return sdk.Permanent(fmt.Errorf("no channel plugin instance for %q", ch))
	}
	to := sdk.Identity{Channel: ch, UserID: id}
	if ch == "whatsapp" {
		to.Phone = id
	}
	_, err := c.Send(ctx, &sdk.Outbound{IdempotencyKey: n.Key, To: to, Type: "text", Text: n.Text})
	if err != nil {
		return fmt.Errorf("send to %s: %w", ch, err)
	}
	return nil
}

// Signature headers of the outgoing webhook.
const (
	HeaderSignature = "X-Switchboard-Signature" // sha256=<hex HMAC-SHA256 of the raw body>
	HeaderTimestamp = "X-Switchboard-Timestamp" // unix seconds when sent
	HeaderDelivery  = "X-Switchboard-Delivery"  // the idempotency key
)

// Sign returns the X-Switchboard-Signature value of body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a signature header against body in constant time.
func VerifySignature(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

func (d *Dispatcher) post(ctx context.Context, url string, n *Notification) error {
	if url == "" {
		return sdk.Permanent(errors.New("no webhook url"))
	}
	body, err := json.Marshal(n)
	if err != nil {
		return sdk.Permanent(err)
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return sdk.Permanent(fmt.Errorf("webhook request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "switchboard")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now().Unix(), 10))
	req.Header.Set(HeaderDelivery, n.Key)
	if d.WebhookSecret != "" {
		req.Header.Set(HeaderSignature, Sign(d.WebhookSecret, body))
	}
	c := d.Client
	if c == nil {
		// Short: deliveries run on the timer loop, which waits for them.
		c = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return sdk.Retryable(fmt.Errorf("webhook: %w", err), 0)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return sdk.Retryable(fmt.Errorf("webhook answered %d", resp.StatusCode), time.Duration(ra)*time.Second)
	default:
		return sdk.Permanent(fmt.Errorf("webhook answered %d", resp.StatusCode))
	}
}
