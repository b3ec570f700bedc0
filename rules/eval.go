package rules

import (
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Verdict is one rule's outcome in a trace (Ruleset.Trace): whether its
// condition held, and whether it took effect.
type Verdict struct {
	Section string `json:"section"`
	Rule    string `json:"rule"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	When    string `json:"when,omitempty"`
	Matched bool   `json:"matched"`
	Applied bool   `json:"applied"`
	Effect  string `json:"effect,omitempty"` // what it did, or would have done
	Note    string `json:"note,omitempty"`   // why it did not apply, or its error
}

// Evaluate decides what to do about one message. Rules that fail at run time
// count as not matching: the decision is still returned, with an *EvalError
// listing them (and in Decision.Errors).
func (rs *Ruleset) Evaluate(in Input) (*Decision, error) {
	return rs.evaluate(&in, nil)
}

// Trace evaluates like Evaluate and also returns every rule's verdict,
// including the rules that did not match or were not reached: what
// `switchboard rules explain` prints.
func (rs *Ruleset) Trace(in Input) (*Decision, []Verdict, error) {
	var tr []Verdict
	d, err := rs.evaluate(&in, &tr)
	return d, tr, err
}

// evalState carries one evaluation. The environment is boxed into an
// interface (one allocation) only when a program needs a field that changed
// since the last boxing: expr reads fields of a boxed struct value without
// allocating, where a pointer would cost an allocation per field read.
type evalState struct {
	rs    *Ruleset
	d     *Decision
	vm    *vm.VM
	env   *Env
	boxed any
	dirty uses
	tr    *[]Verdict
	errs  []RuleError
}

var envPool = sync.Pool{New: func() any { return new(Env) }}

func (s *evalState) run(p *program) (any, error) {
	if s.boxed == nil || p.uses&s.dirty != 0 {
		s.boxed = *s.env
		s.dirty = 0
	}
	return s.vm.Run(p.prog, s.boxed)
}

// cond runs a condition; a failure is recorded and counts as false.
func (s *evalState) cond(p *program, section, rule, file string, line int) (bool, string) {
	if p.native != nil {
		return p.native(s.env), ""
	}
	out, err := s.run(p)
	if err != nil {
		msg := oneLine(err.Error())
		s.errs = append(s.errs, RuleError{Section: section, Rule: rule, File: file, Line: line, Err: msg})
		return false, "error: " + msg
	}
	return out.(bool), ""
}

// peek runs a condition of a rule that cannot take effect any more (trace
// mode only): its failure is shown, not recorded as an evaluation error.
func (s *evalState) peek(p *program) (bool, string) {
	if p.native != nil {
		return p.native(s.env), ""
	}
	out, err := s.run(p)
	if err != nil {
		return false, "error: " + oneLine(err.Error())
	}
	return out.(bool), ""
}

func (s *evalState) verdict(v Verdict) {
	if s.tr != nil {
		*s.tr = append(*s.tr, v)
	}
}

func (s *evalState) fire(f Firing) { s.d.Fired = append(s.d.Fired, f) }

func (rs *Ruleset) evaluate(in *Input, tr *[]Verdict) (*Decision, error) {
	// The environment (about a kilobyte) escapes to the heap through the
	// native closures, so it is pooled rather than allocated per message.
	env := envPool.Get().(*Env)
	defer func() {
		*env = Env{} // drop references to this message's strings
		envPool.Put(env)
	}()
	v := getVM()
	defer putVM(v)
	errs := rs.prepare(env, in, v, tr)
	d := &Decision{Version: rs.version, Now: env.Now, Fired: make([]Firing, 0, 16)}
	s := evalState{rs: rs, d: d, vm: v, env: env, dirty: allUses | usesConds, tr: tr, errs: errs}

	s.scoring()
	s.tiers()
	s.routing()
	state := in.Conversation.State
	if state == "" || state == StateBot {
		s.handoff()
	} else if tr != nil {
		for i := range rs.handoffs {
			s.skipped(rs.handoffs[i].info, "not evaluated: the conversation is "+state+" (handoff rules apply while the bot has it)")
		}
	}
	if state == StateHandedOff || state == StateHuman {
		s.release()
	} else if tr != nil {
		for i := range rs.releases {
			s.skipped(rs.releases[i].info, "not evaluated: the conversation is "+stateName(state)+" (release rules apply while a person has it)")
		}
	}
	s.followups()
	if len(s.errs) > 0 {
		d.Errors = s.errs
		return d, &EvalError{Errors: s.errs}
	}
	return d, nil
}

func stateName(s string) string {
	if s == "" {
		return StateBot
	}
	return s
}

func (s *evalState) skipped(r *RuleInfo, note string) {
	s.verdict(Verdict{Section: r.Section, Rule: r.Rule, File: r.File, Line: r.Line, When: r.When, Effect: r.Detail, Note: note})
}

func (s *evalState) scoring() {
	sum, setTo, hasSet := 0, 0, false
	for i := range s.rs.scoring {
		r := &s.rs.scoring[i]
		ok, note := s.cond(r.when, "scoring", r.name, r.file, r.line)
		if !ok {
			if s.tr != nil {
				s.verdict(Verdict{Section: "scoring", Rule: r.name, File: r.file, Line: r.line, When: r.when.src, Effect: r.detail, Note: note})
			}
			continue
		}
		n := r.n
		if r.amount != nil && r.amount.nativeInt != nil {
			n = max(r.amount.nativeInt(s.env), 0)
		} else if r.amount != nil {
			out, err := s.run(r.amount)
			if err != nil {
				msg := oneLine(err.Error())
				s.errs = append(s.errs, RuleError{Section: "scoring", Rule: r.name, File: r.file, Line: r.line, Err: msg})
				s.verdict(Verdict{Section: "scoring", Rule: r.name, File: r.file, Line: r.line, When: r.when.src, Matched: true, Effect: r.detail, Note: "error: " + msg})
				continue
			}
			n = out.(int)
			if n < 0 {
				n = 0 // an amount is a magnitude; the op gives the sign
			}
		}
		v := n
		switch r.op {
		case "add":
			sum += n
		case "subtract":
			sum -= n
			v = -n
		case "set":
			setTo, hasSet = n, true
		}
		f := Firing{RuleInfo: r.info, Value: v}
		s.fire(f)
		if s.tr != nil {
			s.verdict(Verdict{Section: "scoring", Rule: r.name, File: r.file, Line: r.line, When: r.when.src, Matched: true, Applied: true, Effect: f.Effect()})
		}
	}
	score := sum
	if hasSet {
		score = setTo // the last set that fires overrides the sum
	}
	score = min(max(score, 0), 100)
	s.d.Score, s.env.Score = score, score
	s.dirty |= usesScore
}

func (s *evalState) tiers() {
	for i := range s.rs.tiers {
		t := &s.rs.tiers[i]
		when := t.detail
		if s.d.Tier != "" {
			if s.tr != nil {
				s.verdict(Verdict{Section: "tier", Rule: t.name, File: t.file, Line: t.line, When: when, Note: "not reached: tier " + s.d.Tier + " comes first"})
			}
			continue
		}
		var ok bool
		note := ""
		if t.when == nil {
			ok = s.d.Score >= t.min
		} else {
			ok, note = s.cond(t.when, "tier", t.name, t.file, t.line)
		}
		if ok {
			s.d.Tier, s.env.Tier = t.name, t.name
			s.dirty |= usesTier
			s.fire(Firing{RuleInfo: t.info})
		}
		s.verdict(Verdict{Section: "tier", Rule: t.name, File: t.file, Line: t.line, When: when, Matched: ok, Applied: ok, Effect: t.effect, Note: note})
		if ok && s.tr == nil {
			return
		}
	}
}

func (s *evalState) routing() {
	d := s.d
	team, prio, decided := "", "", ""
	for i := range s.rs.routes {
		r := &s.rs.routes[i]
		v := Verdict{Section: "routing", Rule: r.name, File: r.file, Line: r.line, Effect: r.detail}
		ok := true
		if r.when != nil {
			v.When = r.when.src
			if decided != "" {
				ok, v.Note = s.peek(r.when)
			} else {
				ok, v.Note = s.cond(r.when, "routing", r.name, r.file, r.line)
			}
		}
		v.Matched = ok
		if decided != "" {
			if s.tr == nil {
				break
			}
			if ok {
				v.Note = "matches, but route " + decided + " decided first"
			} else if v.Note == "" {
				v.Note = "not reached: route " + decided + " decided first"
			}
			s.verdict(v)
			continue
		}
		if ok {
			v.Applied = true
			if team == "" && r.team != "" {
				team = r.team
				d.Route = r.name
			}
			if prio == "" && r.priority != "" {
				prio = r.priority
			}
			s.fire(Firing{RuleInfo: r.info})
			if !r.cont {
				decided = r.name
			}
		}
		s.verdict(v)
		if decided != "" && s.tr == nil {
			break
		}
	}
	if prio == "" {
		prio = DefaultPriority
	}
	d.Priority, s.env.Priority = prio, prio
	s.setTeam(team)
	s.dirty |= usesPriority
}

func (s *evalState) setTeam(team string) {
	d := s.d
	d.Team, s.env.Team = team, team
	s.dirty |= usesTeam
	d.Strategy, d.OutOfHours, d.NextOpen = "", false, time.Time{}
	if t, ok := s.rs.teams[team]; ok {
		d.Strategy = t.Strategy
		if !t.Hours.Open(d.Now) {
			d.OutOfHours = true
			d.NextOpen = t.Hours.NextOpen(d.Now)
		}
	}
}

func (s *evalState) handoff() {
	for i := range s.rs.handoffs {
		h := &s.rs.handoffs[i]
		v := Verdict{Section: "handoff", Rule: h.name, File: h.file, Line: h.line, When: h.when.src, Effect: h.detail}
		if s.d.Handoff != nil {
			v.Matched, v.Note = s.peek(h.when)
			if v.Matched {
				v.Note = "matches, but handoff rule " + s.d.Handoff.Rule + " came first"
			}
			s.verdict(v)
			continue
		}
		v.Matched, v.Note = s.cond(h.when, "handoff", h.name, h.file, h.line)
		if v.Matched {
			v.Applied = true
			s.applyHandoff(h)
		}
		s.verdict(v)
		if v.Matched && s.tr == nil {
			return
		}
	}
}

func (s *evalState) applyHandoff(h *handoffRule) {
	d := s.d
	if h.team != "" && h.team != d.Team {
		s.setTeam(h.team)
		d.Route = ""
	}
	if h.priority != "" {
		d.Priority, s.env.Priority = h.priority, h.priority
		s.dirty |= usesPriority
	}
	ho := &Handoff{Rule: h.name, Reason: h.reason, Team: d.Team, PauseBot: h.pauseBot, Immediate: h.immediate,
		Notify: h.notify, OutOfHours: d.OutOfHours, NextOpen: d.NextOpen}
	msg := h.message
	if d.OutOfHours && h.offHours != "" {
		msg = h.offHours
	}
	ho.CustomerMessage = s.render(msg)
	if h.offHours != "" {
		ho.OutOfHoursMessage = s.render(h.offHours)
	}
	d.Handoff = ho
	s.fire(Firing{RuleInfo: h.info})
}

func (s *evalState) release() {
	for i := range s.rs.releases {
		r := &s.rs.releases[i]
		v := Verdict{Section: "release", Rule: r.name, File: r.file, Line: r.line, When: r.when.src, Effect: r.detail}
		if s.d.Release != nil {
			v.Matched, v.Note = s.peek(r.when)
		} else {
			v.Matched, v.Note = s.cond(r.when, "release", r.name, r.file, r.line)
		}
		if v.Matched {
			if s.d.Release != nil {
				v.Note = "matches, but release rule " + s.d.Release.Rule + " came first"
			} else {
				v.Applied = true
				s.d.Release = &Release{Rule: r.name, CustomerMessage: s.render(r.message), Notify: r.notify}
				s.fire(Firing{RuleInfo: r.info})
			}
		}
		s.verdict(v)
		if s.d.Release != nil && s.tr == nil {
			return
		}
	}
}

func (s *evalState) followups() {
	for i := range s.rs.followups {
		f := &s.rs.followups[i]
		v := Verdict{Section: "followup", Rule: f.name, File: f.file, Line: f.line, When: f.when.src, Effect: f.detail}
		v.Matched, v.Note = s.cond(f.when, "followup", f.name, f.file, f.line)
		if v.Matched {
			v.Applied = true
			cancel := ""
			if f.cancel != nil {
				cancel = f.cancel.src
			}
			if s.d.Followups == nil {
				s.d.Followups = make([]Followup, 0, len(s.rs.followups)-i)
			}
			s.d.Followups = append(s.d.Followups, Followup{Name: f.name, After: f.after, At: s.d.Now.Add(f.after),
				Action: f.action, Params: f.params, CancelWhen: cancel})
			s.fire(Firing{RuleInfo: f.info})
		}
		s.verdict(v)
	}
}

var (
	weekdaysVI = [7]string{"Chủ nhật", "thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy"}
)

// render fills a customer message's placeholders, in a stack buffer so
// that the message is the only allocation.
func (s *evalState) render(msg string) string {
	if !strings.Contains(msg, "{") {
		return msg
	}
	d := s.d
	next := d.NextOpen
	if next.IsZero() {
		next = d.Now
	}
	if t, ok := s.rs.teams[d.Team]; ok {
		next = next.In(t.Hours.Location())
	}
	var stack [512]byte
	b := stack[:0]
	for {
		i := strings.IndexByte(msg, '{')
		j := strings.IndexByte(msg[max(i, 0):], '}')
		if i < 0 || j < 0 {
			b = append(b, msg...)
			return string(b)
		}
		b = append(b, msg[:i]...)
		switch msg[i+1 : i+j] {
		case "name":
			b = append(b, s.env.Contact.Name...)
		case "team":
			b = append(b, d.Team...)
		case "next_open":
			b = next.AppendFormat(b, "15:04 02/01/2006")
		case "next_open_time":
			b = next.AppendFormat(b, "15:04")
		case "next_open_date":
			b = next.AppendFormat(b, "02/01/2006")
		case "next_open_day":
			b = append(b, weekdaysVI[next.Weekday()]...)
		case "next_open_day_en":
			b = append(b, next.Weekday().String()...)
		default:
			b = append(b, msg[i:i+j+1]...)
		}
		msg = msg[i+j+1:]
	}
}
