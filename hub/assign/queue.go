package assign

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/switchboard-hub/switchboard/rules"
)

// ---------------------------------------------------------------- queues

func teamQueuePrefix(team string) string { return queuePrefix + team + "/" }

// Queue lists a team's waiting conversations in the order they will be
// assigned (priority, then age).
func (a *Assigner) Queue(ctx context.Context, team string) ([]Waiting, error) {
	rs, err := a.rules()
	if err != nil {
		return nil, err
	}
	if _, ok := rs.Team(team); !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTeam, team)
	}
	out := []Waiting{}
	cursor := ""
	for {
		items, next, err := a.o.Store.List(ctx, NS, teamQueuePrefix(team), cursor, 500)
		if err != nil {
			return nil, fmt.Errorf("list queue %s: %w", team, err)
		}
		for _, it := range items {
			var w Waiting
			if json.Unmarshal(it.Value, &w) == nil {
				out = append(out, w)
			}
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

func (a *Assigner) queueLen(ctx context.Context, team string) (int, error) {
	n, cursor := 0, ""
	for {
		items, next, err := a.o.Store.List(ctx, NS, teamQueuePrefix(team), cursor, 500)
		if err != nil {
			return 0, fmt.Errorf("list queue %s: %w", team, err)
		}
		n += len(items)
		if next == "" {
			return n, nil
		}
		cursor = next
	}
}

// Drain assigns a team's waiting conversations, highest priority and
// oldest first, while anyone can take them. It returns how many it
// assigned. Errors are logged: the next tick drains again.
func (a *Assigner) Drain(ctx context.Context, team string) int {
	rs, err := a.rules()
	if err != nil {
		return 0
	}
	t, ok := rs.Team(team)
	if !ok {
		return 0
	}
	// Cheap look first: most of the time the queue is empty.
	items, _, err := a.o.Store.List(ctx, NS, teamQueuePrefix(team), "", 1)
	if err != nil || len(items) == 0 {
		return 0
	}
	unlock, err := a.lockTeam(ctx, team)
	if err != nil {
		a.log.Warn("drain: lock failed", "team", team, "err", err)
		return 0
	}
	var fx effects
	n := a.drainLocked(ctx, rs, t, &fx)
	unlock()
	fx.run(ctx)
	return n
}

func (a *Assigner) drainLocked(ctx context.Context, rs *rules.Ruleset, t rules.Team, fx *effects) int {
	s, err := a.loadSnapshot(ctx, t.Name)
	if err != nil {
		a.log.Warn("drain: reading agents failed", "team", t.Name, "err", err)
		return 0
	}
	n, cursor := 0, ""
	for {
		now := a.now()
		anyone := false
		for _, m := range t.Members {
			if a.available(t, m, s, now) {
				anyone = true
				break
			}
		}
		if !anyone {
			return n
		}
		items, next, err := a.o.Store.List(ctx, NS, teamQueuePrefix(t.Name), cursor, 100)
		if err != nil {
			a.log.Warn("drain: listing the queue failed", "team", t.Name, "err", err)
			return n
		}
		for _, it := range items {
			var w queueEntry
			if json.Unmarshal(it.Value, &w) != nil {
				_ = a.o.Store.Delete(ctx, NS, it.Key)
				continue
			}
			rec, err := a.getRecord(ctx, w.Conv)
			if err != nil {
				return n
			}
			if rec == nil || rec.QueueKey != it.Key || rec.State != RecWaiting {
				// A stale entry: the conversation was assigned, released or
				// queued elsewhere since (or the record write never came, for
				// which a fresh request will come from its retry).
				if rec == nil || rec.State != RecWaiting || rec.QueueKey != "" {
					_ = a.o.Store.Delete(ctx, NS, it.Key)
					continue
				}
			}
			req := a.requestFor(ctx, w.Conv, rec)
			req.Team = t.Name
			if req.Input == nil {
				// No pipeline to read fresh facts from: the ones it came with.
				req.Input, req.Decision = w.Input, w.Decision
			}
			res, err := a.placeLocked(ctx, rs, t, &req, s, it.Key, fx)
			if err != nil {
				a.log.Warn("drain: assigning failed", "team", t.Name, "conv", w.Conv, "err", err)
				continue
			}
			if res != nil && !res.Queued {
				n++
			}
		}
		if next == "" {
			return n
		}
		cursor = next
	}
}

// drainTeamsOf drains the queues of every team agent works in (a slot
// freed, the agent came online or got more capacity).
func (a *Assigner) drainTeamsOf(ctx context.Context, rs *rules.Ruleset, agent string) {
	for _, tn := range teamsOf(rs, agent) {
		a.Drain(ctx, tn)
	}
}

// requestFor rebuilds a request for a conversation from its record and,
// when there is a pipeline, its conversation (for skills and owner).
func (a *Assigner) requestFor(ctx context.Context, conv string, rec *Record) Request {
	req := Request{Conv: conv}
	if rec != nil {
		req.Team, req.Priority, req.Owner, req.Since = rec.Team, rec.Priority, rec.Owner, rec.HandedOff
	}
	if pc := a.pconv(ctx, conv); pc != nil {
		req.Team = firstNonEmpty(req.Team, pc.Team)
		req.Priority = firstNonEmpty(req.Priority, pc.Priority)
		req.Owner = firstNonEmpty(req.Owner, pc.Owner)
		if req.Since.IsZero() {
			req.Since = pc.HandedOffAt
		}
		req.Decision = pc.LastDecision
		in := a.rulesInput(ctx, pc)
		req.Input = &in
	}
	if req.Since.IsZero() {
		req.Since = a.now()
	}
	if req.Priority == "" {
		req.Priority = rules.DefaultPriority
	}
	return req
}
