package assign

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/rules"
)

// Deadline kinds.
const (
	KindFirst = "first_response"
	KindNext  = "next_response"
)

// Timer kinds the assigner handles on the pipeline's timers.
const (
	TimerSLA    = "assign_sla"
	TimerIdle   = "assign_idle"
	TimerNotify = "assign_notify"
)

func slaTimerID(conv string) string  { return "sla:" + conv }
func idleTimerID(conv string) string { return "idle:" + conv }

// AddBusiness returns the time d of business time after start: the clock
// runs only while h is open (weekly hours, minus holidays). A start
// outside hours counts from the next opening, so a deadline that would
// fall outside hours moves into the next opening. h nil is always open.
// It returns the zero time when h never opens again.
func AddBusiness(h *rules.Hours, start time.Time, d time.Duration) time.Time {
	if h == nil {
		return start.Add(d)
	}
	t := start
	for range 800 { // at most ~2 years of openings
		t = h.NextOpen(t)
		if t.IsZero() {
			return t
		}
		end := openUntil(h, t, t.Add(d))
		if !end.Before(t.Add(d)) {
			return t.Add(d)
		}
		d -= end.Sub(t)
		t = end
	}
	return time.Time{}
}

// openUntil returns the first minute after t at which h is closed, or
// limit if it stays open that long. Hours have minute resolution, so
// whole minutes are enough.
func openUntil(h *rules.Hours, t, limit time.Time) time.Time {
	m := t.Truncate(time.Minute).Add(time.Minute)
	for m.Before(limit) && h.Open(m) {
		m = m.Add(time.Minute)
	}
	if m.After(limit) {
		return limit
	}
	return m
}

type slaTimer struct {
	Conv     string    `json:"conv"`
	Deadline time.Time `json:"deadline"`
	Kind     string    `json:"kind"`
}

// armSLA schedules (or cancels) the SLA timer of rec's running deadline.
func (a *Assigner) armSLA(ctx context.Context, rec *Record) {
	if a.o.Pipeline == nil {
		return
	}
	if rec.Deadline.IsZero() {
		_ = a.cancelTimer(ctx, slaTimerID(rec.Conv))
		return
	}
	err := a.o.Pipeline.Schedule(ctx, slaTimerID(rec.Conv), rec.Deadline, TimerSLA,
		slaTimer{Conv: rec.Conv, Deadline: rec.Deadline, Kind: rec.DeadlineKind})
	if err != nil {
		a.log.Warn("scheduling the SLA timer failed", "conv", rec.Conv, "err", err)
	}
}

// onSLA handles a deadline that passed: it records the breach, then
// escalates: first to the next agent of the team, then to the escalation
// team, and tells the supervisor. A stale timer (the agent answered, the
// deadline moved) does nothing.
func (a *Assigner) onSLA(ctx context.Context, raw json.RawMessage) error {
	var t slaTimer
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil // a malformed timer will not get better
	}
	rec, err := a.getRecord(ctx, t.Conv)
	if err != nil {
		return err
	}
	if rec == nil || !rec.Deadline.Equal(t.Deadline) || rec.DeadlineKind != t.Kind ||
		(rec.State != RecAssigned && rec.State != RecWaiting) {
		return nil
	}
	now := a.now()
	if now.Before(t.Deadline) {
		a.armSLA(ctx, rec) // fired early (clock skew between replicas)
		return nil
	}
	rs, err := a.rules()
	if err != nil {
		return err
	}
	team, ok := rs.Team(rec.Team)
	if !ok {
		return nil
	}
	// Record the breach once per deadline, then audit it once: the record
	// says whether its audit is done, and a firing that finds it recorded
	// but not audited (the process died in between, or the audit append
	// failed) looks in the conversation's trail before writing it.
	first := false
	rec, err = a.updateRecord(ctx, t.Conv, func(r *Record) error {
		first = false
		if breachOf(r, t) != nil {
			return errKeep
		}
		if !r.Deadline.Equal(t.Deadline) {
			return errKeep
		}
		first = true
		r.Breaches = append(r.Breaches, Breach{Kind: t.Kind, Deadline: t.Deadline, Agent: r.Assignee, Team: r.Team})
		return nil
	})
	if err != nil {
		return err
	}
	if err := a.auditBreach(ctx, rec, t, team.Name, first); err != nil {
		return err // the timer fires again
	}
	action, res := a.escalate(ctx, rs, team, rec)
	a.m.Escalations.WithLabelValues(team.Name, action).Inc()
	detail := fmt.Sprintf("%s missed in team %s", t.Kind, team.Name)
	switch {
	case res != nil:
		detail += fmt.Sprintf("; %s to %s (team %s)", action, res.Agent, res.Team)
	default:
		detail += "; nobody else available"
	}
	// Remember what was done with the breach.
	_, _ = a.updateRecord(ctx, t.Conv, func(r *Record) error {
		b := breachOf(r, t)
		if b == nil || b.Action != "" {
			return errKeep
		}
		b.Action = action
		if res != nil {
			b.Action += " " + res.Agent
		}
		return nil
	})
	if team.Supervisor != "" {
		a.notifyAgents(ctx, rs, "sla_breach", []string{team.Supervisor}, t.Conv,
			fmt.Sprintf("sla:%s:%d", t.Conv, t.Deadline.UnixMilli()), detail)
	}
	if res == nil {
		// Nobody took it: try again after another target's worth of time,
		// a bounded number of times.
		_, _ = a.updateRecord(ctx, t.Conv, func(r *Record) error {
			if !r.Deadline.Equal(t.Deadline) || r.Escalation >= a.o.MaxEscalations {
				return errKeep
			}
			r.Escalation++
			target := team.SLA.For(r.Priority).FirstResponse
			if t.Kind == KindNext {
				target = team.SLA.For(r.Priority).NextResponse
			}
			r.Deadline = AddBusiness(team.Hours, now, target)
			return nil
		})
		if r, err := a.getRecord(ctx, t.Conv); err == nil && r != nil && !r.Deadline.Equal(t.Deadline) {
			a.armSLA(ctx, r)
		}
	}
	return nil
}

// auditBreach writes the audit record of the breach of t unless the
// record says it is written. first: this firing recorded the breach, so
// no earlier one can have audited it.
func (a *Assigner) auditBreach(ctx context.Context, rec *Record, t slaTimer, team string, first bool) error {
	b := breachOf(rec, t)
	if b == nil || b.Audited || a.o.Pipeline == nil {
		return nil
	}
	detail := fmt.Sprintf("%s deadline %s missed (team %s)", t.Kind, t.Deadline.Format(time.RFC3339), b.Team)
	found := false
	if !first {
		var err error
		found, err = a.o.Pipeline.FindAudit(ctx, t.Conv, func(r pipeline.AuditRecord) bool {
			return r.Kind == "sla_breach" && r.Detail == detail
		})
		if err != nil {
			return err
		}
	}
	if !found {
		if err := a.o.Pipeline.AppendAudit(ctx, pipeline.AuditRecord{Kind: "sla_breach", Conv: t.Conv, Target: b.Agent, Detail: detail}); err != nil {
			return err
		}
		a.m.Breaches.WithLabelValues(team, t.Kind).Inc()
		a.log.Info("SLA deadline missed", "conv", t.Conv, "kind", t.Kind, "team", team, "agent", b.Agent)
	}
	_, err := a.updateRecord(ctx, t.Conv, func(r *Record) error {
		b := breachOf(r, t)
		if b == nil || b.Audited {
			return errKeep
		}
		b.Audited = true
		return nil
	})
	return err
}

// breachOf returns r's breach of t's deadline, or nil.
func breachOf(r *Record, t slaTimer) *Breach {
	for i := range r.Breaches {
		if r.Breaches[i].Deadline.Equal(t.Deadline) && r.Breaches[i].Kind == t.Kind {
			return &r.Breaches[i]
		}
	}
	return nil
}

// escalate moves a conversation whose deadline passed: to the next agent
// of its team the first time it is missed there, to the escalation team
// after that (or when nobody else in the team is available).
func (a *Assigner) escalate(ctx context.Context, rs *rules.Ruleset, team rules.Team, rec *Record) (string, *Assignment) {
	if rec.Escalation >= a.o.MaxEscalations {
		return "none", nil
	}
	bump := func() {
		_, _ = a.updateRecord(ctx, rec.Conv, func(r *Record) error { r.Escalation++; return nil })
	}
	missedHere := 0
	for _, id := range rec.Tried {
		if isMember(rs, team.Name, id) {
			missedHere++
		}
	}
	if rec.State == RecAssigned && missedHere == 0 {
		req := a.requestFor(ctx, rec.Conv, rec)
		req.Team, req.reassign, req.reason = team.Name, true, "sla_next_agent"
		if res, err := a.Submit(ctx, req); err == nil && res != nil && res.Agent != "" && res.Agent != rec.Assignee {
			bump()
			return "reassigned", res
		}
	}
	if team.EscalateTo != "" {
		req := a.requestFor(ctx, rec.Conv, rec)
		req.Team, req.reassign, req.reason = team.EscalateTo, true, "sla_escalation"
		if res, err := a.Submit(ctx, req); err == nil && res != nil && res.Agent != "" {
			bump()
			return "escalated", res
		}
	}
	return "none", nil
}

// ---------------------------------------------------------------- responses

// agentReplied counts an agent's message as a response: the first one is
// the time to first response; any one stops the running deadline.
func (a *Assigner) agentReplied(ctx context.Context, conv string, at time.Time) (*Record, bool, error) {
	first := false
	rec, err := a.updateRecord(ctx, conv, func(r *Record) error {
		first = false
		if r.State != RecAssigned && r.State != RecWaiting {
			return errKeep
		}
		if r.FirstResponseAt.IsZero() {
			first = true
			r.FirstResponseAt = at
			if !r.HandedOff.IsZero() {
				r.FirstResponse = max(at.Sub(r.HandedOff), 0)
			}
		}
		if at.After(r.LastAgentReplyAt) {
			r.LastAgentReplyAt = at
		}
		r.AwaitingSince, r.Deadline, r.DeadlineKind = time.Time{}, time.Time{}, ""
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return rec, first, nil
}

// customerWrote starts the next-response clock when the customer writes
// to a conversation an agent has already answered.
func (a *Assigner) customerWrote(ctx context.Context, conv string, at time.Time) (*Record, error) {
	rs, err := a.rules()
	if err != nil {
		return nil, err
	}
	changed := false
	rec, err := a.updateRecord(ctx, conv, func(r *Record) error {
		changed = false
		if r.State != RecAssigned || r.FirstResponseAt.IsZero() || !r.AwaitingSince.IsZero() {
			return errKeep
		}
		team, ok := rs.Team(r.Team)
		if !ok {
			return errKeep
		}
		r.AwaitingSince = at
		if t := team.SLA.For(r.Priority).NextResponse; t > 0 {
			r.Deadline, r.DeadlineKind = AddBusiness(team.Hours, at, t), KindNext
		}
		changed = true
		return nil
	})
	if err != nil || rec == nil || !changed {
		return rec, err
	}
	a.armSLA(ctx, rec)
	return rec, nil
}
