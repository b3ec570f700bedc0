package rules

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Ruleset is a loaded, validated and compiled rule set. It is immutable and
// safe for concurrent use.
type Ruleset struct {
	dir       string
	version   string
	files     []string // as opened
	rels      []string // the same, relative to dir
	ruleFiles int      // files[:ruleFiles] are rule files, the rest referred to
	loc       *time.Location
	scoring   []scoreRule
	tiers     []tierDef
	routes    []route
	teams     map[string]*Team
	agents    map[string]*Agent
	handoffs  []handoffRule
	releases  []releaseRule
	followups []followupRule
	slots     []fieldSlot
	matches   []matchDef
	groups    []wordGroup
	conds     []condition // precomputed, in Env.C order
}

type condition struct {
	name, file string
	line       int
	prog       *program
}

// Version is a hash of the rule set's content (its files, and the files they
// refer to): two sets with the same files have the same version.
func (rs *Ruleset) Version() string { return rs.version }

// Dir is the directory the set was loaded from.
func (rs *Ruleset) Dir() string { return rs.dir }

// Files lists the files the set was built from: the rule files in load order,
// then the files they refer to (holiday lists).
func (rs *Ruleset) Files() []string { return append([]string(nil), rs.files...) }

// Location is the set's time zone (settings.timezone, UTC by default).
func (rs *Ruleset) Location() *time.Location { return rs.loc }

// Teams returns the validated team policies by name. The map is a copy; the
// Teams' slices and maps are shared and must not be modified.
func (rs *Ruleset) Teams() map[string]Team {
	out := make(map[string]Team, len(rs.teams))
	for name, t := range rs.teams {
		out[name] = *t
	}
	return out
}

// Team returns one team's policy.
func (rs *Ruleset) Team(name string) (Team, bool) {
	t, ok := rs.teams[name]
	if !ok {
		return Team{}, false
	}
	return *t, true
}

// Agents returns every agent, from the agents section and the teams, by id.
func (rs *Ruleset) Agents() map[string]Agent {
	out := make(map[string]Agent, len(rs.agents))
	for id, a := range rs.agents {
		out[id] = *a
	}
	return out
}

// RuleRef names a rule and where it is defined.
type RuleRef struct {
	Section string `json:"section"`
	Name    string `json:"name"`
	File    string `json:"file"`
	Line    int    `json:"line"`
}

// Rules lists every rule and tier, in evaluation order.
func (rs *Ruleset) Rules() []RuleRef {
	var out []RuleRef
	for _, r := range rs.scoring {
		out = append(out, RuleRef{"scoring", r.name, r.file, r.line})
	}
	for _, t := range rs.tiers {
		out = append(out, RuleRef{"tier", t.name, t.file, t.line})
	}
	for _, r := range rs.routes {
		out = append(out, RuleRef{"routing", r.name, r.file, r.line})
	}
	for _, r := range rs.handoffs {
		out = append(out, RuleRef{"handoff", r.name, r.file, r.line})
	}
	for _, r := range rs.releases {
		out = append(out, RuleRef{"release", r.name, r.file, r.line})
	}
	for _, r := range rs.followups {
		out = append(out, RuleRef{"followup", r.name, r.file, r.line})
	}
	return out
}

// ErrUnknownFollowup is returned for a follow-up the rule set does not have
// (it was renamed or removed since the follow-up was scheduled).
var ErrUnknownFollowup = errors.New("rules: no such followup")

// FollowupCancelled evaluates the named follow-up's cancel_when against the
// facts when it is due (in.Now is then the due time). A follow-up without
// cancel_when is never cancelled.
func (rs *Ruleset) FollowupCancelled(name string, in Input) (bool, error) {
	for i := range rs.followups {
		f := &rs.followups[i]
		if f.name != name {
			continue
		}
		if f.cancel == nil {
			return false, nil
		}
		var e Env
		v := getVM()
		defer putVM(v)
		rs.prepare(&e, &in, v, nil)
		out, err := v.Run(f.cancel.prog, e)
		if err != nil {
			return false, fmt.Errorf("followup %q: cancel_when: %w", name, err)
		}
		return out.(bool), nil
	}
	return false, fmt.Errorf("%w: %q", ErrUnknownFollowup, name)
}

// vmPool reuses expr's virtual machines (their stacks) across evaluations.
var vmPool = sync.Pool{New: func() any { return new(vm.VM) }}

func getVM() *vm.VM  { return vmPool.Get().(*vm.VM) }
func putVM(v *vm.VM) { vmPool.Put(v) }

// prepare fills e from in and computes the precomputed conditions. A
// condition that fails counts as false; its error is returned.
func (rs *Ruleset) prepare(e *Env, in *Input, v *vm.VM, tr *[]Verdict) []RuleError {
	rs.fillEnv(e, in)
	if len(rs.conds) == 0 {
		return nil
	}
	var errs []RuleError
	var boxed any // only when a condition needs the VM
	for i := range rs.conds {
		c := &rs.conds[i]
		var ok bool
		var err error
		if c.prog.native != nil {
			ok = c.prog.native(e)
		} else {
			if boxed == nil {
				boxed = *e
			}
			var out any
			out, err = v.Run(c.prog.prog, boxed)
			ok = err == nil && out.(bool)
		}
		note := ""
		if err != nil {
			note = "error: " + oneLine(err.Error())
			errs = append(errs, RuleError{Section: "condition", Rule: c.name, File: c.file, Line: c.line, Err: oneLine(err.Error())})
		}
		e.C[i] = ok
		if tr != nil {
			*tr = append(*tr, Verdict{Section: "condition", Rule: c.name, File: c.file, Line: c.line, When: c.prog.src, Matched: ok, Applied: ok, Note: note})
		}
	}
	return errs
}

// infos builds the RuleInfo each rule's firings share.
func (rs *Ruleset) infos() {
	src := func(p *program) string {
		if p == nil {
			return ""
		}
		return p.src
	}
	for i := range rs.scoring {
		r := &rs.scoring[i]
		r.info = &RuleInfo{Section: "scoring", Rule: r.name, File: r.file, Line: r.line, When: src(r.when), Op: r.op, Detail: r.detail}
	}
	for i := range rs.tiers {
		t := &rs.tiers[i]
		t.info = &RuleInfo{Section: "tier", Rule: t.name, File: t.file, Line: t.line, When: t.detail, Detail: t.effect}
	}
	for i := range rs.routes {
		r := &rs.routes[i]
		r.info = &RuleInfo{Section: "routing", Rule: r.name, File: r.file, Line: r.line, When: src(r.when), Detail: r.detail}
	}
	for i := range rs.handoffs {
		h := &rs.handoffs[i]
		h.info = &RuleInfo{Section: "handoff", Rule: h.name, File: h.file, Line: h.line, When: src(h.when), Detail: h.detail}
	}
	for i := range rs.releases {
		r := &rs.releases[i]
		r.info = &RuleInfo{Section: "release", Rule: r.name, File: r.file, Line: r.line, When: src(r.when), Detail: r.detail}
	}
	for i := range rs.followups {
		f := &rs.followups[i]
		f.info = &RuleInfo{Section: "followup", Rule: f.name, File: f.file, Line: f.line, When: src(f.when), Detail: f.detail}
	}
}
