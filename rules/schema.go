package rules

import (
	"fmt"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Strategy is how a team assigns conversations to its members.
type Strategy string

// Assignment strategies.
const (
	RoundRobin  Strategy = "round_robin"  // members in turn
	LeastLoaded Strategy = "least_loaded" // the member with the fewest open conversations
	Capacity    Strategy = "capacity"     // least loaded, never above each member's capacity
)

var strategies = []string{string(RoundRobin), string(LeastLoaded), string(Capacity)}

// Priorities, lowest first.
var Priorities = []string{"low", "normal", "high", "urgent"}

// DefaultPriority is the priority of a conversation no route gave one.
const DefaultPriority = "normal"

// Agent is a person who takes conversations.
type Agent struct {
	ID   string `json:"id" expr:"id"`
	Name string `json:"name,omitempty" expr:"name"`
	// Skills maps a skill to a level; a YAML list of skills gives level 1.
	Skills     map[string]int    `json:"skills,omitempty" expr:"skills"`
	Attributes map[string]string `json:"attributes,omitempty" expr:"attributes"`
	// Capacity is the most open conversations this agent takes; 0 means the
	// team's capacity.
	Capacity int `json:"capacity,omitempty" expr:"capacity"`
	// Notify is where notifications reach the agent, such as "zalo:84901234567"
	// or "email:an@example.vn".
	Notify string `json:"notify,omitempty" expr:"notify"`
}

// Team is a validated team policy. The assignment and SLA machinery read it;
// the rules only decide which team (and so which strategy) applies.
type Team struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Strategy    Strategy `json:"strategy"`
	// Capacity is the default most open conversations per member (0: no limit).
	Capacity   int     `json:"capacity,omitempty"`
	Members    []Agent `json:"members"`
	Hours      *Hours  `json:"-"` // nil: always open
	SLA        SLA     `json:"sla"`
	EscalateTo string  `json:"escalate_to,omitempty"`
	Supervisor string  `json:"supervisor,omitempty"` // an agent id
	File       string  `json:"file"`
	Line       int     `json:"line"`

	eligible *program
	rs       *Ruleset
}

// SLA holds response-time targets. Zero means no target.
type SLA struct {
	FirstResponse time.Duration       `json:"first_response,omitempty"`
	NextResponse  time.Duration       `json:"next_response,omitempty"`
	ByPriority    map[string]SLATimes `json:"by_priority,omitempty"`
}

// SLATimes is one pair of targets.
type SLATimes struct {
	FirstResponse time.Duration `json:"first_response,omitempty"`
	NextResponse  time.Duration `json:"next_response,omitempty"`
}

// For returns the targets for a priority: the priority's own where it sets
// them, the team's otherwise.
func (s SLA) For(priority string) SLATimes {
	t := SLATimes{s.FirstResponse, s.NextResponse}
	if p, ok := s.ByPriority[priority]; ok {
		if p.FirstResponse != 0 {
			t.FirstResponse = p.FirstResponse
		}
		if p.NextResponse != 0 {
			t.NextResponse = p.NextResponse
		}
	}
	return t
}

// Open reports whether the team works at t.
func (t Team) Open(at time.Time) bool { return t.Hours.Open(at) }

// NextOpen returns at when the team works then, or when it opens next.
func (t Team) NextOpen(at time.Time) time.Time { return t.Hours.NextOpen(at) }

// CapacityOf returns the most open conversations a member takes in this team
// (0: no limit).
func (t Team) CapacityOf(a Agent) int {
	if a.Capacity > 0 {
		return a.Capacity
	}
	return t.Capacity
}

// EligibleExpr returns the team's eligible condition ("" when every member is).
func (t Team) EligibleExpr() string {
	if t.eligible == nil {
		return ""
	}
	return t.eligible.src
}

// Eligible reports whether agent may take the conversation described by in
// and d (the decision that routed it here), by the team's eligible condition.
func (t Team) Eligible(a Agent, in Input, d *Decision) (bool, error) {
	if t.eligible == nil {
		return true, nil
	}
	var e AgentEnv
	v := getVM()
	defer putVM(v)
	t.rs.prepare(&e.Env, &in, v, nil)
	if d != nil {
		e.Score, e.Tier, e.Team, e.Priority = d.Score, d.Tier, d.Team, d.Priority
	}
	e.Agent = a
	out, err := v.Run(t.eligible.prog, e)
	if err != nil {
		return false, fmt.Errorf("team %s: eligible: %w", t.Name, err)
	}
	return out.(bool), nil
}

// program is one compiled expression.
type program struct {
	src  string
	prog *vm.Program
	uses uses // phase-dependent names it reads
	// The same expression as a Go closure, when it is simple enough
	// (native.go): native for conditions, nativeInt for amounts.
	native    func(*Env) bool
	nativeInt func(*Env) int
}

type uses uint8

const (
	usesScore uses = 1 << iota
	usesTier
	usesTeam
	usesPriority
	usesConds // reads precomputed conditions

	allUses = usesScore | usesTier | usesTeam | usesPriority
)

type scoreRule struct {
	info       *RuleInfo // shared by the firings
	name, file string
	line       int
	when       *program
	op         string   // add, subtract or set
	n          int      // the amount when it is a literal
	amount     *program // the amount when it is an expression
	detail     string
}

type tierDef struct {
	info       *RuleInfo // shared by the firings
	name, file string
	line       int
	min        int      // the threshold when the tier is one (-1 otherwise)
	when       *program // otherwise
	detail     string
	effect     string // "tier hot"
}

type route struct {
	info           *RuleInfo // shared by the firings
	name, file     string
	line           int
	when           *program // nil: always
	team, priority string
	cont           bool
	detail         string
}

type handoffRule struct {
	info                *RuleInfo // shared by the firings
	name, file          string
	line                int
	when                *program
	team, priority      string
	reason              string
	pauseBot, immediate bool
	notify              []string
	message, offHours   string
	detail              string
}

type releaseRule struct {
	info       *RuleInfo // shared by the firings
	name, file string
	line       int
	when       *program
	message    string
	notify     []string
	detail     string
}

type followupRule struct {
	info       *RuleInfo // shared by the firings
	name, file string
	line       int
	when       *program
	after      time.Duration
	action     string
	params     map[string]string
	cancel     *program
	detail     string
}

// Followup actions.
var followupActions = []string{"task", "reminder", "message", "note", "webhook"}

// notify targets that need no argument.
var notifyTargets = []string{"assignee", "supervisor", "team", "owner"}
