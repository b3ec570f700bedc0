package assign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hub/switchboard/hub/pipeline"
	"github.com/switchboard-hub/switchboard/hub/store"
	"github.com/switchboard-hub/switchboard/rules"
)

// Options configure an Assigner. Zero values take the defaults noted.
type Options struct {
	Store store.Store
	// Rules gives the running rule set (teams, agents, SLA).
	Rules func() *rules.Ruleset
	// Pipeline, when set, is kept in step: conversation state and assignee,
	// history for summaries, timers, audit records. Install registers the
	// hooks and timer handlers on it.
	Pipeline *pipeline.Pipeline
	// Notifier delivers notifications (nil: they are only audited).
	Notifier Notifier
	Logger   *slog.Logger
	// Registerer gets the metrics (nil: not registered).
	Registerer prometheus.Registerer
	Now        func() time.Time
	Replica    string // lease owner id; default the pipeline's replica
	// DefaultStatus is the status of an agent nobody set one for (online).
	DefaultStatus Status
	// ReleaseAfter hands a conversation back to the bot after this long
	// without an agent message (0: never).
	ReleaseAfter time.Duration
	// LockTTL bounds a team lock held by a process that died (10s).
	LockTTL time.Duration
	// Tick is how often queues are drained and hours re-checked (2s).
	Tick time.Duration
	// MaxEscalations bounds the escalation steps of one conversation (6).
	MaxEscalations int
	// NotifyRetries is how often a failed notification is retried (8),
	// with backoff from NotifyBackoff (5s) doubling up to 10 minutes.
	NotifyRetries int
	NotifyBackoff time.Duration
}

// Notifier delivers notifications to agents and supervisors.
type Notifier interface {
	// Notify delivers n to n.Target (an agent's notify string, such as
	// "zalo:84901000001", or "webhook"). n.Key makes it idempotent for the
	// receiver. A retryable error (sdk.IsRetryable) is retried later.
	Notify(ctx context.Context, n *Notification) error
}

// Assigner assigns conversations to agents and runs their SLAs.
type Assigner struct {
	o     Options
	log   *slog.Logger
	m     *metrics
	locks teamLocks
}

// ErrNoAgent: nobody can take the conversation now (reassignment).
var ErrNoAgent = errors.New("no agent available")

// New returns an Assigner.
func New(o Options) (*Assigner, error) {
	if o.Store == nil || o.Rules == nil {
		return nil, errors.New("assign: Store and Rules are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DefaultStatus == "" {
		o.DefaultStatus = Online
	}
	if _, err := ParseStatus(string(o.DefaultStatus)); err != nil {
		return nil, fmt.Errorf("assign: default status %q: want online, away or offline", o.DefaultStatus)
	}
	if o.Replica == "" && o.Pipeline != nil {
		o.Replica = o.Pipeline.Replica()
	}
	if o.Replica == "" {
		host, _ := os.Hostname()
		o.Replica = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.IntN(1<<16))
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 10 * time.Second
	}
	if o.Tick <= 0 {
		o.Tick = 2 * time.Second
	}
	if o.MaxEscalations <= 0 {
		o.MaxEscalations = 6
	}
	if o.NotifyRetries <= 0 {
		o.NotifyRetries = 8
	}
	if o.NotifyBackoff <= 0 {
		o.NotifyBackoff = 5 * time.Second
	}
	return &Assigner{o: o, log: o.Logger, m: newMetrics(o.Registerer)}, nil
}

func (a *Assigner) now() time.Time { return a.o.Now() }

func (a *Assigner) rules() (*rules.Ruleset, error) {
	rs := a.o.Rules()
	if rs == nil {
		return nil, errors.New("assign: no rules loaded")
	}
	return rs, nil
}

// ---------------------------------------------------------------- agents

// SetStatus sets an agent's status. Coming online drains the queues of the
// agent's teams at once.
func (a *Assigner) SetStatus(ctx context.Context, agent string, s Status) error {
	if _, err := ParseStatus(string(s)); err != nil {
		return fmt.Errorf("status %q: want online, away or offline: %w", s, ErrInvalid)
	}
	rs, err := a.rules()
	if err != nil {
		return err
	}
	if _, ok := rs.Agents()[agent]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, agent)
	}
	changed := false
	if _, err := a.updateAgent(ctx, agent, func(r *agentRec) (bool, error) {
		if r.Status == s {
			changed = false
			return false, nil
		}
		changed = true
		r.Status, r.StatusSince = s, a.now()
		return true, nil
	}); err != nil {
		return err
	}
	if changed {
		a.audit(ctx, pipeline.AuditRecord{Kind: "agent_status", Target: agent, Detail: string(s)})
	}
	if s == Online {
		a.drainTeamsOf(ctx, rs, agent)
	}
	return nil
}

// SetCapacity overrides an agent's capacity at run time; n < 0 removes the
// override (back to the rules' capacity), 0 means no limit. Lowering it
// below the agent's open conversations takes nothing away: they get no new
// ones until below it.
func (a *Assigner) SetCapacity(ctx context.Context, agent string, n int) error {
	rs, err := a.rules()
	if err != nil {
		return err
	}
	if _, ok := rs.Agents()[agent]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, agent)
	}
	if _, err := a.updateAgent(ctx, agent, func(r *agentRec) (bool, error) {
		if n < 0 {
			r.CapOverride = nil
		} else {
			v := n
			r.CapOverride = &v
		}
		return true, nil
	}); err != nil {
		return err
	}
	a.audit(ctx, pipeline.AuditRecord{Kind: "agent_capacity", Target: agent, Detail: fmt.Sprint(n)})
	a.drainTeamsOf(ctx, rs, agent)
	return nil
}

// teamsOf lists the teams agent is a member of, by name.
func teamsOf(rs *rules.Ruleset, agent string) []string {
	var out []string
	for name, t := range rs.Teams() {
		for _, m := range t.Members {
			if m.ID == agent {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

func (a *Assigner) agentState(rs *rules.Ruleset, ag rules.Agent, r *agentRec, now time.Time) AgentState {
	st := AgentState{ID: ag.ID, Name: ag.Name, Teams: teamsOf(rs, ag.ID), Status: statusOf(r, a.o.DefaultStatus),
		StatusSince: r.StatusSince, CapacityOverride: r.CapOverride, LastAssigned: r.LastAssigned,
		LastConversation: r.LastConv, Assigned: r.Assigned, Open: []string{}}
	for c := range r.Open {
		st.Open = append(st.Open, c)
	}
	sort.Strings(st.Open)
	st.Load = len(st.Open)
	switch {
	case r.CapOverride != nil:
		st.Capacity = *r.CapOverride
	case ag.Capacity > 0:
		st.Capacity = ag.Capacity
	default:
		for _, tn := range st.Teams {
			t, _ := rs.Team(tn)
			st.Capacity = max(st.Capacity, t.Capacity)
		}
	}
	if st.Status == Online && (st.Capacity == 0 || st.Load < st.Capacity) {
		for _, tn := range st.Teams {
			if t, _ := rs.Team(tn); t.Open(now) {
				st.Available = true
				break
			}
		}
	}
	return st
}

// Agent returns one agent's state.
func (a *Assigner) Agent(ctx context.Context, id string) (AgentState, error) {
	rs, err := a.rules()
	if err != nil {
		return AgentState{}, err
	}
	ag, ok := rs.Agents()[id]
	if !ok {
		return AgentState{}, fmt.Errorf("%w: %q", ErrUnknownAgent, id)
	}
	r, err := a.agentRec(ctx, id)
	if err != nil {
		return AgentState{}, err
	}
	return a.agentState(rs, ag, r, a.now()), nil
}

// Agents returns every agent of the running rules, sorted by id.
func (a *Assigner) Agents(ctx context.Context) ([]AgentState, error) {
	rs, err := a.rules()
	if err != nil {
		return nil, err
	}
	recs, err := a.agentRecs(ctx)
	if err != nil {
		return nil, err
	}
	now := a.now()
	var out []AgentState
	for id, ag := range rs.Agents() {
		r := recs[id]
		if r == nil {
			r = &agentRec{}
		}
		out = append(out, a.agentState(rs, ag, r, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Teams returns every team with its live figures, sorted by name.
func (a *Assigner) Teams(ctx context.Context) ([]TeamState, error) {
	rs, err := a.rules()
	if err != nil {
		return nil, err
	}
	recs, err := a.agentRecs(ctx)
	if err != nil {
		return nil, err
	}
	now := a.now()
	var out []TeamState
	for name, t := range rs.Teams() {
		ts := TeamState{Name: name, Strategy: string(t.Strategy), Capacity: t.Capacity, Supervisor: t.Supervisor,
			EscalateTo: t.EscalateTo, Open: t.Open(now), Members: []string{}}
		if !ts.Open {
			ts.NextOpen = t.NextOpen(now)
		}
		for _, m := range t.Members {
			ts.Members = append(ts.Members, m.ID)
			r := recs[m.ID]
			if statusOf(r, a.o.DefaultStatus) == Online {
				ts.Online++
			}
			if r != nil {
				ts.Load += len(r.Open)
			}
		}
		n, err := a.queueLen(ctx, name)
		if err != nil {
			return nil, err
		}
		ts.Waiting = n
		out = append(out, ts)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Record returns the assigner's record of a conversation (ErrNotFound).
func (a *Assigner) Record(ctx context.Context, conv string) (*Record, error) {
	r, err := a.getRecord(ctx, conv)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, conv)
	}
	return r, nil
}

// ---------------------------------------------------------------- assigning

// Request asks for a conversation to be assigned.
type Request struct {
	Conv     string
	Team     string
	Priority string
	// Owner is the contact's owner (an agent id, or an agent's crm_owner
	// attribute): tried first when available.
	Owner string
	// Since is when the customer started waiting (the handoff); queues
	// order by it. Zero: now.
	Since time.Time
	// Agent asks for this agent (a manual assignment).
	Agent string
	// Input and Decision feed the team's eligible condition (skills).
	Input    *rules.Input
	Decision *rules.Decision

	reassign bool            // move away from the current assignee
	exclude  map[string]bool // never these
	reason   string          // overrides the reason of the outcome
}

// Submit assigns a conversation as req describes: to req.Agent, or to the
// owner when available, or by the team's strategy, or into the team's
// queue when nobody can take it now. It is idempotent: a conversation
// already assigned keeps its assignee.
func (a *Assigner) Submit(ctx context.Context, req Request) (*Assignment, error) {
	if req.Conv == "" {
		return nil, fmt.Errorf("no conversation: %w", ErrInvalid)
	}
	rs, err := a.rules()
	if err != nil {
		return nil, err
	}
	if req.Team == "" {
		return nil, fmt.Errorf("%w: %s", ErrNoTeam, req.Conv)
	}
	team, ok := rs.Team(req.Team)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTeam, req.Team)
	}
	if req.Agent != "" {
		if _, ok := rs.Agents()[req.Agent]; !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownAgent, req.Agent)
		}
	}
	if req.Since.IsZero() {
		req.Since = a.now()
	}
	if req.Priority == "" {
		req.Priority = rules.DefaultPriority
	}
	unlock, err := a.lockTeam(ctx, team.Name)
	if err != nil {
		return nil, err
	}
	var fx effects
	res, err := a.placeLocked(ctx, rs, team, &req, nil, "", &fx)
	unlock()
	fx.run(ctx)
	if err == nil && res.Queued {
		// The queue may hold conversations this one must not pass, or
		// a slot may have freed meanwhile: let the queue decide.
		a.Drain(ctx, team.Name)
		if r, _ := a.getRecord(ctx, req.Conv); r != nil && r.State == RecAssigned {
			res = &Assignment{Conv: req.Conv, Team: r.Team, Priority: r.Priority, Agent: r.Assignee, Reason: "queue", At: r.AssignedAt}
		}
	}
	return res, err
}

// effects are what an assignment does once the team lock is given back:
// they are idempotent, and a retry of the whole request runs them again.
type effects []func(ctx context.Context)

func (f *effects) add(fn func(ctx context.Context)) { *f = append(*f, fn) }
func (f effects) run(ctx context.Context) {
	for _, fn := range f {
		fn(ctx)
	}
}

// snapshot is the team state read once per lock hold.
type snapshot struct {
	recs   map[string]*agentRec
	cursor string
	full   map[string]bool // found at capacity by a compare-and-swap
}

func (a *Assigner) loadSnapshot(ctx context.Context, team string) (*snapshot, error) {
	recs, err := a.agentRecs(ctx)
	if err != nil {
		return nil, err
	}
	s := &snapshot{recs: recs, full: map[string]bool{}}
	b, _, err := a.o.Store.Get(ctx, NS, teamPrefix+team)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("read team %s: %w", team, err)
	}
	if err == nil {
		var tr teamRec
		_ = json.Unmarshal(b, &tr)
		s.cursor = tr.Cursor
	}
	return s, nil
}

func (s *snapshot) rec(id string) *agentRec {
	if r := s.recs[id]; r != nil {
		return r
	}
	return &agentRec{}
}

// capFunc is the capacity of ag in team, read from the agent's record
// inside the compare-and-swap so that an override applies atomically.
func capFunc(team rules.Team, ag rules.Agent) func(*agentRec) int {
	return func(r *agentRec) int {
		if r.CapOverride != nil {
			return *r.CapOverride
		}
		return team.CapacityOf(ag)
	}
}

// available reports whether ag can take one more conversation of team now.
func (a *Assigner) available(team rules.Team, ag rules.Agent, s *snapshot, now time.Time) bool {
	if s.full[ag.ID] {
		return false
	}
	r := s.rec(ag.ID)
	if statusOf(r, a.o.DefaultStatus) != Online || !team.Open(now) {
		return false
	}
	c := capFunc(team, ag)(r)
	return c == 0 || len(r.Open) < c
}

// findAgent finds an agent by id, or by its crm_owner attribute (CRMs
// have their own user ids).
func findAgent(rs *rules.Ruleset, id string) (rules.Agent, bool) {
	if id == "" {
		return rules.Agent{}, false
	}
	agents := rs.Agents()
	if ag, ok := agents[id]; ok {
		return ag, true
	}
	for _, ag := range agents {
		if ag.Attributes["crm_owner"] == id {
			return ag, true
		}
	}
	return rules.Agent{}, false
}

// choice is an agent picked for a conversation, and the team whose hours
// and capacity apply to it.
type choice struct {
	agent  rules.Agent
	team   rules.Team
	reason string
}

// choose picks an agent for req in team, or returns ok false.
func (a *Assigner) choose(rs *rules.Ruleset, team rules.Team, req *Request, rec *Record, s *snapshot, now time.Time) (choice, bool) {
	if req.Agent != "" {
		ag := rs.Agents()[req.Agent]
		if s.full[ag.ID] {
			return choice{}, false
		}
		return choice{ag, team, firstNonEmpty(req.reason, "manual")}, true
	}
	excluded := func(id string) bool {
		if req.exclude[id] {
			return true
		}
		return req.reassign && rec != nil && (id == rec.Assignee || slices.Contains(rec.Tried, id))
	}
	eligible := func(ag rules.Agent) bool {
		in := rules.Input{Now: now}
		if req.Input != nil {
			in = *req.Input
		}
		ok, err := team.Eligible(ag, in, req.Decision)
		if err != nil {
			a.log.Warn("eligible condition failed; the agent counts as not eligible", "team", team.Name, "agent", ag.ID, "err", err)
		}
		return ok
	}
	// Sticky ownership: a returning contact goes to their owner when the
	// owner can take it now; otherwise the team's strategy, never a wait.
	if ag, ok := findAgent(rs, req.Owner); ok && !excluded(ag.ID) {
		ot, member := team, false
		for _, m := range team.Members {
			if m.ID == ag.ID {
				ag, member = m, true
				break
			}
		}
		if !member {
			if ts := teamsOf(rs, ag.ID); len(ts) > 0 {
				ot, _ = rs.Team(ts[0])
			}
		}
		if a.available(ot, ag, s, now) && (!member || eligible(ag)) {
			return choice{ag, ot, "owner"}, true
		}
	}
	var cands []rules.Agent
	for _, m := range team.Members {
		if !excluded(m.ID) && a.available(team, m, s, now) && eligible(m) {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return choice{}, false
	}
	reason := firstNonEmpty(req.reason, string(team.Strategy))
	switch team.Strategy {
	case rules.LeastLoaded, rules.Capacity:
		best := cands[0]
		for _, c := range cands[1:] {
			if a.lessLoaded(team, c, best, s) {
				best = c
			}
		}
		return choice{best, team, reason}, true
	default: // round robin: the first available member after the last one served
		start := 0
		for i, m := range team.Members {
			if m.ID == s.cursor {
				start = i + 1
				break
			}
		}
		n := len(team.Members)
		for i := 0; i < n; i++ {
			m := team.Members[(start+i)%n]
			for _, c := range cands {
				if c.ID == m.ID {
					return choice{c, team, reason}, true
				}
			}
		}
		return choice{cands[0], team, reason}, true
	}
}

// lessLoaded orders candidates for least_loaded (fewest open) and capacity
// (lowest share of capacity used); ties go to whoever waited longest since
// their last assignment, then to member order.
func (a *Assigner) lessLoaded(team rules.Team, x, y rules.Agent, s *snapshot) bool {
	rx, ry := s.rec(x.ID), s.rec(y.ID)
	lx, ly := len(rx.Open), len(ry.Open)
	if team.Strategy == rules.Capacity {
		cx, cy := capFunc(team, x)(rx), capFunc(team, y)(ry)
		if cx > 0 && cy > 0 && lx*cy != ly*cx {
			return lx*cy < ly*cx
		}
	}
	if lx != ly {
		return lx < ly
	}
	return rx.LastAssigned.Before(ry.LastAssigned)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// placeLocked assigns req's conversation in team, or queues it; the team
// lock is held. queueKey is the queue entry being served (drain), if any.
// Side effects that need no lock go to fx.
func (a *Assigner) placeLocked(ctx context.Context, rs *rules.Ruleset, team rules.Team, req *Request, s *snapshot, fromQueue string, fx *effects) (*Assignment, error) {
	now := a.now()
	rec, err := a.getRecord(ctx, req.Conv)
	if err != nil {
		return nil, err
	}
	if rec != nil && rec.State == RecAssigned && rec.Assignee != "" && !req.reassign && (req.Agent == "" || req.Agent == rec.Assignee) {
		if fromQueue != "" {
			_ = a.o.Store.Delete(ctx, NS, fromQueue)
		}
		res := &Assignment{Conv: req.Conv, Team: rec.Team, Priority: rec.Priority, Agent: rec.Assignee, Reason: "existing", At: rec.AssignedAt}
		a.afterAssign(fx, rs, rec, res, false)
		return res, nil
	}
	if s == nil {
		if s, err = a.loadSnapshot(ctx, team.Name); err != nil {
			return nil, err
		}
	}
	// A crash between choosing and committing left an intent: finish it.
	if rec != nil && rec.Pending != "" {
		if res, err := a.completePending(ctx, rs, rec, s, fx); err != nil || res != nil {
			return res, err
		}
		if rec, err = a.getRecord(ctx, req.Conv); err != nil {
			return nil, err
		}
	}
	for range len(team.Members) + 2 {
		c, ok := a.choose(rs, team, req, rec, s, now)
		if !ok {
			break
		}
		res, retry, err := a.tryAgent(ctx, rs, team, c, req, s, fx)
		if err != nil || !retry {
			return res, err
		}
	}
	if req.Agent != "" {
		return nil, fmt.Errorf("%w: %s", ErrAtCapacity, req.Agent)
	}
	if req.reassign {
		return nil, ErrNoAgent
	}
	if fromQueue != "" {
		return &Assignment{Conv: req.Conv, Team: team.Name, Priority: req.Priority, Queued: true, Reason: "queue", At: now}, nil
	}
	return a.enqueue(ctx, team, req, fx)
}

// tryAgent records the intent to give req's conversation to c.agent, takes
// a slot of the agent and commits. retry is true when the agent turned out
// to be full (another team filled the slot): choose again.
func (a *Assigner) tryAgent(ctx context.Context, rs *rules.Ruleset, team rules.Team, c choice, req *Request, s *snapshot, fx *effects) (res *Assignment, retry bool, err error) {
	token := newToken()
	var raced *Record
	_, err = a.updateRecord(ctx, req.Conv, func(r *Record) error {
		raced = nil
		if r.State == RecAssigned && r.Assignee != "" && !req.reassign && (req.Agent == "" || req.Agent == r.Assignee) {
			raced = r
			return errKeep
		}
		r.Pending, r.PendingToken = c.agent.ID, token
		r.Team, r.Priority = team.Name, req.Priority
		r.Owner = firstNonEmpty(req.Owner, r.Owner)
		startOver(r, req.Since)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if raced != nil {
		res := &Assignment{Conv: req.Conv, Team: raced.Team, Priority: raced.Priority, Agent: raced.Assignee, Reason: "existing", At: raced.AssignedAt}
		return res, false, nil
	}
	added, arec, err := a.addSlot(ctx, c.agent.ID, req.Conv, token, capFunc(c.team, c.agent), req.Agent == "")
	if err != nil {
		return nil, false, err
	}
	if !added {
		s.full[c.agent.ID] = true
		_, err := a.updateRecord(ctx, req.Conv, func(r *Record) error {
			if r.PendingToken != token {
				return errKeep
			}
			r.Pending, r.PendingToken = "", ""
			return nil
		})
		return nil, err == nil, err
	}
	s.recs[c.agent.ID] = arec
	res, err = a.commit(ctx, rs, team, req.Conv, c.agent.ID, token, firstNonEmpty(req.reason, c.reason), fx)
	if err != nil {
		return nil, false, err
	}
	if res != nil && c.reason == string(rules.RoundRobin) {
		s.cursor = c.agent.ID
		b, _ := json.Marshal(teamRec{Cursor: c.agent.ID})
		if _, err := a.o.Store.Put(ctx, NS, teamPrefix+team.Name, b, 0); err != nil {
			a.log.Warn("saving the round-robin cursor failed", "team", team.Name, "err", err)
		}
	}
	return res, false, nil
}

// completePending finishes an assignment whose intent was recorded but not
// committed (a crash, or a call that failed half way).
func (a *Assigner) completePending(ctx context.Context, rs *rules.Ruleset, rec *Record, s *snapshot, fx *effects) (*Assignment, error) {
	ag, ok := rs.Agents()[rec.Pending]
	team, tok := rs.Team(rec.Team)
	if ok && tok {
		added, _, err := a.addSlot(ctx, ag.ID, rec.Conv, rec.PendingToken, capFunc(team, ag), false)
		if err != nil {
			return nil, err
		}
		if added {
			return a.commit(ctx, rs, team, rec.Conv, ag.ID, rec.PendingToken, "recovered", fx)
		}
	}
	_, err := a.updateRecord(ctx, rec.Conv, func(r *Record) error {
		if r.PendingToken != rec.PendingToken {
			return errKeep
		}
		r.Pending, r.PendingToken = "", ""
		return nil
	})
	return nil, err
}

// commit turns the intent (agent, token) into the assignment. When the
// record changed meanwhile (closed, or another assignment won), the slot
// just taken is given back and commit returns nil.
func (a *Assigner) commit(ctx context.Context, rs *rules.Ruleset, team rules.Team, conv, agent, token, reason string, fx *effects) (*Assignment, error) {
	now := a.now()
	var prev Record
	ok := false
	rec, err := a.updateRecord(ctx, conv, func(r *Record) error {
		ok = false
		if r.Pending != agent || r.PendingToken != token {
			return errKeep
		}
		prev = *r
		if r.Assignee != "" && r.Assignee != agent && !slices.Contains(r.Tried, r.Assignee) && reason != "manual" && reason != "takeover" {
			r.Tried = append(r.Tried, r.Assignee)
		}
		r.Assignee, r.Token = agent, token
		r.Pending, r.PendingToken = "", ""
		r.State, r.AssignedAt = RecAssigned, now
		r.Team = team.Name
		r.QueueKey, r.QueuedAt = "", time.Time{}
		// The new assignee gets the whole target, counted in the team's
		// business hours from now.
		targets := team.SLA.For(r.Priority)
		switch {
		case r.FirstResponseAt.IsZero() && targets.FirstResponse > 0:
			r.Deadline, r.DeadlineKind = AddBusiness(team.Hours, now, targets.FirstResponse), KindFirst
		case !r.FirstResponseAt.IsZero() && !r.AwaitingSince.IsZero() && targets.NextResponse > 0:
			r.Deadline, r.DeadlineKind = AddBusiness(team.Hours, now, targets.NextResponse), KindNext
		default:
			r.Deadline, r.DeadlineKind = time.Time{}, ""
		}
		ok = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		// Lost to a close or to another assignment: give the slot back.
		if _, err := a.removeSlot(ctx, agent, conv, token); err != nil {
			return nil, err
		}
		if rec.State == RecAssigned && rec.Assignee != "" {
			return &Assignment{Conv: conv, Team: rec.Team, Priority: rec.Priority, Agent: rec.Assignee, Reason: "existing", At: rec.AssignedAt}, nil
		}
		return nil, fmt.Errorf("conversation %s changed while being assigned (now %s)", conv, rec.State)
	}
	res := &Assignment{Conv: conv, Team: team.Name, Priority: rec.Priority, Agent: agent, Reason: reason, At: now}
	a.m.Assignments.WithLabelValues(team.Name, reason).Inc()
	// The previous holder's slot and queue entry go once the new holder
	// is committed, so the conversation is never without one.
	if prev.Assignee != "" && prev.Token != "" && prev.Token != token {
		if _, err := a.removeSlot(ctx, prev.Assignee, conv, prev.Token); err != nil {
			a.log.Warn("freeing the previous assignee's slot failed; the reconciler will", "conv", conv, "agent", prev.Assignee, "err", err)
		}
		freed := prev.Assignee
		fx.add(func(ctx context.Context) { a.drainTeamsOf(ctx, rs, freed) })
	}
	if prev.QueueKey != "" {
		_ = a.o.Store.Delete(ctx, NS, prev.QueueKey)
	}
	a.afterAssign(fx, rs, rec, res, true)
	return res, nil
}

// startOver resets a record for a new handoff when the last one ended
// (released or closed) or there was none.
func startOver(r *Record, since time.Time) {
	if r.State != RecReleased && r.State != RecClosed && !r.HandedOff.IsZero() {
		return
	}
	r.HandedOff = since
	r.FirstResponseAt, r.FirstResponse, r.AwaitingSince, r.LastAgentReplyAt = time.Time{}, 0, time.Time{}, time.Time{}
	r.Tried, r.Escalation, r.Breaches = nil, 0, nil
	r.Deadline, r.DeadlineKind = time.Time{}, ""
}

// queueEntry is a queue's value: the Waiting the admin API lists, plus
// what the team's eligible condition needs when there is no pipeline to
// read the conversation from.
type queueEntry struct {
	Waiting
	Input    *rules.Input    `json:"input,omitempty"`
	Decision *rules.Decision `json:"decision,omitempty"`
}

// enqueue puts the conversation in the team's queue (idempotent).
func (a *Assigner) enqueue(ctx context.Context, team rules.Team, req *Request, fx *effects) (*Assignment, error) {
	key := queueKey(team.Name, req.Priority, req.Since, req.Conv)
	w := queueEntry{Waiting: Waiting{Conv: req.Conv, Team: team.Name, Priority: req.Priority, Since: req.Since}, Input: req.Input}
	if d := req.Decision; d != nil {
		w.Decision = &rules.Decision{Score: d.Score, Tier: d.Tier, Team: d.Team, Priority: d.Priority}
	}
	b, _ := json.Marshal(w)
	// The entry first: a crash before the record leaves an entry the
	// drain serves or drops, never a record that waits in no queue.
	if _, err := a.o.Store.Put(ctx, NS, key, b, 0); err != nil {
		return nil, fmt.Errorf("queue %s: %w", req.Conv, err)
	}
	var old string
	fresh := false
	rec, err := a.updateRecord(ctx, req.Conv, func(r *Record) error {
		old, fresh = "", false
		if r.QueueKey != key {
			old, fresh = r.QueueKey, true
		}
		startOver(r, req.Since)
		r.State, r.Team, r.Priority, r.QueueKey = RecWaiting, team.Name, req.Priority, key
		r.Owner = firstNonEmpty(req.Owner, r.Owner)
		if r.QueuedAt.IsZero() || fresh {
			r.QueuedAt = a.now()
		}
		// While it waits, the first-response clock runs from the handoff.
		if t := team.SLA.For(req.Priority).FirstResponse; t > 0 && r.FirstResponseAt.IsZero() {
			r.Deadline, r.DeadlineKind = AddBusiness(team.Hours, r.HandedOff, t), KindFirst
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if old != "" && old != key {
		_ = a.o.Store.Delete(ctx, NS, old)
	}
	if fresh {
		a.m.Queued.WithLabelValues(team.Name).Inc()
		fx.add(func(ctx context.Context) {
			a.audit(ctx, pipeline.AuditRecord{Kind: "queued", Conv: req.Conv, Detail: fmt.Sprintf("team %s, priority %s: nobody available", team.Name, req.Priority)})
			a.syncPipeline(ctx, req.Conv, "", team.Name, "")
			a.armSLA(ctx, rec)
		})
	}
	return &Assignment{Conv: req.Conv, Team: team.Name, Priority: req.Priority, Queued: true, Reason: "queue", At: a.now()}, nil
}
