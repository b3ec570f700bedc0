package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/rules"
)

// OutputSchema is the structured output the hub asks every LLM for.
var OutputSchema = json.RawMessage(`{
  "type": "object",
  "required": ["reply", "intent"],
  "properties": {
    "reply": {"type": "string", "description": "the message to send the customer"},
    "intent": {"type": "string", "enum": ["inquiry", "quote", "demo", "complaint", "support", "spam", "human_request", "other"]},
    "need": {"type": "string"},
    "budget": {"type": "string"},
    "timeline": {"type": "string"},
    "decision_maker": {"type": ["boolean", "null"]},
    "lead_estimate": {"type": "integer", "minimum": 0, "maximum": 100},
    "action": {"type": "string", "enum": ["reply", "ask_info", "handoff_to_sale", "handoff_to_support", "send_quote", "schedule_demo"]},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1}
  }
}`)

// Turn is one stored history entry.
type Turn struct {
	ID   string    `json:"id,omitempty"`
	Role string    `json:"role"` // customer, bot, agent, system
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

func (p *Pipeline) process(ctx context.Context, t *Task, attempt int) error {
	switch t.Kind {
	case TaskEvent:
		return p.processEvent(ctx, t, attempt)
	case TaskReply:
		return p.reply(ctx, t)
	case TaskSend:
		if t.Send == nil {
			return sdk.Permanent(errors.New("send task without a message"))
		}
		conv, _, err := p.convs.Get(ctx, t.Conv)
		if err != nil {
			return storeErr(err)
		}
		return p.sendOne(ctx, conv, t.ReplyTo, *t.Send)
	}
	return sdk.Permanent(fmt.Errorf("unknown task kind %q", t.Kind))
}

// storeErr makes store failures retryable and everything else permanent.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrUnavailable) {
		return sdk.Retryable(err, 0)
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return err
	}
	return sdk.Retryable(err, 0)
}

func (p *Pipeline) processEvent(ctx context.Context, t *Task, attempt int) error {
	ev := t.Event
	if ev == nil {
		return sdk.Permanent(errors.New("event task without an event"))
	}
	// Providers retry for days and sign no timestamp, so a late retry looks
	// like a replay: remember ids for DedupeTTL. A retried or redelivered
	// task bypasses the check: its own first attempt set the mark.
	if ev.ID != "" && !t.Replay && attempt <= 1 {
		first, err := p.o.Store.MarkOnce(ctx, "in:"+t.Instance+":"+ev.ID, p.o.DedupeTTL)
		if err != nil {
			return storeErr(err)
		}
		if !first {
			p.m.Duplicates.Inc()
			return nil
		}
	}
	switch ev.Kind {
	case sdk.EventMessage:
		switch ev.Author {
		case sdk.AuthorAgent:
			return p.agentMessage(ctx, t)
		case sdk.AuthorBot, sdk.AuthorSystem:
			return nil // our own messages echoed back: already in the history
		default:
			return p.customerMessage(ctx, t)
		}
	case sdk.EventHistory:
		_, err := p.convs.Update(ctx, t.Conv, p.initConv(t), func(*Conversation) error { return nil })
		if err != nil {
			return storeErr(err)
		}
		role := "customer"
		if ev.Author == sdk.AuthorAgent || ev.Direction == sdk.DirectionOutbound {
			role = "agent"
		}
		return p.appendTurn(ctx, t.Conv, Turn{ID: ev.ID, Role: role, Text: describe(ev.Message), At: ev.Timestamp})
	case sdk.EventFollow, sdk.EventUnfollow, sdk.EventContactSync:
		conv, err := p.convs.Update(ctx, t.Conv, p.initConv(t), func(c *Conversation) error {
			mergeIdentity(&c.Contact, ev.Contact)
			return nil
		})
		if err != nil {
			return storeErr(err)
		}
		p.Audit(ctx, AuditRecord{Kind: "contact_" + ev.Kind.String(), Conv: conv.ID, Inbound: ev.ID, RequestID: t.RequestID})
		return nil
	case sdk.EventDelivery:
		if ev.Delivery != nil && ev.Delivery.Status == sdk.DeliveryFailed {
			p.Audit(ctx, AuditRecord{Kind: "delivery_failed", Conv: t.Conv, Target: ev.Delivery.MessageID,
				Detail: ev.Delivery.ErrorCode + " " + ev.Delivery.ErrorMessage})
		}
		return nil
	}
	return nil
}

func (p *Pipeline) initConv(t *Task) func() *Conversation {
	return func() *Conversation {
		c := &Conversation{Instance: t.Instance, State: StateBot, FirstSeen: p.now()}
		if t.Event != nil {
			c.Key = t.Event.ConversationKey
			c.Contact = t.Event.Contact
			c.Channel = t.Event.Contact.Channel
		}
		return c
	}
}

func mergeIdentity(dst *sdk.Identity, src sdk.Identity) {
	if src.Channel != "" {
		dst.Channel = src.Channel
	}
	if src.UserID != "" {
		dst.UserID = src.UserID
	}
	if src.Phone != "" {
		dst.Phone = src.Phone
	}
	if src.Email != "" {
		dst.Email = src.Email
	}
	if src.DisplayName != "" {
		dst.DisplayName = src.DisplayName
	}
	if src.Instance != "" {
		dst.Instance = src.Instance
	}
}

// describe renders a message for the history: its text, or what it is.
func describe(m *sdk.Message) string {
	if m == nil {
		return ""
	}
	if m.Text != "" {
		return m.Text
	}
	switch {
	case m.Location != nil:
		return fmt.Sprintf("[location %.5f,%.5f %s]", m.Location.Latitude, m.Location.Longitude, m.Location.Name)
	case len(m.Attachments) > 0:
		return "[" + m.Attachments[0].Type + "]"
	case m.Reaction != "":
		return "[reaction " + m.Reaction + "]"
	}
	return "[" + m.Type + "]"
}

func (p *Pipeline) appendTurn(ctx context.Context, conv string, turn Turn) error {
	b, _ := json.Marshal(turn)
	key := "turn:" + conv + ":" + turn.Role + ":" + turn.ID
	if turn.ID == "" {
		_, err := p.o.Store.AppendTurn(ctx, conv, b, p.o.HistoryTurns, p.o.HistoryTTL)
		return storeErr(err)
	}
	var total int64
	_, _, err := p.once(ctx, key, func() (string, error) {
		n, err := p.o.Store.AppendTurn(ctx, conv, b, p.o.HistoryTurns, p.o.HistoryTTL)
		total = n
		return "", err
	})
	if err != nil {
		return storeErr(err)
	}
	if total > int64(p.o.HardCap) && total == int64(p.o.HardCap)+1 {
		// Past the hard cap a conversation needs a person, not ever larger prompts.
		if _, err := p.convs.Update(ctx, conv, nil, func(c *Conversation) error {
			c.Flagged = fmt.Sprintf("more than %d turns", p.o.HardCap)
			return nil
		}); err == nil {
			p.m.Flagged.Inc()
			p.Audit(ctx, AuditRecord{Kind: "flagged", Conv: conv, Detail: "history hard cap"})
		}
	}
	return nil
}

// History returns a conversation's kept turns, oldest first, without the
// duplicates a crash between an append and its record may leave.
func (p *Pipeline) History(ctx context.Context, conv string) ([]Turn, error) {
	raw, err := p.o.Store.History(ctx, conv)
	if err != nil {
		return nil, err
	}
	out := make([]Turn, 0, len(raw))
	seen := map[string]bool{}
	for _, b := range raw {
		var t Turn
		if json.Unmarshal(b, &t) != nil {
			continue
		}
		if t.ID != "" {
			k := t.Role + ":" + t.ID
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		out = append(out, t)
	}
	return out, nil
}

func (p *Pipeline) customerMessage(ctx context.Context, t *Task) error {
	ev := t.Event
	at := ev.Timestamp
	if at.IsZero() {
		at = p.now()
	}
	counted := false
	conv, err := p.convs.Update(ctx, t.Conv, p.initConv(t), func(c *Conversation) error {
		counted = false
		if c.LastEvent == ev.ID && ev.ID != "" {
			return nil // a retry of this task: already counted
		}
		counted = true
		c.Turns++
		c.LastCustomerAt = at
		c.LastEvent = ev.ID
		mergeIdentity(&c.Contact, ev.Contact)
		if c.State == StateClosed {
			c.State = StateBot // a new message reopens a closed conversation
		}
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	if counted {
		// The admin API's live stream tails the audit trail; this is its
		// "new message" event (no text: the trail holds no message content).
		p.Audit(ctx, AuditRecord{Kind: "message", Conv: conv.ID, Inbound: ev.ID, RequestID: t.RequestID, Detail: "customer"})
	}
	if err := p.appendTurn(ctx, t.Conv, Turn{ID: ev.ID, Role: "customer", Text: describe(ev.Message), At: at}); err != nil {
		return err
	}
	if conv.State != StateBot && !conv.handedOffBy(replyKey(t.Conv, ev.ID)) {
		// A person has the conversation: the bot stays silent, unless a
		// release rule gives it back.
		return p.personTurn(ctx, t, conv)
	}
	reply := &Task{Kind: TaskReply, Instance: t.Instance, Conv: t.Conv, ReplyTo: ev.ID, RequestID: t.RequestID, ReceivedAt: t.ReceivedAt, AgentSeen: t.AgentSeen}
	if p.o.QuietWindow > 0 {
		// Customers send bursts of short messages: wait for quiet, then
		// answer all of it at once. Rescheduling the same id debounces.
		return storeErr(p.scheduleTask(ctx, "reply:"+t.Conv, p.now().Add(p.o.QuietWindow), reply))
	}
	return p.reply(ctx, reply)
}

// personTurn handles a customer's message while a person has the
// conversation: the hook first (response deadlines), then the release
// rules; when one matches, the conversation goes back to the bot, the
// customer gets the rule's message and OnRelease runs.
func (p *Pipeline) personTurn(ctx context.Context, t *Task, conv *Conversation) error {
	if conv.State != StateHandedOff && conv.State != StateHuman {
		return nil
	}
	if h := p.o.Hooks.OnCustomerMessage; h != nil {
		if err := h(ctx, conv, t.Event); err != nil {
			return err
		}
	}
	history, err := p.History(ctx, t.Conv)
	if err != nil {
		return storeErr(err)
	}
	d := p.decide(conv, history, p.now())
	if d.Release == nil {
		return nil
	}
	agentSeen, err := p.o.Store.GetCounter(ctx, AgentCounterKey(t.Conv))
	if err != nil {
		return storeErr(err)
	}
	key := "release:" + t.Conv + ":" + t.Event.ID
	// The hook first: should the state change below be lost to a crash,
	// the retry finds the person's state and releases again.
	if p.o.Hooks.OnRelease != nil {
		if err := p.o.Hooks.OnRelease(ctx, conv); err != nil {
			return err
		}
	}
	var prev string
	conv, err = p.convs.Update(ctx, t.Conv, nil, func(c *Conversation) error {
		prev = c.State
		if c.State == StateHandedOff || c.State == StateHuman {
			c.State = StateBot
			c.Assignee = ""
		}
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	if prev != conv.State {
		p.Audit(ctx, AuditRecord{Kind: "release", Conv: conv.ID, Key: key, Inbound: t.Event.ID, RequestID: t.RequestID,
			Rules: d.Version, Detail: fmt.Sprintf("rule %q: %s -> %s", d.Release.Rule, prev, conv.State)})
	}
	if strings.TrimSpace(d.Release.CustomerMessage) == "" {
		return nil
	}
	return p.sendOne(ctx, conv, t.Event.ID, Outgoing{Key: key + ":send", Text: d.Release.CustomerMessage, AgentSeen: agentSeen})
}

func (p *Pipeline) agentMessage(ctx context.Context, t *Task) error {
	ev := t.Event
	at := ev.Timestamp
	if at.IsZero() {
		at = p.now()
	}
	var prev string
	conv, err := p.convs.Update(ctx, t.Conv, p.initConv(t), func(c *Conversation) error {
		prev = c.State
		if c.State == StateBot || c.State == StateHandedOff {
			c.State = StateHuman
		}
		if at.After(c.LastAgentAt) {
			c.LastAgentAt = at
		}
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	// The bot steps aside: a reply still waiting for its quiet window is void.
	_ = p.CancelTimer(ctx, "reply:"+t.Conv)
	if err := p.appendTurn(ctx, t.Conv, Turn{ID: ev.ID, Role: "agent", Text: describe(ev.Message), At: at}); err != nil {
		return err
	}
	if prev != conv.State {
		p.Audit(ctx, AuditRecord{Kind: "state", Conv: conv.ID, Inbound: ev.ID, RequestID: t.RequestID,
			Detail: prev + " -> " + conv.State + " (agent message)"})
	}
	if p.o.Hooks.OnAgentMessage != nil {
		return p.o.Hooks.OnAgentMessage(ctx, conv, ev)
	}
	return nil
}

// AgentCounterKey counts the agent messages the hub has seen for a
// conversation. Ingress bumps it as soon as a webhook arrives, before the
// event is queued, so a bot reply composed meanwhile can be dropped.
func AgentCounterKey(conv string) string { return "agentmsg:" + conv }

// replyKey is the idempotency key of the bot's turn answering inbound.
func replyKey(conv, inbound string) string { return "reply:" + conv + ":" + inbound }

// handedOffBy reports whether the reply turn key handed c over: a retry
// of that turn must finish it, not take it for a person's conversation.
func (c *Conversation) handedOffBy(key string) bool {
	return c.State == StateHandedOff && c.HandoffKey == key
}

// reply asks the LLM, evaluates the rules, writes the CRM, hands off when
// told to, and sends the reply.
func (p *Pipeline) reply(ctx context.Context, t *Task) error {
	conv, _, err := p.convs.Get(ctx, t.Conv)
	if err != nil {
		return storeErr(err)
	}
	key := replyKey(t.Conv, t.ReplyTo)
	if conv.State != StateBot && !conv.handedOffBy(key) {
		return nil
	}
	var agentSeen int64
	if t.AgentSeen != nil {
		agentSeen = *t.AgentSeen
	} else if agentSeen, err = p.o.Store.GetCounter(ctx, AgentCounterKey(t.Conv)); err != nil {
		return storeErr(err)
	}
	if now, err := p.o.Store.GetCounter(ctx, AgentCounterKey(t.Conv)); err != nil {
		return storeErr(err)
	} else if now != agentSeen {
		return nil // a person answered after this message arrived: no bot reply, not even an LLM call
	}
	history, err := p.History(ctx, t.Conv)
	if err != nil {
		return storeErr(err)
	}
	now := p.now()

	// Profile from the CRM, once per conversation.
	if crm, ok := p.crm(); ok && conv.ContactID == "" {
		if c, err := crm.GetContact(ctx, "", &conv.Contact); err == nil {
			conv.ContactID, conv.Owner, conv.ContactURL, conv.Tags = c.ID, c.OwnerID, c.URL, c.Tags
		} else if sdk.CodeOf(err) != sdk.CodeNotFound && sdk.IsRetryable(err) {
			return err
		}
	}

	replyText, fallback, fallbackReason := "", false, ""
	var usage *sdk.GenerateResponse
	if llm, ok := p.llm(); ok {
		start := p.now()
		resp, err := llm.Generate(ctx, &sdk.GenerateRequest{
			IdempotencyKey: key, ConversationKey: t.Conv, System: p.o.SystemPrompt,
			Context: profileContext(conv), History: toSDKTurns(history), OutputSchema: OutputSchema, ModelHint: "smart",
		})
		p.m.Stage.WithLabelValues("llm").Observe(p.now().Sub(start).Seconds())
		switch {
		case err != nil && (sdk.IsRetryable(err) || ctx.Err() != nil):
			return err // a shutdown's cancellation is not the model's refusal
		case err != nil:
			// A permanent LLM failure (a revoked key, a refused prompt) must
			// not leave the customer unanswered: a person takes over.
			fallback, fallbackReason = true, "llm_error: "+err.Error()
		default:
			usage = resp
			f, text := parseStructured(resp.Structured)
			mergeFacts(&conv.Facts, f)
			replyText = text
			if replyText == "" {
				replyText = resp.Text
			}
			if resp.Fallback {
				fallback, fallbackReason = true, resp.FallbackReason
			}
		}
	}

	decideOn := conv
	if conv.handedOffBy(key) {
		// The retry decides as the first attempt did, before its handoff:
		// handoff rules apply to a conversation the bot has.
		c := *conv
		c.State = StateBot
		decideOn = &c
	}
	d := p.decide(decideOn, history, now)
	if fallback && d.Handoff == nil {
		d.Handoff = &rules.Handoff{Rule: "llm_fallback", Reason: fallbackReason, Team: d.Team, PauseBot: true, Notify: []string{"assignee"}}
	}

	conv, err = p.convs.Update(ctx, t.Conv, nil, func(c *Conversation) error {
		c.Facts = conv.Facts
		c.ContactID, c.Owner, c.ContactURL = firstNonEmpty(c.ContactID, conv.ContactID), firstNonEmpty(c.Owner, conv.Owner), firstNonEmpty(c.ContactURL, conv.ContactURL)
		if conv.Tags != nil {
			c.Tags = conv.Tags
		}
		c.Score, c.Tier, c.Team, c.Priority = d.Score, d.Tier, d.Team, d.Priority
		c.LastDecision, c.Explain = d, d.Explain()
		if usage != nil && c.LastEvent != "" {
			addCost(&c.Cost, usage)
		}
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	if usage != nil {
		p.countTokens(usage)
	}
	if err := p.writeCRM(ctx, conv, d, key, t); err != nil {
		return err
	}
	if d.Handoff != nil {
		if err := p.handoff(ctx, conv, d, key, t); err != nil {
			return err
		}
	}
	for _, f := range d.Followups {
		if err := p.Schedule(ctx, "fu:"+t.Conv+":"+f.Name, f.At, "followup", FollowupTimer{Conv: t.Conv, Inbound: t.ReplyTo, Followup: f}); err != nil {
			return storeErr(err)
		}
	}

	var texts []string
	switch {
	case d.Handoff != nil && d.Handoff.Immediate:
		texts = append(texts, firstNonEmpty(d.Handoff.CustomerMessage, replyText))
	case d.Handoff != nil:
		texts = append(texts, replyText, d.Handoff.CustomerMessage)
	default:
		texts = append(texts, replyText)
	}
	n := 0
	for _, text := range texts {
		if strings.TrimSpace(text) == "" {
			continue
		}
		out := Outgoing{Key: fmt.Sprintf("%s:send:%d", key, n), Text: text, AgentSeen: agentSeen}
		n++
		if p.o.Pacing.Enabled {
			due := p.now().Add(p.pace(text))
			st := &Task{Kind: TaskSend, Instance: t.Instance, Conv: t.Conv, ReplyTo: t.ReplyTo, Send: &out, RequestID: t.RequestID}
			if err := p.scheduleTask(ctx, "send:"+out.Key, due, st); err != nil {
				return storeErr(err)
			}
			continue
		}
		if err := p.sendOne(ctx, conv, t.ReplyTo, out); err != nil {
			return err
		}
	}
	return nil
}

// FollowupTimer is the payload of a follow-up timer.
type FollowupTimer struct {
	Conv     string         `json:"conv"`
	Inbound  string         `json:"inbound"`
	Followup rules.Followup `json:"followup"`
}

func (p *Pipeline) pace(text string) time.Duration {
	d := time.Duration(len([]rune(text))) * p.o.Pacing.PerChar
	d = max(d, p.o.Pacing.Min)
	if p.o.Pacing.Max > 0 {
		d = min(d, p.o.Pacing.Max)
	}
	return d
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (p *Pipeline) crm() (CRMPlugin, bool) {
	if p.o.CRM == "" {
		return nil, false
	}
	return p.o.Plugins.CRM(p.o.CRM)
}

func (p *Pipeline) llm() (LLMPlugin, bool) {
	if p.o.LLM == "" {
		return nil, false
	}
	return p.o.Plugins.LLM(p.o.LLM)
}

func toSDKTurns(h []Turn) []sdk.Turn {
	out := make([]sdk.Turn, len(h))
	for i, t := range h {
		out[i] = sdk.Turn{Role: t.Role, Text: t.Text, At: t.At}
	}
	return out
}

// profileContext is what the LLM learns about this customer: their own
// profile and facts, never anything about another contact.
func profileContext(c *Conversation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Channel: %s\n", c.Channel)
	if c.Contact.DisplayName != "" {
		fmt.Fprintf(&b, "Customer name: %s\n", c.Contact.DisplayName)
	}
	if c.Turns > 0 {
		fmt.Fprintf(&b, "Messages from this customer so far: %d\n", c.Turns)
	}
	f := c.Facts
	for _, kv := range [][2]string{{"Need", f.Need}, {"Budget", f.Budget}, {"Timeline", f.Timeline}, {"Last intent", f.Intent}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
		}
	}
	if c.Tier != "" {
		fmt.Fprintf(&b, "Lead tier: %s (score %d)\n", c.Tier, c.Score)
	}
	return b.String()
}

type structured struct {
	Reply           string   `json:"reply"`
	Intent          string   `json:"intent"`
	Need            string   `json:"need"`
	Budget          string   `json:"budget"`
	Timeline        string   `json:"timeline"`
	DecisionMaker   *bool    `json:"decision_maker"`
	LeadEstimate    *float64 `json:"lead_estimate"`
	Action          string   `json:"action"`
	SuggestedAction string   `json:"suggested_action"`
	Confidence      *float64 `json:"confidence"`
}

// parseStructured reads the LLM's facts leniently: a malformed block gives
// no facts, not an error (the plugin already validated what it could).
func parseStructured(b json.RawMessage) (sdk.LeadFacts, string) {
	var s structured
	if len(b) == 0 || json.Unmarshal(b, &s) != nil {
		return sdk.LeadFacts{}, ""
	}
	f := sdk.LeadFacts{Intent: s.Intent, Need: s.Need, Budget: s.Budget, Timeline: s.Timeline,
		Action: firstNonEmpty(s.Action, s.SuggestedAction)}
	if s.DecisionMaker != nil {
		f.DecisionMaker, f.DecisionMakerKnown = *s.DecisionMaker, true
	}
	if s.LeadEstimate != nil {
		f.Estimate = int(*s.LeadEstimate)
	}
	if s.Confidence != nil {
		f.Confidence = *s.Confidence
	}
	return f, s.Reply
}

// mergeFacts accumulates what the LLM learns across turns: a new value
// replaces an old one, silence keeps it.
func mergeFacts(dst *sdk.LeadFacts, src sdk.LeadFacts) {
	set := func(d *string, v string) {
		if v != "" {
			*d = v
		}
	}
	set(&dst.Intent, src.Intent)
	set(&dst.Need, src.Need)
	set(&dst.Budget, src.Budget)
	set(&dst.Timeline, src.Timeline)
	set(&dst.Action, src.Action)
	if src.DecisionMakerKnown {
		dst.DecisionMaker, dst.DecisionMakerKnown = src.DecisionMaker, true
	}
	if src.Estimate != 0 {
		dst.Estimate = src.Estimate
	}
	dst.Confidence = src.Confidence
	for k, v := range src.Extra {
		if dst.Extra == nil {
			dst.Extra = map[string]string{}
		}
		dst.Extra[k] = v
	}
}

func addCost(c *Cost, r *sdk.GenerateResponse) {
	c.InputTokens += r.Usage.InputTokens
	c.OutputTokens += r.Usage.OutputTokens
	c.CacheReadTokens += r.Usage.CacheReadTokens
	c.CacheWriteTokens += r.Usage.CacheWriteTokens
	c.USD += r.Usage.CostUSD
	c.Calls++
}

func (p *Pipeline) countTokens(r *sdk.GenerateResponse) {
	m := firstNonEmpty(r.Model, "unknown")
	p.m.Tokens.WithLabelValues(m, "input").Add(float64(r.Usage.InputTokens))
	p.m.Tokens.WithLabelValues(m, "output").Add(float64(r.Usage.OutputTokens))
	p.m.Tokens.WithLabelValues(m, "cache_read").Add(float64(r.Usage.CacheReadTokens))
	p.m.Tokens.WithLabelValues(m, "cache_write").Add(float64(r.Usage.CacheWriteTokens))
	p.m.CostUSD.WithLabelValues(m).Add(r.Usage.CostUSD)
}

// RulesInput builds the rules' view of a conversation.
func RulesInput(c *Conversation, history []Turn, now time.Time) rules.Input {
	// The message is the burst since the last bot or agent turn.
	var burst []string
	var last Turn
	for i := len(history) - 1; i >= 0; i-- {
		if history[i].Role != "customer" {
			break
		}
		if last.At.IsZero() {
			last = history[i]
		}
		burst = append([]string{history[i].Text}, burst...)
	}
	f := c.Facts
	in := rules.Input{
		Now:     now,
		Message: rules.Message{ID: last.ID, Text: strings.Join(burst, "\n"), Channel: c.Channel, Type: "text", Time: last.At, Author: "customer"},
		Contact: rules.Contact{ID: c.ContactID, Name: c.Contact.DisplayName, Phone: c.Contact.Phone, Email: c.Contact.Email,
			Owner: c.Owner, Tags: c.Tags, Score: c.Score, Messages: c.Turns, FirstSeen: c.FirstSeen,
			ChannelIDs: map[string]string{c.Channel: c.Contact.UserID}},
		Lead: rules.Lead{Intent: f.Intent, Need: f.Need, Budget: f.Budget, Timeline: f.Timeline, DecisionMaker: f.DecisionMaker,
			Action: f.Action, Confidence: f.Confidence, LeadEstimate: f.Estimate, Extra: f.Extra},
		Conversation: rules.Conversation{ID: c.ID, Turns: c.Turns, State: c.State, FirstSeen: c.FirstSeen,
			LastAgentReply: c.LastAgentAt, LastCustomerMessage: c.LastCustomerAt},
	}
	return in
}

func (p *Pipeline) decide(c *Conversation, history []Turn, now time.Time) *rules.Decision {
	if p.o.Rules == nil {
		return &rules.Decision{Now: now}
	}
	start := p.now()
	d, err := p.o.Rules.Evaluate(RulesInput(c, history, now))
	p.m.Stage.WithLabelValues("rules").Observe(p.now().Sub(start).Seconds())
	if err != nil {
		var ee *rules.EvalError
		if !errors.As(err, &ee) || d == nil {
			p.log.Error("rules evaluation failed", "conv", c.ID, "err", err)
			return &rules.Decision{Now: now}
		}
		p.log.Warn("some rules failed at run time and counted as not matching", "conv", c.ID, "err", err)
	}
	return d
}

func (p *Pipeline) writeCRM(ctx context.Context, conv *Conversation, d *rules.Decision, key string, t *Task) error {
	crm, ok := p.crm()
	if !ok {
		return nil
	}
	start := p.now()
	defer func() { p.m.Stage.WithLabelValues("crm").Observe(p.now().Sub(start).Seconds()) }()
	ident := conv.Contact
	ident.Instance = conv.Instance
	var contact sdk.Contact
	contactKey := key + ":crm:contact"
	// forget drops a contact id the CRM no longer knows (deleted by a
	// person, or a CRM that lost it), so the retry upserts it afresh.
	forget := func(cause error) error {
		_ = p.o.Store.Forget(ctx, EffectKey(contactKey))
		if _, err := p.convs.Update(ctx, conv.ID, nil, func(c *Conversation) error {
			c.ContactID, c.DealID = "", ""
			return nil
		}); err != nil {
			return storeErr(err)
		}
		return sdk.Retryable(fmt.Errorf("the CRM no longer has contact %s; upserting it again: %w", contact.ID, cause), 0)
	}
	res, already, err := p.once(ctx, contactKey, func() (string, error) {
		r, err := crm.UpsertContact(ctx, &sdk.UpsertContactRequest{IdempotencyKey: contactKey, Contact: sdk.Contact{
			ID: conv.ContactID, Identities: []sdk.Identity{ident}, Name: ident.DisplayName, Phone: ident.Phone, Email: ident.Email,
			Facts: conv.Facts, Score: d.Score, Tier: d.Tier, SourceChannel: conv.Channel,
		}})
		if err != nil {
			return "", err
		}
		contact = r.Contact
		b, _ := json.Marshal(map[string]string{"id": r.Contact.ID, "owner": r.Contact.OwnerID, "url": r.Contact.URL})
		return string(b), nil
	})
	if sdk.CodeOf(err) == sdk.CodeNotFound && conv.ContactID != "" {
		return forget(err)
	}
	if err != nil {
		return err
	}
	if already {
		var m map[string]string
		_ = json.Unmarshal([]byte(res), &m)
		contact.ID, contact.OwnerID, contact.URL = m["id"], m["owner"], m["url"]
	} else {
		p.Audit(ctx, AuditRecord{Kind: "crm_contact", Conv: conv.ID, Key: contactKey, Inbound: t.ReplyTo, RequestID: t.RequestID,
			Target: contact.ID, Rules: d.Version, Score: d.Score, Tier: d.Tier})
	}
	if contact.ID != "" && (contact.ID != conv.ContactID || contact.OwnerID != conv.Owner) {
		c2, err := p.convs.Update(ctx, conv.ID, nil, func(c *Conversation) error {
			c.ContactID, c.ContactURL = contact.ID, firstNonEmpty(contact.URL, c.ContactURL)
			c.Owner = firstNonEmpty(contact.OwnerID, c.Owner)
			return nil
		})
		if err != nil {
			return storeErr(err)
		}
		*conv = *c2
	}
	if contact.ID == "" {
		return nil
	}
	noteKey := key + ":crm:note"
	noteID, already, err := p.once(ctx, noteKey, func() (string, error) {
		n, err := crm.AddNote(ctx, noteKey, &sdk.Note{ContactID: contact.ID, DealID: conv.DealID, Author: "switchboard",
			Body: "Switchboard: " + d.Explain()})
		if err != nil {
			return "", err
		}
		return n.ID, nil
	})
	if sdk.CodeOf(err) == sdk.CodeNotFound {
		return forget(err)
	}
	if err != nil {
		return err
	}
	if !already {
		p.Audit(ctx, AuditRecord{Kind: "crm_note", Conv: conv.ID, Key: noteKey, Inbound: t.ReplyTo, Target: noteID, Rules: d.Version, Score: d.Score, Tier: d.Tier})
	}
	stage, ok := p.o.Deals[d.Tier]
	if !ok {
		return nil
	}
	dealKey := key + ":crm:deal"
	dealID, already, err := p.once(ctx, dealKey, func() (string, error) {
		deal, err := crm.UpsertDeal(ctx, dealKey, &sdk.Deal{ID: conv.DealID, ContactID: contact.ID, Name: firstNonEmpty(conv.Contact.DisplayName, "Lead") + " (" + conv.Channel + ")",
			Pipeline: stage.Pipeline, Stage: stage.Stage, OwnerID: conv.Owner})
		if err != nil {
			return "", err
		}
		return deal.ID, nil
	})
	if sdk.CodeOf(err) == sdk.CodeNotFound {
		return forget(err)
	}
	if err != nil {
		return err
	}
	if !already {
		p.Audit(ctx, AuditRecord{Kind: "crm_deal", Conv: conv.ID, Key: dealKey, Inbound: t.ReplyTo, Target: dealID, Tier: d.Tier, Detail: stage.Pipeline + "/" + stage.Stage})
	}
	if dealID != "" && dealID != conv.DealID {
		if _, err := p.convs.Update(ctx, conv.ID, nil, func(c *Conversation) error { c.DealID = dealID; return nil }); err != nil {
			return storeErr(err)
		}
		conv.DealID = dealID
	}
	return nil
}

func (p *Pipeline) handoff(ctx context.Context, conv *Conversation, d *rules.Decision, key string, t *Task) error {
	h := d.Handoff
	var prev string
	c2, err := p.convs.Update(ctx, conv.ID, nil, func(c *Conversation) error {
		prev = c.State
		if c.State == StateBot && h.PauseBot {
			c.State = StateHandedOff
			c.HandedOffAt = p.now()
			c.HandoffKey = key
		}
		c.HandoffReason = firstNonEmpty(h.Reason, h.Rule)
		if h.Team != "" {
			c.Team = h.Team
		}
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	*conv = *c2
	if prev != conv.State {
		p.m.Handoffs.WithLabelValues(h.Rule).Inc()
		p.Audit(ctx, AuditRecord{Kind: "handoff", Conv: conv.ID, Key: key + ":handoff", Inbound: t.ReplyTo, RequestID: t.RequestID,
			Rules: d.Version, Score: d.Score, Tier: d.Tier, Detail: fmt.Sprintf("rule %q: %s; team %s", h.Rule, h.Reason, conv.Team)})
	}
	if p.o.Hooks.OnHandoff != nil {
		return p.o.Hooks.OnHandoff(ctx, conv, d, key+":handoff")
	}
	return nil
}

// sendOne sends one reply unless a person took the conversation since the
// reply was composed: users of other inbox products complain most about a
// bot that answers after a human took over.
func (p *Pipeline) sendOne(ctx context.Context, conv *Conversation, inbound string, out Outgoing) error {
	seen, err := p.o.Store.GetCounter(ctx, AgentCounterKey(conv.ID))
	if err != nil {
		return storeErr(err)
	}
	cur, _, err := p.convs.Get(ctx, conv.ID)
	if err != nil {
		return storeErr(err)
	}
	if seen != out.AgentSeen || cur.State == StateHuman || cur.State == StateClosed {
		if _, done, _ := p.effectDone(ctx, out.Key); !done {
			p.m.Replies.WithLabelValues("dropped").Inc()
			p.Audit(ctx, AuditRecord{Kind: "reply_dropped", Conv: conv.ID, Key: out.Key, Inbound: inbound, Detail: "a person took the conversation"})
		}
		return nil
	}
	ch, err := p.channel(cur.Instance)
	if err != nil {
		return err
	}
	start := p.now()
	id, already, err := p.once(ctx, out.Key, func() (string, error) {
		r, err := ch.Send(ctx, &sdk.Outbound{IdempotencyKey: out.Key, ConversationKey: cur.Key, To: cur.Contact, Type: "text", Text: out.Text})
		if err != nil {
			return "", err
		}
		return r.ProviderMessageID, nil
	})
	p.m.Stage.WithLabelValues("send").Observe(p.now().Sub(start).Seconds())
	if err != nil {
		if sdk.IsRetryable(err) {
			return err
		}
		// The provider will never take it (outside the window, blocked):
		// flag the conversation for a person instead of retrying forever.
		p.m.Replies.WithLabelValues("failed").Inc()
		p.Audit(ctx, AuditRecord{Kind: "reply_failed", Conv: cur.ID, Key: out.Key, Inbound: inbound, Detail: err.Error()})
		_, _ = p.convs.Update(ctx, cur.ID, nil, func(c *Conversation) error {
			c.Flagged = "reply refused by the channel: " + sdk.ReasonOf(err)
			return nil
		})
		return nil
	}
	if !already {
		p.m.Replies.WithLabelValues("sent").Inc()
		p.Audit(ctx, AuditRecord{Kind: "reply_sent", Conv: cur.ID, Key: out.Key, Inbound: inbound, Target: id, Score: cur.Score, Tier: cur.Tier})
	}
	// Also when the send was already recorded: a crash may have fallen
	// between that record and this append, which has its own key.
	if err := p.appendTurn(ctx, cur.ID, Turn{ID: out.Key, Role: "bot", Text: out.Text, At: p.now()}); err != nil {
		return err
	}
	_, err = p.convs.Update(ctx, cur.ID, nil, func(c *Conversation) error { c.LastBotAt = p.now(); return nil })
	return storeErr(err)
}
