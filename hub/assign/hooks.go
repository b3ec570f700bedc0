package assign

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/rules"
)

// Install registers the assigner on its pipeline: the handoff, agent
// message, customer message and release hooks, and the timer handlers
// (SLA, idle release, notifications, follow-ups). Call it before the
// pipeline runs.
func (a *Assigner) Install() error {
	p := a.o.Pipeline
	if p == nil {
		return errors.New("assign: Install needs a pipeline")
	}
	p.SetHooks(pipeline.Hooks{
		OnHandoff:         a.onHandoff,
		OnAgentMessage:    a.onAgentMessage,
		OnCustomerMessage: a.onCustomerMessage,
		OnRelease:         a.onRelease,
	})
	p.HandleTimers(TimerSLA, a.onSLA)
	p.HandleTimers(TimerIdle, a.onIdle)
	p.HandleTimers(TimerNotify, a.onNotify)
	p.HandleTimers(TimerFollowup, a.onFollowup)
	p.HandleTimers(TimerTick, a.onTick)
	// The periodic work rides on a timer of its own: one replica does it
	// each round, and a replica that dies mid-round leaves it to another.
	return a.o.Pipeline.Schedule(context.Background(), tickTimerID, a.now().Add(a.o.Tick), TimerTick, struct{}{})
}

// TimerTick is the kind of the assigner's periodic timer.
const (
	TimerTick   = "assign_tick"
	tickTimerID = "assign:tick"
)

func (a *Assigner) onTick(ctx context.Context, _ json.RawMessage) error {
	// Next round first: should this one fail, the claim's expiry brings
	// the timer back anyway.
	if err := a.o.Pipeline.Schedule(ctx, tickTimerID, a.now().Add(a.o.Tick), TimerTick, struct{}{}); err != nil {
		return err
	}
	a.tick(ctx)
	return nil
}

// Run drains queues and re-checks hours every Tick (a team that opens
// gets its backlog), refreshes the gauges, and repairs leftovers of
// crashed calls, until ctx ends. An installed Assigner needs no Run: the
// same work runs on a pipeline timer.
func (a *Assigner) Run(ctx context.Context) {
	t := time.NewTicker(a.o.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.tick(ctx)
	}
}

func (a *Assigner) tick(ctx context.Context) {
	rs, err := a.rules()
	if err != nil {
		return
	}
	for _, name := range sortedKeys(rs.Teams()) {
		a.Drain(ctx, name)
	}
	a.refreshGauges(ctx, rs)
	// One replica repairs per window; the lease is left to expire so the
	// others skip until then.
	if ok, err := a.o.Store.Acquire(ctx, "assign:reconcile", a.o.Replica, max(30*time.Second, a.o.Tick)); err == nil && ok {
		if _, err := a.Reconcile(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("reconcile failed", "err", err)
		}
	}
}

func (a *Assigner) refreshGauges(ctx context.Context, rs *rules.Ruleset) {
	recs, err := a.agentRecs(ctx)
	if err != nil {
		return
	}
	for id := range rs.Agents() {
		n := 0
		if r := recs[id]; r != nil {
			n = len(r.Open)
		}
		a.m.Load.WithLabelValues(id).Set(float64(n))
	}
	for name := range rs.Teams() {
		if n, err := a.queueLen(ctx, name); err == nil {
			a.m.Waiting.WithLabelValues(name).Set(float64(n))
		}
	}
}

// onHandoff assigns a conversation the rules handed to a person, and
// notifies the targets the rule names (the assignee is notified by the
// assignment itself, also when it comes later from the queue).
func (a *Assigner) onHandoff(ctx context.Context, conv *pipeline.Conversation, d *rules.Decision, key string) error {
	rs, err := a.rules()
	if err != nil {
		return sdk.Retryable(err, time.Second)
	}
	h := d.Handoff
	team := firstNonEmpty(h.Team, firstNonEmpty(conv.Team, d.Team))
	if team == "" {
		a.log.Warn("handoff without a team: nobody to assign", "conv", conv.ID, "rule", h.Rule)
		a.audit(ctx, pipeline.AuditRecord{Kind: "assignment_failed", Conv: conv.ID, Detail: "handoff rule " + h.Rule + " gives no team"})
		return nil
	}
	hist, _ := a.o.Pipeline.History(ctx, conv.ID)
	in := pipeline.RulesInput(conv, hist, a.now())
	since := conv.HandedOffAt
	if since.IsZero() {
		since = a.now()
	}
	res, err := a.Submit(ctx, Request{Conv: conv.ID, Team: team, Priority: firstNonEmpty(d.Priority, conv.Priority),
		Owner: conv.Owner, Since: since, Input: &in, Decision: d})
	switch {
	case errors.Is(err, ErrUnknownTeam), errors.Is(err, ErrNoTeam):
		a.log.Warn("handoff to an unknown team", "conv", conv.ID, "team", team)
		return nil
	case err != nil:
		return sdk.Retryable(err, time.Second)
	}
	var targets []string
	assignee := res.Agent
	for _, n := range h.Notify {
		kind, arg, _ := strings.Cut(n, ":")
		switch kind {
		case "assignee":
		case "supervisor":
			if t, ok := rs.Team(team); ok && t.Supervisor != "" {
				targets = append(targets, t.Supervisor)
			}
		case "team":
			tn := firstNonEmpty(arg, team)
			if t, ok := rs.Team(tn); ok {
				for _, m := range t.Members {
					targets = append(targets, m.ID)
				}
			}
		case "agent":
			targets = append(targets, arg)
		case "owner":
			if ag, ok := findAgent(rs, conv.Owner); ok {
				targets = append(targets, ag.ID)
			}
		}
	}
	var others []string
	seen := map[string]bool{assignee: true}
	for _, t := range targets {
		if !seen[t] {
			seen[t] = true
			others = append(others, t)
		}
	}
	if len(others) > 0 {
		note := "handed off: " + firstNonEmpty(h.Reason, h.Rule)
		if res.Queued {
			note += " (waiting in the queue of team " + team + ")"
		} else {
			note += " (assigned to " + assignee + ")"
		}
		a.notifyAgents(ctx, rs, "handoff", others, conv.ID, key, note)
	}
	return nil
}

// onAgentMessage counts an agent's reply: the first one is the first
// response, any one stops the running deadline and restarts the idle
// clock. An agent who answers a conversation nobody was assigned (from the
// channel's own inbox) takes it, when the hub knows who they are.
func (a *Assigner) onAgentMessage(ctx context.Context, conv *pipeline.Conversation, ev *sdk.Event) error {
	at := ev.Timestamp
	if at.IsZero() {
		at = a.now()
	}
	rec, first, err := a.agentReplied(ctx, conv.ID, at)
	if err != nil {
		return sdk.Retryable(err, time.Second)
	}
	_ = a.cancelTimer(ctx, slaTimerID(conv.ID))
	if first && rec != nil {
		a.m.FirstResponse.WithLabelValues(rec.Team).Observe(rec.FirstResponse.Seconds())
		a.audit(ctx, pipeline.AuditRecord{Kind: "first_response", Conv: conv.ID, Target: rec.Assignee,
			Detail: "time to first response " + rec.FirstResponse.Round(time.Second).String()})
	}
	if rec == nil || rec.State != RecAssigned || rec.Assignee == "" {
		if rs, err := a.rules(); err == nil {
			if ag, ok := agentFromEvent(rs, conv, ev); ok {
				if _, err := a.TakeOver(ctx, conv.ID, ag.ID); err != nil && !errors.Is(err, ErrAtCapacity) {
					return sdk.Retryable(err, time.Second)
				}
			}
		}
	}
	a.armIdle(ctx, conv.ID, at)
	return nil
}

// agentFromEvent finds the agent who wrote ev: the provider's agent id is
// the agent's id or its "<channel>_id" attribute (zalo_id: the OA admin
// id the agent writes as).
func agentFromEvent(rs *rules.Ruleset, conv *pipeline.Conversation, ev *sdk.Event) (rules.Agent, bool) {
	if ev.AgentID == "" {
		return rules.Agent{}, false
	}
	agents := rs.Agents()
	if ag, ok := agents[ev.AgentID]; ok {
		return ag, true
	}
	ch := firstNonEmpty(ev.Contact.Channel, conv.Channel)
	for _, id := range sortedKeys(agents) {
		if agents[id].Attributes[ch+"_id"] == ev.AgentID {
			return agents[id], true
		}
	}
	return rules.Agent{}, false
}

// onCustomerMessage runs for customer messages while a person has the
// conversation: it starts the next-response deadline.
func (a *Assigner) onCustomerMessage(ctx context.Context, conv *pipeline.Conversation, ev *sdk.Event) error {
	at := ev.Timestamp
	if at.IsZero() {
		at = a.now()
	}
	if _, err := a.customerWrote(ctx, conv.ID, at); err != nil {
		return sdk.Retryable(err, time.Second)
	}
	return nil
}

// onRelease runs after the pipeline gave a conversation back to the bot
// (a release rule matched): the assignee's slot frees.
func (a *Assigner) onRelease(ctx context.Context, conv *pipeline.Conversation) error {
	if err := a.finish(ctx, conv.ID, RecReleased, "rule", false); err != nil && !errors.Is(err, ErrNotFound) {
		return sdk.Retryable(err, time.Second)
	}
	return nil
}

type idleTimer struct {
	Conv string `json:"conv"`
}

// armIdle (re)starts the idle clock of a conversation a person has.
func (a *Assigner) armIdle(ctx context.Context, conv string, from time.Time) {
	if a.o.Pipeline == nil || a.o.ReleaseAfter <= 0 {
		return
	}
	if from.IsZero() {
		from = a.now()
	}
	if err := a.o.Pipeline.Schedule(ctx, idleTimerID(conv), from.Add(a.o.ReleaseAfter), TimerIdle, idleTimer{Conv: conv}); err != nil {
		a.log.Warn("scheduling the idle release failed", "conv", conv, "err", err)
	}
}

// onIdle gives a conversation back to the bot when no agent has written
// for ReleaseAfter.
func (a *Assigner) onIdle(ctx context.Context, raw json.RawMessage) error {
	var t idleTimer
	if json.Unmarshal(raw, &t) != nil {
		return nil
	}
	pc := a.pconv(ctx, t.Conv)
	if pc == nil || (pc.State != pipeline.StateHandedOff && pc.State != pipeline.StateHuman) {
		return nil
	}
	last := pc.HandedOffAt
	if pc.LastAgentAt.After(last) {
		last = pc.LastAgentAt
	}
	if last.IsZero() {
		a.armIdle(ctx, t.Conv, a.now())
		return nil
	}
	if due := last.Add(a.o.ReleaseAfter); a.now().Before(due) {
		a.armIdle(ctx, t.Conv, last)
		return nil
	}
	return a.finish(ctx, t.Conv, RecReleased, "idle", true)
}
