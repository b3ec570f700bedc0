// Package assign gives handed-off conversations to human agents and watches
// that they answer in time.
//
// Agents and teams come from the rules (rules.Team, rules.Agent); what
// changes at run time lives in the Store, shared by every hub replica: each
// agent's status (online, away, offline), the conversations they have open,
// their last assignment and capacity overrides; each team's rotation cursor
// and waiting queue; and one record per assigned conversation (assignee,
// SLA deadlines, breaches, time to first response).
//
// Atomicity across replicas: a team's decisions are serialised by a Store
// lease (plus an in-process mutex so one process does not spin on its own
// lease), which keeps round-robin fair and the queue in order; and every
// agent's open set is changed only by compare-and-swap that refuses to go
// above capacity, so even a lease holder that stalled past its lease, or
// two teams sharing an agent, can never give one slot twice. See
// docs/assignment.md.
package assign

import (
	"errors"
	"time"
)

// Status is an agent's presence.
type Status string

// Agent statuses. Only online agents get new conversations.
const (
	Online  Status = "online"
	Away    Status = "away"
	Offline Status = "offline"
)

// ParseStatus checks s.
func ParseStatus(s string) (Status, error) {
	switch Status(s) {
	case Online, Away, Offline:
		return Status(s), nil
	}
	return "", ErrInvalid
}

var (
	// ErrUnknownAgent: no such agent in the running rules.
	ErrUnknownAgent = errors.New("unknown agent")
	// ErrUnknownTeam: no such team in the running rules.
	ErrUnknownTeam = errors.New("unknown team")
	// ErrNotFound: no such conversation.
	ErrNotFound = errors.New("conversation not found")
	// ErrAtCapacity: the agent already has as many open conversations as
	// their capacity allows.
	ErrAtCapacity = errors.New("agent at capacity")
	// ErrInvalid: a bad argument (status, negative capacity...).
	ErrInvalid = errors.New("invalid argument")
	// ErrNoTeam: the conversation has no team to assign it in.
	ErrNoTeam = errors.New("conversation has no team")
)

// AgentState is an agent as the admin API shows it: the rules' definition
// plus the shared run-time state.
type AgentState struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Teams  []string `json:"teams"`
	Status Status   `json:"status"`
	// StatusSince is when the status last changed (zero: never set; the
	// configured default status applies).
	StatusSince time.Time `json:"status_since,omitzero"`
	// Open lists the conversations the agent has open, Load is its length.
	Open []string `json:"open"`
	Load int      `json:"load"`
	// Capacity is the effective most open conversations (0: no limit): the
	// run-time override when set, otherwise the rules' (the agent's own or
	// the largest of its teams').
	Capacity int `json:"capacity"`
	// CapacityOverride is the run-time override (nil: none).
	CapacityOverride *int      `json:"capacity_override,omitempty"`
	LastAssigned     time.Time `json:"last_assigned,omitzero"`
	LastConversation string    `json:"last_conversation,omitempty"`
	// Assigned counts every assignment the agent ever received.
	Assigned int64 `json:"assigned"`
	// Available: online, in one of its teams' hours and below capacity.
	Available bool `json:"available"`
}

// TeamState is a team as the admin API shows it.
type TeamState struct {
	Name       string    `json:"name"`
	Strategy   string    `json:"strategy"`
	Capacity   int       `json:"capacity,omitempty"`
	Members    []string  `json:"members"`
	Supervisor string    `json:"supervisor,omitempty"`
	EscalateTo string    `json:"escalate_to,omitempty"`
	Open       bool      `json:"open"`               // in business hours now
	NextOpen   time.Time `json:"next_open,omitzero"` // when closed
	Online     int       `json:"online"`             // members online
	Load       int       `json:"load"`               // open conversations of its members
	Waiting    int       `json:"waiting"`            // conversations in its queue
}

// Waiting is a conversation in a team's queue.
type Waiting struct {
	Conv     string    `json:"conv"`
	Team     string    `json:"team"`
	Priority string    `json:"priority"`
	Since    time.Time `json:"since"`
}

// Assignment is the outcome of an assignment request.
type Assignment struct {
	Conv     string `json:"conv"`
	Team     string `json:"team"`
	Priority string `json:"priority,omitempty"`
	// Agent is the assignee; empty when the conversation waits in the
	// team's queue (Queued).
	Agent  string `json:"agent,omitempty"`
	Queued bool   `json:"queued,omitempty"`
	// Reason says how the agent was chosen: owner, round_robin,
	// least_loaded, capacity, manual, escalation, queue.
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Record is what the assigner keeps about one conversation (the admin API
// can show it next to the pipeline's Conversation).
type Record struct {
	Conv     string `json:"conv"`
	Team     string `json:"team,omitempty"`
	Priority string `json:"priority,omitempty"`
	// State: waiting (in a queue), assigned, released, closed.
	State    string `json:"state"`
	Assignee string `json:"assignee,omitempty"`
	// Pending is an assignee chosen but not yet committed (crash safety:
	// a retry completes it, the reconciler repairs it).
	Pending      string `json:"pending,omitempty"`
	PendingToken string `json:"pending_token,omitempty"`
	// Token identifies the assignment that holds the assignee's slot.
	Token      string    `json:"token,omitempty"`
	Owner      string    `json:"owner,omitempty"` // the contact's owner, for sticky assignment
	Tried      []string  `json:"tried,omitempty"` // assignees bypassed by escalation
	Escalation int       `json:"escalation"`      // escalation steps taken
	HandedOff  time.Time `json:"handed_off,omitzero"`
	AssignedAt time.Time `json:"assigned_at,omitzero"`
	QueuedAt   time.Time `json:"queued_at,omitzero"`
	QueueKey   string    `json:"queue_key,omitempty"`

	// SLA.
	FirstResponseAt  time.Time     `json:"first_response_at,omitzero"`
	FirstResponse    time.Duration `json:"first_response,omitempty"` // time to first response (wall clock)
	Deadline         time.Time     `json:"deadline,omitzero"`        // the running SLA deadline
	DeadlineKind     string        `json:"deadline_kind,omitempty"`  // first_response | next_response
	AwaitingSince    time.Time     `json:"awaiting_since,omitzero"`  // customer waiting since
	Breaches         []Breach      `json:"breaches,omitempty"`
	LastAgentReplyAt time.Time     `json:"last_agent_reply_at,omitzero"`
	UpdatedAt        time.Time     `json:"updated_at"`
}

// Breach is one missed SLA deadline.
type Breach struct {
	Kind     string    `json:"kind"` // first_response | next_response
	Deadline time.Time `json:"deadline"`
	Agent    string    `json:"agent,omitempty"`
	Team     string    `json:"team"`
	Action   string    `json:"action"` // reassigned to X, escalated to team Y, none
	// Audited: the breach's audit record is written. A process that died
	// between recording the breach and auditing it leaves it false; the
	// timer's next firing finishes the job.
	Audited bool `json:"audited,omitempty"`
}

// Record states.
const (
	RecWaiting  = "waiting"
	RecAssigned = "assigned"
	RecReleased = "released"
	RecClosed   = "closed"
)
