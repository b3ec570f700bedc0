package assign

import (
	"context"
	"errors"
	"log/slog"
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
	// MaxEscalations bounds the escalation ladder of one conversation (6).
	MaxEscalations int
}

// Notifier delivers notifications to agents and supervisors.
type Notifier interface {
	// Notify delivers n to the target (the agent's notify string, such as
	// "zalo:84901000001", or "webhook"). key makes it idempotent.
	Notify(ctx context.Context, key string, n *Notification) error
}

// Assigner assigns conversations to agents and runs their SLAs.
type Assigner struct {
	o Options
}

// New returns an Assigner.
func New(o Options) (*Assigner, error) {
	if o.Store == nil || o.Rules == nil {
		return nil, errors.New("assign: Store and Rules are required")
	}
	return &Assigner{o: o}, nil
}

var errTODO = errors.New("assign: not implemented yet")

// SetStatus sets an agent's status. Coming online drains the queues of the
// agent's teams.
func (a *Assigner) SetStatus(ctx context.Context, agent string, s Status) error { return errTODO }

// SetCapacity overrides an agent's capacity at run time; n < 0 removes the
// override (back to the rules' capacity), 0 means no limit.
func (a *Assigner) SetCapacity(ctx context.Context, agent string, n int) error { return errTODO }

// Agent returns one agent's state.
func (a *Assigner) Agent(ctx context.Context, id string) (AgentState, error) {
	return AgentState{}, errTODO
}

// Agents returns every agent of the running rules, sorted by id.
func (a *Assigner) Agents(ctx context.Context) ([]AgentState, error) { return nil, errTODO }

// Teams returns every team with its live figures, sorted by name.
func (a *Assigner) Teams(ctx context.Context) ([]TeamState, error) { return nil, errTODO }

// Queue lists a team's waiting conversations in the order they will be
// assigned (priority, then age).
func (a *Assigner) Queue(ctx context.Context, team string) ([]Waiting, error) { return nil, errTODO }

// Record returns the assigner's record of a conversation (ErrNotFound).
func (a *Assigner) Record(ctx context.Context, conv string) (*Record, error) { return nil, errTODO }

// Assign assigns a conversation in its team: to agent when agent is not
// empty (a manual assignment: the agent must exist and be below capacity;
// status and hours are the admin's call), otherwise by the owner and the
// team's strategy, or into the team's queue when nobody is available.
// Assigning a conversation that is already assigned returns the current
// assignment (idempotent), unless agent names someone else: use Reassign.
func (a *Assigner) Assign(ctx context.Context, conv, agent string) (*Assignment, error) {
	return nil, errTODO
}

// Reassign moves a conversation to agent (or, with agent "", to the next
// agent by the team's strategy, never the current one), freeing the
// current assignee's slot.
func (a *Assigner) Reassign(ctx context.Context, conv, agent string) (*Assignment, error) {
	return nil, errTODO
}

// TakeOver gives a conversation to agent at once, whatever its state (the
// bot stops): a supervisor or an agent picking it up from the inbox.
func (a *Assigner) TakeOver(ctx context.Context, conv, agent string) (*Assignment, error) {
	return nil, errTODO
}

// Release hands a conversation back to the bot: the assignee's slot frees,
// SLA timers stop, the queue drains.
func (a *Assigner) Release(ctx context.Context, conv, reason string) error { return errTODO }

// Close closes a conversation (state closed; the bot answers if the
// customer writes again), freeing the assignee's slot.
func (a *Assigner) Close(ctx context.Context, conv, reason string) error { return errTODO }
