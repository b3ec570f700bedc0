package assign

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/rules"
)

// ---------------------------------------------------------------- admin actions

// Assign assigns a conversation in its team: to agent when agent is not
// empty (a manual assignment: the agent must exist and be below capacity;
// status and hours are the admin's call), otherwise by the owner and the
// team's strategy, or into the team's queue when nobody is available.
// Assigning a conversation that is already assigned returns the current
// assignment (idempotent), unless agent names someone else: then it moves.
func (a *Assigner) Assign(ctx context.Context, conv, agent string) (*Assignment, error) {
	rec, err := a.getRecord(ctx, conv)
	if err != nil {
		return nil, err
	}
	if rec == nil && a.pconv(ctx, conv) == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, conv)
	}
	req := a.requestFor(ctx, conv, rec)
	if req.Team == "" && agent != "" {
		rs, err := a.rules()
		if err != nil {
			return nil, err
		}
		if ts := teamsOf(rs, agent); len(ts) > 0 {
			req.Team = ts[0]
		}
	}
	req.Agent = agent
	if agent != "" && rec != nil && rec.Assignee != "" && rec.Assignee != agent {
		req.reassign = true
	}
	res, err := a.Submit(ctx, req)
	if err == nil && res != nil && res.Agent != "" {
		a.syncPipeline(ctx, conv, res.Agent, res.Team, pipeline.StateHandedOff)
	}
	return res, err
}

// Reassign moves a conversation to agent (or, with agent "", to the next
// available agent by the team's strategy, never the current one or one
// who already missed its deadline), freeing the current assignee's slot.
// ErrNoAgent when nobody else can take it: it stays where it is.
func (a *Assigner) Reassign(ctx context.Context, conv, agent string) (*Assignment, error) {
	rec, err := a.getRecord(ctx, conv)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, conv)
	}
	req := a.requestFor(ctx, conv, rec)
	req.Agent, req.reassign = agent, true
	if agent == "" && rec.Assignee != "" {
		req.exclude = map[string]bool{rec.Assignee: true}
	}
	return a.Submit(ctx, req)
}

// TakeOver gives a conversation to agent at once, whatever its state: the
// bot stops (state human). A supervisor or an agent picking it up.
func (a *Assigner) TakeOver(ctx context.Context, conv, agent string) (*Assignment, error) {
	rs, err := a.rules()
	if err != nil {
		return nil, err
	}
	if _, ok := rs.Agents()[agent]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownAgent, agent)
	}
	rec, err := a.getRecord(ctx, conv)
	if err != nil {
		return nil, err
	}
	pc := a.pconv(ctx, conv)
	if rec == nil && pc == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, conv)
	}
	req := a.requestFor(ctx, conv, rec)
	if rec == nil || rec.State == RecReleased || rec.State == RecClosed {
		req.Since = a.now()
	}
	if _, ok := rs.Team(req.Team); !ok || !isMember(rs, req.Team, agent) {
		if ts := teamsOf(rs, agent); len(ts) > 0 {
			req.Team = ts[0]
		}
	}
	req.Agent, req.reason = agent, "takeover"
	req.reassign = rec != nil && rec.Assignee != "" && rec.Assignee != agent
	res, err := a.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	a.syncPipeline(ctx, conv, agent, res.Team, pipeline.StateHuman)
	a.audit(ctx, pipeline.AuditRecord{Kind: "takeover", Conv: conv, Target: agent})
	return res, nil
}

func isMember(rs *rules.Ruleset, team, agent string) bool {
	t, ok := rs.Team(team)
	if !ok {
		return false
	}
	for _, m := range t.Members {
		if m.ID == agent {
			return true
		}
	}
	return false
}

// Release hands a conversation back to the bot: the assignee's slot frees
// (and the queue drains into it), SLA and idle timers stop.
func (a *Assigner) Release(ctx context.Context, conv, reason string) error {
	return a.finish(ctx, conv, RecReleased, firstNonEmpty(reason, "released"), true)
}

// Close closes a conversation (state closed: the bot answers if the
// customer writes again), freeing the assignee's slot.
func (a *Assigner) Close(ctx context.Context, conv, reason string) error {
	return a.finish(ctx, conv, RecClosed, firstNonEmpty(reason, "closed"), true)
}

// finish ends a conversation's assignment. With setState it also moves the
// pipeline's conversation (to bot or closed); the pipeline's own release
// has done that already.
func (a *Assigner) finish(ctx context.Context, conv, state, reason string, setState bool) error {
	var prev Record
	had := false
	rec, err := a.getRecord(ctx, conv)
	if err != nil {
		return err
	}
	if rec == nil && a.pconv(ctx, conv) == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, conv)
	}
	if rec != nil {
		if _, err := a.updateRecord(ctx, conv, func(r *Record) error {
			prev, had = *r, true
			if r.State == state && r.Assignee == "" && r.Pending == "" {
				return errKeep
			}
			r.State = state
			r.Assignee, r.Token, r.Pending, r.PendingToken = "", "", "", ""
			r.Deadline, r.DeadlineKind, r.AwaitingSince = time.Time{}, "", time.Time{}
			r.QueueKey, r.QueuedAt = "", time.Time{}
			return nil
		}); err != nil {
			return err
		}
	}
	_ = a.cancelTimer(ctx, slaTimerID(conv))
	_ = a.cancelTimer(ctx, idleTimerID(conv))
	if setState {
		ps := pipeline.StateBot
		if state == RecClosed {
			ps = pipeline.StateClosed
		}
		a.syncPipeline(ctx, conv, "-", "", ps)
	}
	if had && prev.QueueKey != "" {
		_ = a.o.Store.Delete(ctx, NS, prev.QueueKey)
	}
	if had && prev.Pending != "" {
		_, _ = a.removeSlot(ctx, prev.Pending, conv, prev.PendingToken)
	}
	kind := "release"
	if state == RecClosed {
		kind = "close"
	}
	if had && prev.State == state && prev.Assignee == "" {
		return nil // already done
	}
	a.m.Releases.WithLabelValues(reason).Inc()
	a.audit(ctx, pipeline.AuditRecord{Kind: kind, Conv: conv, Target: prev.Assignee, Detail: reason})
	if had && prev.Assignee != "" {
		if _, err := a.removeSlot(ctx, prev.Assignee, conv, prev.Token); err != nil {
			return err
		}
		if rs, err := a.rules(); err == nil {
			a.drainTeamsOf(ctx, rs, prev.Assignee)
		}
	}
	return nil
}

// ---------------------------------------------------------------- pipeline glue

// pconv returns the pipeline's conversation, or nil.
func (a *Assigner) pconv(ctx context.Context, conv string) *pipeline.Conversation {
	if a.o.Pipeline == nil {
		return nil
	}
	c, _, err := a.o.Pipeline.Conversations().Get(ctx, conv)
	if err != nil {
		return nil
	}
	return c
}

func (a *Assigner) rulesInput(ctx context.Context, pc *pipeline.Conversation) rules.Input {
	hist, _ := a.o.Pipeline.History(ctx, pc.ID)
	return pipeline.RulesInput(pc, hist, a.now())
}

// syncPipeline writes the assignee (agent; "-" clears it, "" leaves it),
// team and state into the pipeline's conversation.
func (a *Assigner) syncPipeline(ctx context.Context, conv, agent, team, state string) {
	if a.o.Pipeline == nil {
		return
	}
	var prevState string
	c, err := a.o.Pipeline.Conversations().Update(ctx, conv, nil, func(c *pipeline.Conversation) error {
		prevState = c.State
		switch agent {
		case "":
		case "-":
			c.Assignee = ""
		default:
			c.Assignee = agent
		}
		if team != "" {
			c.Team = team
		}
		switch state {
		case "":
		case pipeline.StateHandedOff:
			if c.State == pipeline.StateBot || c.State == pipeline.StateClosed {
				c.State = state
				c.HandedOffAt = a.now()
			}
		default:
			c.State = state
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			a.log.Warn("updating the conversation failed", "conv", conv, "err", err)
		}
		return
	}
	if prevState != c.State {
		a.audit(ctx, pipeline.AuditRecord{Kind: "state", Conv: conv, Detail: prevState + " -> " + c.State})
	}
}

func (a *Assigner) audit(ctx context.Context, r pipeline.AuditRecord) {
	if a.o.Pipeline != nil {
		a.o.Pipeline.Audit(ctx, r)
	}
}

func (a *Assigner) cancelTimer(ctx context.Context, id string) error {
	return a.o.Store.Cancel(ctx, id)
}

// afterAssign queues what follows an assignment: the pipeline's
// conversation, SLA and idle timers, audit, and the assignee's
// notification. fresh is false when an existing assignment is only
// confirmed (a retry): everything is idempotent, so it runs again.
func (a *Assigner) afterAssign(fx *effects, rs *rules.Ruleset, rec *Record, res *Assignment, fresh bool) {
	r := *rec
	fx.add(func(ctx context.Context) {
		a.syncPipeline(ctx, r.Conv, res.Agent, res.Team, "")
		a.armSLA(ctx, &r)
		a.armIdle(ctx, r.Conv, r.HandedOff)
		if fresh {
			a.audit(ctx, pipeline.AuditRecord{Kind: "assignment", Conv: r.Conv, Target: res.Agent,
				Detail: fmt.Sprintf("team %s, %s, priority %s", res.Team, res.Reason, r.Priority)})
			a.log.Info("conversation assigned", "conv", r.Conv, "agent", res.Agent, "team", res.Team, "reason", res.Reason)
		}
		a.notifyAssignee(ctx, rs, &r, res)
	})
}

// sortedKeys is a helper for deterministic output.
func sortedKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
