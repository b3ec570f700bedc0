package rules

import (
	"fmt"
	"strings"
	"time"
)

// Decision is what the rules decided about one message, with the rules that
// fired and what each contributed: the pipeline acts on it, and the admin API
// and the CRM note show it (Explain) so that a salesperson can see why.
type Decision struct {
	Version  string    `json:"version"` // of the rule set that decided
	Now      time.Time `json:"now"`
	Score    int       `json:"score"` // 0..100, computed fresh from the scoring rules
	Tier     string    `json:"tier,omitempty"`
	Team     string    `json:"team"`
	Priority string    `json:"priority"`
	Strategy Strategy  `json:"strategy,omitempty"` // the team's assignment strategy
	Route    string    `json:"route,omitempty"`    // the route that chose the team
	// OutOfHours is set when the team does not work at Now; NextOpen is then
	// when it opens next (zero if it never does).
	OutOfHours bool        `json:"out_of_hours,omitempty"`
	NextOpen   time.Time   `json:"next_open,omitzero"`
	Handoff    *Handoff    `json:"handoff,omitempty"`
	Release    *Release    `json:"release,omitempty"`
	Followups  []Followup  `json:"followups,omitempty"`
	Fired      []Firing    `json:"fired"`
	Errors     []RuleError `json:"errors,omitempty"`
}

// Handoff tells the pipeline to give the conversation to a person.
type Handoff struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"` // for the agent; the rule name unless the rule gives one
	Team   string `json:"team"`
	// PauseBot stops bot replies until the conversation is released.
	PauseBot bool `json:"pause_bot"`
	// Immediate hands off before the bot replies to this message: the
	// customer gets CustomerMessage instead of a bot answer.
	Immediate bool     `json:"immediate,omitempty"`
	Notify    []string `json:"notify,omitempty"` // assignee, supervisor, team, team:NAME, agent:ID, owner
	// CustomerMessage is what to tell the customer (may be empty), already
	// chosen for the time of day and with its placeholders filled in.
	CustomerMessage string `json:"customer_message,omitempty"`
	// OutOfHoursMessage is the rule's out-of-hours variant, filled in (empty
	// when the rule has none), for a pipeline that decides again at send time.
	OutOfHoursMessage string    `json:"out_of_hours_message,omitempty"`
	OutOfHours        bool      `json:"out_of_hours,omitempty"`
	NextOpen          time.Time `json:"next_open,omitzero"`
}

// Release tells the pipeline to give a conversation back to the bot.
type Release struct {
	Rule            string   `json:"rule"`
	CustomerMessage string   `json:"customer_message,omitempty"`
	Notify          []string `json:"notify,omitempty"`
}

// Followup is a delayed action for the timer system.
type Followup struct {
	Name   string            `json:"name"`
	After  time.Duration     `json:"after"`
	At     time.Time         `json:"at"` // Now + After
	Action string            `json:"action"`
	Params map[string]string `json:"params,omitempty"` // shared with the rule set: do not modify
	// CancelWhen is the condition, evaluated when the follow-up is due (see
	// Ruleset.FollowupCancelled), under which it is dropped.
	CancelWhen string `json:"cancel_when,omitempty"`
}

// Firing is one rule that matched and what it did. The RuleInfo is shared
// with the rule set (and other decisions): do not modify it.
type Firing struct {
	*RuleInfo
	// Value is set for scoring: the amount added to the score (negative for
	// subtract), or for set the score it sets.
	Value int `json:"value,omitempty"`
}

// RuleInfo describes a rule: where it is and what it does.
type RuleInfo struct {
	Section string `json:"section"` // scoring, tier, routing, handoff, release, followup
	Rule    string `json:"rule"`
	File    string `json:"file"` // relative to the rules directory
	Line    int    `json:"line"`
	When    string `json:"when,omitempty"`
	Op      string `json:"op,omitempty"` // scoring: add, subtract or set
	Detail  string `json:"detail,omitempty"`
}

// RuleError is a rule that failed at run time. It counted as not matching.
type RuleError struct {
	Section string `json:"section"`
	Rule    string `json:"rule"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Err     string `json:"error"`
}

func (e RuleError) String() string {
	return fmt.Sprintf("%s:%d: %s rule %q: %s", e.File, e.Line, e.Section, e.Rule, e.Err)
}

// EvalError is returned with a usable decision when some rules failed at run
// time; those rules counted as not matching.
type EvalError struct{ Errors []RuleError }

func (e *EvalError) Error() string {
	s := make([]string, len(e.Errors))
	for i, r := range e.Errors {
		s[i] = r.String()
	}
	return strings.Join(s, "\n")
}

// Matched reports whether the named rule (or tier) fired.
func (d *Decision) Matched(rule string) bool {
	for _, f := range d.Fired {
		if f.Rule == rule {
			return true
		}
	}
	return false
}

// Effect describes what a firing did, for people.
func (f Firing) Effect() string {
	switch f.Op {
	case "add", "subtract":
		return fmt.Sprintf("%+d", f.Value)
	case "set":
		return fmt.Sprintf("set %d", f.Value)
	}
	return f.Detail
}

// Explain renders the decision for people: the outcome, then every rule that
// fired with its contribution, file and line.
func (d *Decision) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "score %d", d.Score)
	if d.Tier != "" {
		fmt.Fprintf(&b, " (%s)", d.Tier)
	}
	fmt.Fprintf(&b, " → team %s", d.Team)
	if d.Strategy != "" {
		fmt.Fprintf(&b, " (%s)", d.Strategy)
	}
	fmt.Fprintf(&b, ", priority %s", d.Priority)
	if d.OutOfHours {
		if d.NextOpen.IsZero() {
			b.WriteString(", out of hours")
		} else {
			fmt.Fprintf(&b, ", out of hours until %s", d.NextOpen.Format("Mon 02/01 15:04"))
		}
	}
	b.WriteByte('\n')
	if h := d.Handoff; h != nil {
		fmt.Fprintf(&b, "handoff to %s: %s", h.Team, h.Reason)
		var opts []string
		if h.Immediate {
			opts = append(opts, "immediate")
		}
		if h.PauseBot {
			opts = append(opts, "bot paused")
		}
		if len(h.Notify) > 0 {
			opts = append(opts, "notify "+strings.Join(h.Notify, ", "))
		}
		if len(opts) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(opts, "; "))
		}
		b.WriteByte('\n')
		if h.CustomerMessage != "" {
			fmt.Fprintf(&b, "  tell the customer: %q\n", h.CustomerMessage)
		}
	}
	if r := d.Release; r != nil {
		fmt.Fprintf(&b, "release to the bot: %s\n", r.Rule)
	}
	for _, f := range d.Followups {
		fmt.Fprintf(&b, "followup %s: %s in %s\n", f.Name, f.Action, shortDuration(f.After))
	}
	if len(d.Fired) > 0 {
		b.WriteString("because:\n")
		for _, f := range d.Fired {
			fmt.Fprintf(&b, "  %-8s  %s: %s  (%s:%d", f.Section, f.Rule, f.Effect(), f.File, f.Line)
			if f.When != "" {
				fmt.Fprintf(&b, ", when %s", oneLine(f.When))
			}
			b.WriteString(")\n")
		}
	}
	for _, e := range d.Errors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// shortDuration prints 15m rather than 15m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
