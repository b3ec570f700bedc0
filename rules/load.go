package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// IsRuleFile reports whether a file name is a rule file: *.yaml or *.yml,
// except test files (*_test.yaml) and hidden files (editor swap files).
func IsRuleFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	ext := filepath.Ext(name)
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	return !strings.HasSuffix(strings.TrimSuffix(name, ext), "_test")
}

// RuleFiles lists the rule files of dir in load order (by name).
func RuleFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && IsRuleFile(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// LoadDir loads, validates and compiles every rule file in dir (not its
// subdirectories), in name order: routes and rules keep that order, so name
// files 10-scoring.yaml, 20-routing.yaml where order matters. The error,
// when there is one, is a *LoadError listing every problem found.
func LoadDir(dir string) (*Ruleset, error) {
	names, err := RuleFiles(dir)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, &LoadError{Dir: dir, Problems: []Problem{{File: dir, Line: 1, Col: 1, Msg: "no rule files (*.yaml) here"}}}
	}
	return LoadFiles(dir, names...)
}

// LoadFiles loads the named rule files (relative to dir) as one rule set.
func LoadFiles(dir string, names ...string) (*Ruleset, error) {
	b := newBuilder(dir)
	for _, name := range names {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			b.probs = append(b.probs, Problem{File: path, Line: 1, Col: 1, Msg: err.Error()})
			continue
		}
		b.addFile(&srcFile{path: path, rel: filepath.ToSlash(name), data: data})
	}
	return b.build()
}

var sectionNames = []string{"settings", "conditions", "agents", "teams", "scoring", "routing", "handoff", "followups"}

type section struct {
	d        *decoder
	key, val *yaml.Node
}

// builder turns parsed files into a Ruleset, collecting every problem.
type builder struct {
	dir      string
	probs    []Problem
	files    []*srcFile
	extra    []*srcFile // files the rules refer to (holiday lists)
	sections map[string][]section
	c        *compiler

	loc       *time.Location
	names     map[string]string // rule name → where it is defined
	agents    map[string]*Agent
	agentAt   map[string]string
	teams     map[string]*Team
	teamOrder []string
	teamRaw   map[string]*rawTeam

	rs *Ruleset

	unreadable bool // a file is not valid YAML: checks of the whole set would mislead
}

type rawTeam struct {
	d        *decoder
	key      *yaml.Node
	members  []memberRef
	eligible *exprSrc
	escalate *yaml.Node
	superv   *yaml.Node
}

type memberRef struct {
	id   string
	node *yaml.Node
}

func newBuilder(dir string) *builder {
	return &builder{
		dir: dir, sections: map[string][]section{}, names: map[string]string{},
		agents: map[string]*Agent{}, agentAt: map[string]string{},
		teams: map[string]*Team{}, teamRaw: map[string]*rawTeam{},
		rs: &Ruleset{dir: dir},
	}
}

func (b *builder) addFile(f *srcFile) {
	b.files = append(b.files, f)
	f.lines = strings.Split(string(f.data), "\n")
	d := &decoder{f: f, probs: &b.probs}
	dec := yaml.NewDecoder(strings.NewReader(string(f.data)))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			b.probs = append(b.probs, yamlProblem(f.path, err))
			b.unreadable = true
			return
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := resolve(doc.Content[0])
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // an empty document
		}
		if root.Kind != yaml.MappingNode {
			d.errf(root, "a rule file is a mapping of sections (%s)%s", strings.Join(sectionNames, ", "), kindHint(root))
			continue
		}
		for i := 0; i+1 < len(root.Content); i += 2 {
			k, v := resolve(root.Content[i]), root.Content[i+1]
			if !contains(sectionNames, k.Value) {
				d.errf(k, "unknown section %q%s (sections: %s)", k.Value, didYouMean(k.Value, sectionNames), strings.Join(sectionNames, ", "))
				continue
			}
			if resolve(v).Tag == "!!null" {
				continue // an empty section, as in a template
			}
			b.sections[k.Value] = append(b.sections[k.Value], section{d, k, v})
		}
	}
}

var reYAMLLine = regexp.MustCompile(`^yaml: line (\d+): (.*)`)

func yamlProblem(path string, err error) Problem {
	msg := err.Error()
	line := 1
	if m := reYAMLLine.FindStringSubmatch(msg); m != nil {
		fmt.Sscan(m[1], &line)
		msg = m[2]
	}
	return Problem{File: path, Line: line, Col: 1, Msg: "not valid YAML: " + msg}
}

func (b *builder) build() (*Ruleset, error) {
	b.settings()
	b.c = newCompiler(&b.probs, b.loc)
	b.agentsSection()
	b.teamsSection()
	b.conditions()
	b.teamsLate()
	b.scoring()
	b.routing()
	b.handoff()
	b.followups()
	if len(b.probs) > 0 {
		return nil, &LoadError{Dir: b.dir, Problems: sortProblems(b.probs)}
	}
	rs := b.rs
	rs.loc = b.loc
	rs.slots = b.c.slots
	rs.matches = b.c.matches
	rs.groups = groupMatches(rs.matches)
	rs.teams = b.teams
	rs.agents = b.agents
	h := newContentHash()
	for _, f := range append(slices.Clone(b.files), b.extra...) {
		rs.files = append(rs.files, f.path)
		rs.rels = append(rs.rels, f.rel)
		h.add(f.rel, f.data, nil)
	}
	rs.version = h.sum()
	rs.ruleFiles = len(b.files)
	for _, t := range rs.teams {
		t.rs = rs
	}
	rs.infos()
	return rs, nil
}

// registerName claims a rule name: names are unique across files and
// sections, so that a test or a firing names one rule.
func (b *builder) registerName(d *decoder, n *yaml.Node, name, what string) bool {
	if prev, ok := b.names[name]; ok {
		d.errf(n, "%s %q: the name is already used by %s (rule and tier names are unique across all files)", what, name, prev)
		return false
	}
	b.names[name] = fmt.Sprintf("%s %q at %s:%d", what, name, d.f.path, n.Line)
	return true
}

// label names a list item in messages: by its name when it has one, by its
// position otherwise.
func label(item *yaml.Node, what string, i int) string {
	item = resolve(item)
	if item != nil && item.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(item.Content); j += 2 {
			if item.Content[j].Value == "name" && resolve(item.Content[j+1]).Kind == yaml.ScalarNode && resolve(item.Content[j+1]).Value != "" {
				return fmt.Sprintf("%s %q", what, resolve(item.Content[j+1]).Value)
			}
		}
	}
	return fmt.Sprintf("%s #%d", what, i+1)
}

// ruleName reads the name field of a rule.
func (b *builder) ruleName(d *decoder, item *yaml.Node, fs map[string]field, what string, index int) (string, bool) {
	nf, ok := fs["name"]
	if !ok {
		d.errf(item, "%s #%d has no name (every rule needs a unique name: it is what explanations and tests show)", what, index+1)
		return "", false
	}
	name, ok := d.str(nf.val, what+" name")
	if !ok {
		return "", false
	}
	return name, b.registerName(d, resolve(nf.val), name, what)
}

func (b *builder) settings() {
	b.loc = time.UTC
	secs := b.sections["settings"]
	for i, s := range secs {
		if i > 0 {
			s.d.errf(s.key, "settings are already given at %s:%d", secs[0].d.f.path, secs[0].key.Line)
			continue
		}
		fs, ok := s.d.fields(s.val, "settings", "timezone")
		if !ok {
			continue
		}
		if tz, ok := fs["timezone"]; ok {
			if name, ok := s.d.str(tz.val, "timezone"); ok {
				loc, err := time.LoadLocation(name)
				if err != nil {
					s.d.errf(resolve(tz.val), "unknown time zone %q (want an IANA name such as Asia/Ho_Chi_Minh)", name)
				} else {
					b.loc = loc
				}
			}
		}
	}
}

var agentFields = []string{"id", "name", "skills", "attributes", "capacity", "notify"}

func (b *builder) agentsSection() {
	for _, s := range b.sections["agents"] {
		for _, p := range s.d.pairs(s.val, "agents") {
			b.agent(s.d, p.key, p.key.Value, p.val, false)
		}
	}
}

// agent defines an agent, from the agents section or inline in a team.
func (b *builder) agent(d *decoder, at *yaml.Node, id string, n *yaml.Node, inline bool) *Agent {
	what := fmt.Sprintf("agent %q", id)
	known := agentFields[1:]
	if inline {
		known = agentFields
	}
	fs, ok := d.fields(n, what, known...)
	if !ok {
		return nil
	}
	if inline {
		f, ok := fs["id"]
		if !ok {
			d.errf(n, "a team member defined in place needs an id")
			return nil
		}
		if id, ok = d.str(f.val, "agent id"); !ok {
			return nil
		}
		at = resolve(f.val)
		what = fmt.Sprintf("agent %q", id)
	}
	if prev, dup := b.agentAt[id]; dup {
		d.errf(at, "agent %q is already defined at %s (define an agent once, in agents: or in one team, and list its id elsewhere)", id, prev)
		return nil
	}
	a := &Agent{ID: id}
	if f, ok := fs["name"]; ok {
		a.Name, _ = d.str(f.val, what+": name")
	}
	if f, ok := fs["notify"]; ok {
		a.Notify, _ = d.str(f.val, what+": notify")
	}
	if f, ok := fs["capacity"]; ok {
		if v, ok := d.integer(f.val, what+": capacity"); ok {
			if v < 0 {
				d.errf(resolve(f.val), "%s: capacity cannot be negative", what)
			}
			a.Capacity = v
		}
	}
	if f, ok := fs["skills"]; ok {
		a.Skills = map[string]int{}
		v := resolve(f.val)
		if v.Kind == yaml.MappingNode {
			for _, p := range d.pairs(v, what+": skills") {
				if lvl, ok := d.integer(p.val, fmt.Sprintf("%s: skill %q level", what, p.key.Value)); ok {
					a.Skills[p.key.Value] = lvl
				}
			}
		} else if list, ok := d.strList(v, what+": skills"); ok {
			for _, s := range list {
				a.Skills[s] = 1
			}
		}
	}
	if f, ok := fs["attributes"]; ok {
		a.Attributes = map[string]string{}
		for _, p := range d.pairs(f.val, what+": attributes") {
			if v, ok := d.str(p.val, fmt.Sprintf("%s: attribute %q", what, p.key.Value)); ok {
				a.Attributes[p.key.Value] = v
			}
		}
	}
	b.agents[id] = a
	b.agentAt[id] = fmt.Sprintf("%s:%d", d.f.path, at.Line)
	return a
}

var teamFields = []string{"description", "strategy", "capacity", "members", "eligible", "hours", "timezone", "holidays", "sla", "escalate_to", "supervisor"}

var reName = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N}_.-]*$`)

func (b *builder) teamsSection() {
	for _, s := range b.sections["teams"] {
		d := s.d
		for _, p := range d.pairs(s.val, "teams") {
			name := p.key.Value
			if !reName.MatchString(name) {
				d.errf(p.key, "team name %q: use letters, digits, - _ and . only", name)
				continue
			}
			if prev, dup := b.teams[name]; dup {
				d.errf(p.key, "team %q is already defined at %s:%d", name, b.teamRaw[name].d.f.path, prev.Line)
				continue
			}
			t := &Team{Name: name, File: d.f.rel, Line: p.key.Line, Strategy: RoundRobin}
			raw := &rawTeam{d: d, key: p.key}
			b.teams[name] = t
			b.teamRaw[name] = raw
			b.teamOrder = append(b.teamOrder, name)
			what := fmt.Sprintf("team %q", name)
			fs, ok := d.fields(p.val, what, teamFields...)
			if !ok {
				continue
			}
			if f, ok := fs["description"]; ok {
				t.Description, _ = d.str(f.val, what+": description")
			}
			if f, ok := fs["strategy"]; ok {
				if v, ok := d.str(f.val, what+": strategy"); ok {
					if !contains(strategies, v) {
						d.errf(resolve(f.val), "%s: unknown strategy %q%s (strategies: %s)", what, v, didYouMean(v, strategies), strings.Join(strategies, ", "))
					}
					t.Strategy = Strategy(v)
				}
			}
			if f, ok := fs["capacity"]; ok {
				if v, ok := d.integer(f.val, what+": capacity"); ok {
					if v < 0 {
						d.errf(resolve(f.val), "%s: capacity cannot be negative", what)
					}
					t.Capacity = v
				}
			}
			if f, ok := fs["members"]; ok {
				for _, m := range d.seq(f.val, what+": members") {
					if m.Kind == yaml.ScalarNode {
						if id, ok := d.str(m, what+": member"); ok {
							raw.members = append(raw.members, memberRef{id, m})
						}
						continue
					}
					if a := b.agent(d, m, "", m, true); a != nil {
						raw.members = append(raw.members, memberRef{a.ID, m})
					}
				}
			} else {
				d.errf(p.key, "%s has no members", what)
			}
			if f, ok := fs["eligible"]; ok {
				if src, ok := d.str(f.val, what+": eligible"); ok {
					raw.eligible = &exprSrc{src, resolve(f.val), d.f}
				}
			}
			loc := b.loc
			if f, ok := fs["timezone"]; ok {
				if tz, ok := d.str(f.val, what+": timezone"); ok {
					l, err := time.LoadLocation(tz)
					if err != nil {
						d.errf(resolve(f.val), "%s: unknown time zone %q (want an IANA name such as Asia/Ho_Chi_Minh)", what, tz)
					} else {
						loc = l
					}
				}
			}
			if f, ok := fs["hours"]; ok {
				if spec, ok := d.str(f.val, what+": hours"); ok {
					h, err := ParseHours(spec, loc)
					if err != nil {
						d.errf(resolve(f.val), "%s: hours: %v", what, err)
					} else {
						t.Hours = h
					}
				}
			}
			if f, ok := fs["holidays"]; ok {
				dates := b.holidays(d, f.val, what)
				if t.Hours == nil {
					d.errf(f.key, "%s: holidays need hours (a team with no hours is always open)", what)
				} else if dates != nil {
					t.Hours = t.Hours.withHolidays(dates)
				}
			}
			if f, ok := fs["sla"]; ok {
				t.SLA = b.sla(d, f.val, what)
			}
			if f, ok := fs["escalate_to"]; ok {
				raw.escalate = resolve(f.val)
				t.EscalateTo, _ = d.str(f.val, what+": escalate_to")
			}
			if f, ok := fs["supervisor"]; ok {
				raw.superv = resolve(f.val)
				t.Supervisor, _ = d.str(f.val, what+": supervisor")
			}
			b.c.hours[name] = t.Hours
		}
	}
}

// holidays reads a list of dates and date ranges, or the name of a file
// (relative to the rules directory) holding one a line.
func (b *builder) holidays(d *decoder, n *yaml.Node, what string) map[int]bool {
	n = resolve(n)
	set := map[int]bool{}
	if n.Kind == yaml.ScalarNode {
		name, ok := d.str(n, what+": holidays")
		if !ok {
			return nil
		}
		path := filepath.Join(b.dir, filepath.FromSlash(name))
		data, err := os.ReadFile(path)
		if err != nil {
			d.errf(n, "%s: holidays file: %v", what, err)
			return nil
		}
		f := &srcFile{path: path, rel: filepath.ToSlash(name), data: data}
		if !slices.ContainsFunc(b.extra, func(x *srcFile) bool { return x.path == path }) {
			b.extra = append(b.extra, f)
		}
		for _, le := range parseHolidayFile(data, set) {
			b.probs = append(b.probs, Problem{File: path, Line: le.line, Col: 1, Msg: le.err.Error()})
		}
		return set
	}
	for _, it := range d.seq(n, what+": holidays") {
		if s, ok := d.str(it, what+": holiday"); ok {
			if err := parseHoliday(s, set); err != nil {
				d.errf(it, "%s: %v", what, err)
			}
		}
	}
	return set
}

func (b *builder) sla(d *decoder, n *yaml.Node, what string) SLA {
	var s SLA
	what += ": sla"
	fs, ok := d.fields(n, what, "first_response", "next_response", "priority")
	if !ok {
		return s
	}
	if f, ok := fs["first_response"]; ok {
		s.FirstResponse, _ = d.duration(f.val, what+": first_response")
	}
	if f, ok := fs["next_response"]; ok {
		s.NextResponse, _ = d.duration(f.val, what+": next_response")
	}
	if f, ok := fs["priority"]; ok {
		s.ByPriority = map[string]SLATimes{}
		for _, p := range d.pairs(f.val, what+": priority") {
			pr := p.key.Value
			if !contains(Priorities, pr) {
				d.errf(p.key, "%s: unknown priority %q%s (priorities: %s)", what, pr, didYouMean(pr, Priorities), strings.Join(Priorities, ", "))
				continue
			}
			pw := fmt.Sprintf("%s: priority %s", what, pr)
			pfs, ok := d.fields(p.val, pw, "first_response", "next_response")
			if !ok {
				continue
			}
			var t SLATimes
			if f, ok := pfs["first_response"]; ok {
				t.FirstResponse, _ = d.duration(f.val, pw+": first_response")
			}
			if f, ok := pfs["next_response"]; ok {
				t.NextResponse, _ = d.duration(f.val, pw+": next_response")
			}
			s.ByPriority[pr] = t
		}
	}
	return s
}

// teamsLate resolves the references between teams and agents, and compiles
// the eligible conditions (which may use conditions).
func (b *builder) teamsLate() {
	agentIDs := make([]string, 0, len(b.agents))
	for id := range b.agents {
		agentIDs = append(agentIDs, id)
	}
	sort.Strings(agentIDs)
	for _, name := range b.teamOrder {
		t, raw := b.teams[name], b.teamRaw[name]
		d := raw.d
		what := fmt.Sprintf("team %q", name)
		seen := map[string]bool{}
		for _, m := range raw.members {
			a, ok := b.agents[m.id]
			if !ok {
				d.errf(m.node, "%s: unknown agent %q%s", what, m.id, didYouMean(m.id, agentIDs))
				continue
			}
			if seen[m.id] {
				d.errf(m.node, "%s: agent %q is listed twice", what, m.id)
				continue
			}
			seen[m.id] = true
			t.Members = append(t.Members, *a)
			if t.Strategy == Capacity && t.CapacityOf(*a) == 0 {
				d.errf(m.node, "%s: strategy capacity needs a capacity for agent %q (set capacity on the team or the agent)", what, m.id)
			}
		}
		if t.EscalateTo != "" {
			if t.EscalateTo == name {
				d.errf(raw.escalate, "%s: escalate_to names the team itself", what)
			} else if _, ok := b.teams[t.EscalateTo]; !ok {
				d.errf(raw.escalate, "%s: escalate_to: unknown team %q%s", what, t.EscalateTo, didYouMean(t.EscalateTo, b.teamOrder))
			}
		}
		if t.Supervisor != "" {
			if _, ok := b.agents[t.Supervisor]; !ok {
				d.errf(raw.superv, "%s: supervisor: unknown agent %q%s", what, t.Supervisor, didYouMean(t.Supervisor, agentIDs))
			}
		}
		if raw.eligible != nil {
			t.eligible = b.c.compile(*raw.eligible, what+": eligible", kindBool, phaseLate, true)
		}
	}
	// Escalation must end somewhere: a cycle would pass a late conversation
	// around for ever.
	for _, name := range b.teamOrder {
		seen := []string{name}
		for cur := b.teams[name].EscalateTo; cur != ""; {
			t, ok := b.teams[cur]
			if !ok {
				break
			}
			if contains(seen, cur) {
				if cur == name && len(seen) > 1 {
					raw := b.teamRaw[name]
					raw.d.errf(raw.escalate, "team %q: escalation goes round in a circle: %s → %s", name, strings.Join(seen, " → "), cur)
				}
				break
			}
			seen = append(seen, cur)
			cur = t.EscalateTo
		}
	}
}

var reCondName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (b *builder) conditions() {
	reserved := reservedNames()
	var defs []*condDef
	for _, s := range b.sections["conditions"] {
		d := s.d
		for _, p := range d.pairs(s.val, "conditions") {
			name := p.key.Value
			switch {
			case !reCondName.MatchString(name):
				d.errf(p.key, "condition name %q: use letters, digits and _ (it is used as a name in expressions)", name)
				continue
			case contains(reserved, name):
				d.errf(p.key, "condition name %q is taken by the expression language (a field, function or keyword)", name)
				continue
			}
			if prev, dup := b.c.conds[name]; dup {
				d.errf(p.key, "condition %q is already defined at %s:%d", name, prev.e.f.path, prev.e.node.Line)
				continue
			}
			src, ok := d.str(p.val, fmt.Sprintf("condition %q", name))
			if !ok {
				continue
			}
			cd := &condDef{name: name, e: exprSrc{src, resolve(p.val), d.f}, slot: -1}
			b.c.conds[name] = cd
			defs = append(defs, cd)
		}
	}
	for _, cd := range defs {
		before := len(b.probs)
		cd.prog = b.c.compileWith(cd.e, fmt.Sprintf("condition %q", cd.name), kindBool, phaseLate, false, cd)
		cd.bad = len(b.probs) > before
		if !cd.bad && cd.prog.uses&allUses == 0 && len(b.rs.conds) < condSlots {
			cd.slot = len(b.rs.conds)
			b.rs.conds = append(b.rs.conds, condition{name: cd.name, file: cd.e.f.rel, line: cd.e.node.Line, prog: cd.prog})
		}
	}
}

// expr reads an expression field.
func (b *builder) expr(d *decoder, f field, what string) *exprSrc {
	src, ok := d.str(f.val, what)
	if !ok {
		return nil
	}
	return &exprSrc{src, resolve(f.val), d.f}
}

var scoreFields = []string{"name", "description", "when", "add", "subtract", "set"}

func (b *builder) scoring() {
	var tiers []section
	for _, s := range b.sections["scoring"] {
		d := s.d
		fs, ok := d.fields(s.val, "scoring", "rules", "tiers")
		if !ok {
			continue
		}
		if f, ok := fs["tiers"]; ok {
			tiers = append(tiers, section{d, f.key, f.val})
		}
		f, ok := fs["rules"]
		if !ok {
			continue
		}
		for i, item := range d.seq(f.val, "scoring: rules") {
			b.scoreRule(d, item, i)
		}
	}
	for i, s := range tiers {
		if i > 0 {
			s.d.errf(s.key, "tiers are already defined at %s:%d (define them once)", tiers[0].d.f.path, tiers[0].key.Line)
			continue
		}
		b.tiers(s.d, s.val)
	}
}

func (b *builder) scoreRule(d *decoder, item *yaml.Node, i int) {
	fs, ok := d.fields(item, label(item, "scoring rule", i), scoreFields...)
	if !ok {
		return
	}
	name, ok := b.ruleName(d, item, fs, "scoring rule", i)
	if !ok {
		return
	}
	what := fmt.Sprintf("scoring rule %q", name)
	r := scoreRule{name: name, file: d.f.rel, line: item.Line}
	if f, ok := fs["when"]; ok {
		if e := b.expr(d, f, what+": when"); e != nil {
			r.when = b.c.compile(*e, what+": when", kindBool, phaseScoring, false)
		}
	} else {
		d.errf(item, "%s has no when (the condition under which it applies)", what)
	}
	var effects []string
	for _, op := range []string{"add", "subtract", "set"} {
		f, ok := fs[op]
		if !ok {
			continue
		}
		effects = append(effects, op)
		r.op = op
		v := resolve(f.val)
		if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
			n, _ := d.integer(v, what+": "+op)
			switch {
			case op == "set" && (n < 0 || n > 100):
				d.errf(v, "%s: set %d is outside 0..100", what, n)
			case op != "set" && n < 0:
				d.errf(v, "%s: %s takes a positive number (use %s to go the other way)", what, op, map[string]string{"add": "subtract", "subtract": "add"}[op])
			}
			r.n = n
			r.detail = fmt.Sprintf("%s %d", op, n)
		} else if e := b.expr(d, f, what+": "+op); e != nil {
			r.amount = b.c.compile(*e, what+": "+op, kindInt, phaseScoring, false)
			r.detail = fmt.Sprintf("%s %s", op, oneLine(e.src))
		}
	}
	if len(effects) != 1 {
		d.errf(item, "%s needs exactly one of add, subtract or set (it has %d)", what, len(effects))
	}
	if r.when != nil && len(effects) == 1 && (r.amount != nil || r.detail != "") {
		b.rs.scoring = append(b.rs.scoring, r)
	}
}

var reThreshold = regexp.MustCompile(`^\s*score\s*(>=|>)\s*(\d+)\s*$`)

func (b *builder) tiers(d *decoder, n *yaml.Node) {
	type seenTier struct {
		name string
		min  int
	}
	var prev []seenTier
	for _, p := range d.pairs(n, "tiers") {
		name := p.key.Value
		if !b.registerName(d, p.key, name, "tier") {
			continue
		}
		t := tierDef{name: name, file: d.f.rel, line: p.key.Line, min: -1}
		v := resolve(p.val)
		what := fmt.Sprintf("tier %q", name)
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!int":
			t.min, _ = d.integer(v, what)
			t.detail = fmt.Sprintf("score >= %d", t.min)
		case v.Kind == yaml.ScalarNode && v.Tag == "!!bool" && v.Value == "true":
			t.min = 0
			t.detail = "always"
		default:
			src, ok := d.str(v, what)
			if !ok {
				continue
			}
			if m := reThreshold.FindStringSubmatch(src); m != nil {
				fmt.Sscan(m[2], &t.min)
				if m[1] == ">" {
					t.min++
				}
				t.detail = oneLine(src)
			} else {
				t.when = b.c.compile(exprSrc{src, v, d.f}, what, kindBool, phaseTiers, false)
				if t.when == nil {
					continue
				}
				t.detail = oneLine(src)
			}
		}
		if t.min > 100 {
			d.errf(v, "%s: a score never reaches %d (scores are 0..100)", what, t.min)
		}
		if t.min >= 0 {
			for _, q := range prev {
				if q.min >= 0 && q.min <= t.min {
					d.errf(v, "%s (score >= %d) is never reached: %q (score >= %d) comes first and takes every such score; list tiers from the highest threshold down", what, t.min, q.name, q.min)
					break
				}
			}
		}
		t.effect = "tier " + name
		prev = append(prev, seenTier{name, t.min})
		b.rs.tiers = append(b.rs.tiers, t)
	}
}

var routeFields = []string{"name", "description", "when", "team", "priority", "continue"}

func (b *builder) routing() {
	type where struct {
		d    *decoder
		item *yaml.Node
	}
	var at []where
	for _, s := range b.sections["routing"] {
		d := s.d
		for i, item := range d.seq(s.val, "routing") {
			fs, ok := d.fields(item, label(item, "route", i), routeFields...)
			if !ok {
				continue
			}
			name, ok := b.ruleName(d, item, fs, "route", i)
			if !ok {
				continue
			}
			what := fmt.Sprintf("route %q", name)
			r := route{name: name, file: d.f.rel, line: item.Line}
			good := true
			if f, ok := fs["when"]; ok {
				if e := b.expr(d, f, what+": when"); e != nil {
					if strings.TrimSpace(e.src) != "true" {
						r.when = b.c.compile(*e, what+": when", kindBool, phaseRouting, false)
						good = r.when != nil
					}
				} else {
					good = false
				}
			}
			if f, ok := fs["team"]; ok {
				if r.team, ok = d.str(f.val, what+": team"); ok {
					if _, known := b.teams[r.team]; !known {
						d.errf(resolve(f.val), "%s: unknown team %q%s", what, r.team, didYouMean(r.team, b.teamOrder))
					}
				}
			}
			if f, ok := fs["priority"]; ok {
				if r.priority, ok = d.str(f.val, what+": priority"); ok && !contains(Priorities, r.priority) {
					d.errf(resolve(f.val), "%s: unknown priority %q%s (priorities: %s)", what, r.priority, didYouMean(r.priority, Priorities), strings.Join(Priorities, ", "))
				}
			}
			if f, ok := fs["continue"]; ok {
				r.cont, _ = d.boolean(f.val, what+": continue")
			}
			if !r.cont && r.team == "" {
				d.errf(item, "%s names no team (only a route with continue: true may leave the team to the routes after it)", what)
			}
			var parts []string
			if r.team != "" {
				parts = append(parts, "team "+r.team)
			}
			if r.priority != "" {
				parts = append(parts, "priority "+r.priority)
			}
			if r.cont {
				parts = append(parts, "continue")
			}
			r.detail = strings.Join(parts, ", ")
			if good {
				b.rs.routes = append(b.rs.routes, r)
				at = append(at, where{d, item})
			}
		}
	}
	if len(b.sections["routing"]) == 0 && !b.unreadable {
		b.probs = append(b.probs, Problem{File: b.dir, Line: 1, Col: 1, Msg: "no routing section: every conversation needs a team; add routing with a catch-all route last"})
		return
	}
	for i, r := range b.rs.routes {
		catchAll := r.when == nil && !r.cont
		if catchAll && i < len(b.rs.routes)-1 {
			next := at[i+1]
			next.d.errf(next.item, "route %q is never reached: route %q (%s:%d) above it matches everything", b.rs.routes[i+1].name, r.name, at[i].d.f.path, at[i].item.Line)
			break
		}
		if i == len(b.rs.routes)-1 && !catchAll {
			at[i].d.errf(at[i].item, "the last route, %q, must be a catch-all (no when, no continue) so that every conversation gets a team; add one such as\n  - name: everything else\n    team: %s", r.name, firstOr(b.teamOrder, "sales"))
		}
	}
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

var handoffFields = []string{"name", "description", "when", "team", "priority", "reason", "pause_bot", "immediate", "notify", "message", "out_of_hours_message"}
var releaseFields = []string{"name", "description", "when", "message", "notify"}

func (b *builder) handoff() {
	for _, s := range b.sections["handoff"] {
		d := s.d
		fs, ok := d.fields(s.val, "handoff", "rules", "release")
		if !ok {
			continue
		}
		if f, ok := fs["rules"]; ok {
			for i, item := range d.seq(f.val, "handoff: rules") {
				b.handoffRule(d, item, i)
			}
		}
		if f, ok := fs["release"]; ok {
			for i, item := range d.seq(f.val, "handoff: release") {
				b.releaseRule(d, item, i)
			}
		}
	}
}

func (b *builder) handoffRule(d *decoder, item *yaml.Node, i int) {
	fs, ok := d.fields(item, label(item, "handoff rule", i), handoffFields...)
	if !ok {
		return
	}
	name, ok := b.ruleName(d, item, fs, "handoff rule", i)
	if !ok {
		return
	}
	what := fmt.Sprintf("handoff rule %q", name)
	h := handoffRule{name: name, file: d.f.rel, line: item.Line, pauseBot: true, reason: name}
	if f, ok := fs["when"]; ok {
		if e := b.expr(d, f, what+": when"); e != nil {
			h.when = b.c.compile(*e, what+": when", kindBool, phaseLate, false)
		}
	} else {
		d.errf(item, "%s has no when", what)
	}
	if f, ok := fs["team"]; ok {
		if h.team, ok = d.str(f.val, what+": team"); ok {
			if _, known := b.teams[h.team]; !known {
				d.errf(resolve(f.val), "%s: unknown team %q%s", what, h.team, didYouMean(h.team, b.teamOrder))
			}
		}
	}
	if f, ok := fs["priority"]; ok {
		if h.priority, ok = d.str(f.val, what+": priority"); ok && !contains(Priorities, h.priority) {
			d.errf(resolve(f.val), "%s: unknown priority %q%s", what, h.priority, didYouMean(h.priority, Priorities))
		}
	}
	if f, ok := fs["reason"]; ok {
		h.reason, _ = d.str(f.val, what+": reason")
	}
	if f, ok := fs["pause_bot"]; ok {
		h.pauseBot, _ = d.boolean(f.val, what+": pause_bot")
	}
	if f, ok := fs["immediate"]; ok {
		h.immediate, _ = d.boolean(f.val, what+": immediate")
	}
	if f, ok := fs["notify"]; ok {
		h.notify = b.notify(d, f.val, what)
	}
	if f, ok := fs["message"]; ok {
		h.message = b.template(d, f.val, what+": message")
	}
	if f, ok := fs["out_of_hours_message"]; ok {
		h.offHours = b.template(d, f.val, what+": out_of_hours_message")
	}
	parts := []string{}
	if h.team != "" {
		parts = append(parts, "to "+h.team)
	}
	if h.immediate {
		parts = append(parts, "immediate")
	}
	if h.pauseBot {
		parts = append(parts, "pause bot")
	}
	if len(h.notify) > 0 {
		parts = append(parts, "notify "+strings.Join(h.notify, ", "))
	}
	h.detail = strings.Join(parts, ", ")
	if h.when != nil {
		b.rs.handoffs = append(b.rs.handoffs, h)
	}
}

func (b *builder) releaseRule(d *decoder, item *yaml.Node, i int) {
	fs, ok := d.fields(item, label(item, "release rule", i), releaseFields...)
	if !ok {
		return
	}
	name, ok := b.ruleName(d, item, fs, "release rule", i)
	if !ok {
		return
	}
	what := fmt.Sprintf("release rule %q", name)
	r := releaseRule{name: name, file: d.f.rel, line: item.Line}
	if f, ok := fs["when"]; ok {
		if e := b.expr(d, f, what+": when"); e != nil {
			r.when = b.c.compile(*e, what+": when", kindBool, phaseLate, false)
		}
	} else {
		d.errf(item, "%s has no when", what)
	}
	if f, ok := fs["message"]; ok {
		r.message = b.template(d, f.val, what+": message")
	}
	if f, ok := fs["notify"]; ok {
		r.notify = b.notify(d, f.val, what)
	}
	r.detail = "back to the bot"
	if len(r.notify) > 0 {
		r.detail += ", notify " + strings.Join(r.notify, ", ")
	}
	if r.when != nil {
		b.rs.releases = append(b.rs.releases, r)
	}
}

// notify validates notification targets.
func (b *builder) notify(d *decoder, n *yaml.Node, what string) []string {
	list, ok := d.strList(n, what+": notify")
	if !ok {
		return nil
	}
	for _, t := range list {
		kind, arg, hasArg := strings.Cut(t, ":")
		switch {
		case !hasArg && contains(notifyTargets, t):
		case hasArg && kind == "team":
			if _, ok := b.teams[arg]; !ok {
				d.errf(resolve(n), "%s: notify %q: unknown team %q%s", what, t, arg, didYouMean(arg, b.teamOrder))
			}
		case hasArg && kind == "agent":
			if _, ok := b.agents[arg]; !ok {
				d.errf(resolve(n), "%s: notify %q: unknown agent %q", what, t, arg)
			}
		default:
			d.errf(resolve(n), "%s: unknown notify target %q%s (targets: %s, team:NAME, agent:ID)", what, t, didYouMean(t, notifyTargets), strings.Join(notifyTargets, ", "))
		}
	}
	return list
}

var rePlaceholder = regexp.MustCompile(`\{([^{}]*)\}`)

// placeholders a customer message may use.
var placeholders = []string{"name", "team", "next_open", "next_open_time", "next_open_date", "next_open_day", "next_open_day_en"}

func (b *builder) template(d *decoder, n *yaml.Node, what string) string {
	s, ok := d.str(n, what)
	if !ok {
		return ""
	}
	for _, m := range rePlaceholder.FindAllStringSubmatch(s, -1) {
		if !contains(placeholders, m[1]) {
			d.errf(resolve(n), "%s: unknown placeholder {%s}%s (placeholders: {%s})", what, m[1], didYouMean(m[1], placeholders), strings.Join(placeholders, "}, {"))
		}
	}
	return s
}

var followupFields = []string{"name", "description", "when", "after", "action", "params", "cancel_when"}

func (b *builder) followups() {
	for _, s := range b.sections["followups"] {
		d := s.d
		for i, item := range d.seq(s.val, "followups") {
			fs, ok := d.fields(item, label(item, "followup", i), followupFields...)
			if !ok {
				continue
			}
			name, ok := b.ruleName(d, item, fs, "followup", i)
			if !ok {
				continue
			}
			what := fmt.Sprintf("followup %q", name)
			r := followupRule{name: name, file: d.f.rel, line: item.Line}
			good := true
			if f, ok := fs["when"]; ok {
				if e := b.expr(d, f, what+": when"); e != nil {
					r.when = b.c.compile(*e, what+": when", kindBool, phaseLate, false)
				}
			} else {
				d.errf(item, "%s has no when", what)
			}
			if f, ok := fs["after"]; ok {
				r.after, good = d.duration(f.val, what+": after")
			} else {
				d.errf(item, "%s has no after (how long after the message it is due)", what)
			}
			if f, ok := fs["action"]; ok {
				if r.action, ok = d.str(f.val, what+": action"); ok && !contains(followupActions, r.action) {
					d.errf(resolve(f.val), "%s: unknown action %q%s (actions: %s)", what, r.action, didYouMean(r.action, followupActions), strings.Join(followupActions, ", "))
				}
			} else {
				d.errf(item, "%s has no action (%s)", what, strings.Join(followupActions, ", "))
			}
			if f, ok := fs["params"]; ok {
				r.params = map[string]string{}
				for _, p := range d.pairs(f.val, what+": params") {
					if v, ok := d.str(p.val, fmt.Sprintf("%s: param %q", what, p.key.Value)); ok {
						r.params[p.key.Value] = v
					}
				}
			}
			if f, ok := fs["cancel_when"]; ok {
				if e := b.expr(d, f, what+": cancel_when"); e != nil {
					r.cancel = b.c.compile(*e, what+": cancel_when", kindBool, phaseLate, false)
					good = good && r.cancel != nil
				}
			}
			r.detail = fmt.Sprintf("%s in %s", r.action, shortDuration(r.after))
			if good && r.when != nil {
				b.rs.followups = append(b.rs.followups, r)
			}
		}
	}
}

// contentHash hashes the files of a rule set: their names (relative to the
// rules directory) and contents. The version of a loaded set and the
// engine's view of the files on disk are the same hash, so the engine can
// tell whether the files still are what is running.
type contentHash struct{ h hash.Hash }

func newContentHash() contentHash { return contentHash{sha256.New()} }

func (c contentHash) add(rel string, data []byte, err error) {
	fmt.Fprintf(c.h, "%s\x00%d\x00", rel, len(data))
	if err != nil {
		fmt.Fprintf(c.h, "error %v\x00", err)
	}
	c.h.Write(data)
}

func (c contentHash) sum() string { return hex.EncodeToString(c.h.Sum(nil))[:16] }
