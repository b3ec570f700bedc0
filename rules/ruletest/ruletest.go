package ruletest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/rules"
	"gopkg.in/yaml.v3"
)

// TestFile is one *_test.yaml file.
type TestFile struct {
	// RuleFiles limits the rule set to these files (relative to the rules
	// directory); all rule files by default.
	RuleFiles []string   `yaml:"rule_files"`
	Now       *time.Time `yaml:"now"` // the clock of every case that does not set its own
	Tests     []Case     `yaml:"tests"`
}

// Case is one test: given facts, expect results. Only the keys under expect
// are asserted.
type Case struct {
	Name   string     `yaml:"name"`
	Now    *time.Time `yaml:"now"`
	Given  Facts      `yaml:"given"`
	Expect Expect     `yaml:"expect"`
}

// Expect lists what a case asserts.
type Expect struct {
	Score      *int           `yaml:"score"`
	ScoreMin   *int           `yaml:"score_min"`
	ScoreMax   *int           `yaml:"score_max"`
	Tier       *string        `yaml:"tier"`
	Team       *string        `yaml:"team"`
	Priority   *string        `yaml:"priority"`
	Strategy   *string        `yaml:"strategy"`
	Route      *string        `yaml:"route"`
	OutOfHours *bool          `yaml:"out_of_hours"`
	Handoff    *HandoffExpect `yaml:"handoff"`
	Release    *RuleExpect    `yaml:"release"`
	Followups  *[]string      `yaml:"followups"` // exactly these, in any order
	Matched    []string       `yaml:"matched"`   // these rules (and tiers, conditions) fired, among others
	NotMatched []string       `yaml:"not_matched"`
}

// RuleExpect is `false`, `true` or the name of the rule expected to fire.
type RuleExpect struct {
	Want bool
	Rule string
}

// UnmarshalYAML reads a bool or a rule name.
func (r *RuleExpect) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want true, false or a rule name", n.Line)
	}
	if n.Tag == "!!bool" {
		return n.Decode(&r.Want)
	}
	r.Want, r.Rule = true, n.Value
	return nil
}

// HandoffExpect is `false`, `true`, a rule name, or a mapping of the
// handoff's fields.
type HandoffExpect struct {
	RuleExpect
	Team            *string   `yaml:"team"`
	Immediate       *bool     `yaml:"immediate"`
	PauseBot        *bool     `yaml:"pause_bot"`
	Notify          *[]string `yaml:"notify"`
	OutOfHours      *bool     `yaml:"out_of_hours"`
	MessageContains *string   `yaml:"message_contains"`
}

var handoffKeys = []string{"rule", "team", "immediate", "pause_bot", "notify", "out_of_hours", "message_contains"}

// UnmarshalYAML reads the short forms and the mapping.
func (h *HandoffExpect) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return h.RuleExpect.UnmarshalYAML(n)
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: handoff: want true, false, a rule name or a mapping", n.Line)
	}
	// Decoding inside a custom unmarshaler loses KnownFields; check keys here.
	for i := 0; i < len(n.Content); i += 2 {
		if k := n.Content[i].Value; !slices.Contains(handoffKeys, k) {
			return fmt.Errorf("line %d: field %s not found in handoff (fields: %s)", n.Content[i].Line, k, strings.Join(handoffKeys, ", "))
		}
	}
	var m struct {
		Rule            string    `yaml:"rule"`
		Team            *string   `yaml:"team"`
		Immediate       *bool     `yaml:"immediate"`
		PauseBot        *bool     `yaml:"pause_bot"`
		Notify          *[]string `yaml:"notify"`
		OutOfHours      *bool     `yaml:"out_of_hours"`
		MessageContains *string   `yaml:"message_contains"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	*h = HandoffExpect{RuleExpect: RuleExpect{Want: true, Rule: m.Rule}, Team: m.Team, Immediate: m.Immediate,
		PauseBot: m.PauseBot, Notify: m.Notify, OutOfHours: m.OutOfHours, MessageContains: m.MessageContains}
	return nil
}

// Options select what runs.
type Options struct {
	Run *regexp.Regexp // only cases whose name matches
}

// Result is one case's outcome.
type Result struct {
	File     string // the test file, as opened
	Line     int
	Name     string
	Failures []string
	Decision *rules.Decision
}

// Passed reports whether the case passed.
func (r *Result) Passed() bool { return len(r.Failures) == 0 }

// Report is the outcome of the test files of one rules directory.
type Report struct {
	Dir     string
	Results []Result
	Rules   []rules.RuleRef // every rule and tier of the directory's rule set
	fired   map[string]bool // "section/name" fired in some case
}

// Failed counts the failed cases.
func (r *Report) Failed() int {
	n := 0
	for i := range r.Results {
		if !r.Results[i].Passed() {
			n++
		}
	}
	return n
}

// Uncovered lists the rules no case made fire.
func (r *Report) Uncovered() []rules.RuleRef {
	var out []rules.RuleRef
	for _, ref := range r.Rules {
		if !r.fired[ref.Section+"/"+ref.Name] {
			out = append(out, ref)
		}
	}
	return out
}

// TestFiles lists the *_test.yaml files of dir.
func TestFiles(dir string) ([]string, error) {
	var out []string
	for _, pat := range []string{"*_test.yaml", "*_test.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	sort.Strings(out)
	return out, nil
}

// Run loads the rules of dir and runs every case of its test files. The
// error is for what stops the run: rules that do not load (a
// *rules.LoadError), test files that cannot be read; failed cases are in the
// report.
func Run(dir string, opt Options) (*Report, error) {
	all, err := rules.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	files, err := TestFiles(dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no test files (*_test.yaml)", dir)
	}
	rep := &Report{Dir: dir, Rules: all.Rules(), fired: map[string]bool{}}
	sets := map[string]*rules.Ruleset{"": all}
	var problems []string
	for _, path := range files {
		tf, lines, err := readTestFile(path)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		key := strings.Join(tf.RuleFiles, "\x00")
		rs, ok := sets[key]
		if !ok {
			if rs, err = rules.LoadFiles(dir, tf.RuleFiles...); err != nil {
				problems = append(problems, fmt.Sprintf("%s: rule_files: %v", path, err))
				continue
			}
			sets[key] = rs
		}
		for i := range tf.Tests {
			c := &tf.Tests[i]
			if opt.Run != nil && !opt.Run.MatchString(c.Name) {
				continue
			}
			res := Result{File: path, Line: lines[i], Name: c.Name}
			now := c.Now
			if now == nil {
				now = tf.Now
			}
			if now == nil {
				res.Failures = append(res.Failures, "no now: tests need a fixed clock; set now at the top of the file or in the case")
				rep.Results = append(rep.Results, res)
				continue
			}
			in, err := c.Given.Input(*now)
			if err != nil {
				res.Failures = append(res.Failures, "given: "+err.Error())
				rep.Results = append(rep.Results, res)
				continue
			}
			d, err := rs.Evaluate(in)
			res.Decision = d
			if err != nil {
				res.Failures = append(res.Failures, "evaluation: "+err.Error())
			}
			res.Failures = append(res.Failures, check(&c.Expect, d)...)
			for _, f := range d.Fired {
				rep.fired[f.Section+"/"+f.Rule] = true
			}
			rep.Results = append(rep.Results, res)
		}
	}
	if len(problems) > 0 {
		return rep, errors.New(strings.Join(problems, "\n"))
	}
	return rep, nil
}

// readTestFile decodes a test file strictly and finds each case's line.
func readTestFile(path string) (*TestFile, []int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var tf TestFile
	if err := decodeStrict(data, &tf); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", path, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	lines := make([]int, len(tf.Tests))
	if len(root.Content) > 0 {
		m := root.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "tests" {
				for j, item := range m.Content[i+1].Content {
					if j < len(lines) {
						lines[j] = item.Line
					}
				}
			}
		}
	}
	for i, c := range tf.Tests {
		if c.Name == "" {
			return nil, nil, fmt.Errorf("%s:%d: test #%d has no name", path, lines[i], i+1)
		}
	}
	return &tf, lines, nil
}

// check compares a decision with the expectations.
func check(e *Expect, d *rules.Decision) []string {
	var f []string
	fail := func(format string, a ...any) { f = append(f, fmt.Sprintf(format, a...)) }
	if e.Score != nil && d.Score != *e.Score {
		fail("score: got %d, want %d", d.Score, *e.Score)
	}
	if e.ScoreMin != nil && d.Score < *e.ScoreMin {
		fail("score: got %d, want at least %d", d.Score, *e.ScoreMin)
	}
	if e.ScoreMax != nil && d.Score > *e.ScoreMax {
		fail("score: got %d, want at most %d", d.Score, *e.ScoreMax)
	}
	str := func(name string, want *string, got string) {
		if want != nil && got != *want {
			fail("%s: got %q, want %q", name, got, *want)
		}
	}
	str("tier", e.Tier, d.Tier)
	str("team", e.Team, d.Team)
	str("priority", e.Priority, d.Priority)
	str("strategy", e.Strategy, string(d.Strategy))
	str("route", e.Route, d.Route)
	if e.OutOfHours != nil && d.OutOfHours != *e.OutOfHours {
		fail("out_of_hours: got %v, want %v", d.OutOfHours, *e.OutOfHours)
	}
	if h := e.Handoff; h != nil {
		switch {
		case !h.Want && d.Handoff != nil:
			fail("handoff: got %q, want none", d.Handoff.Rule)
		case h.Want && d.Handoff == nil:
			fail("handoff: got none, want %s", orElse(h.Rule, "one"))
		case h.Want:
			g := d.Handoff
			str("handoff rule", nilIfEmpty(h.Rule), g.Rule)
			str("handoff team", h.Team, g.Team)
			boolean := func(name string, want *bool, got bool) {
				if want != nil && got != *want {
					fail("%s: got %v, want %v", name, got, *want)
				}
			}
			boolean("handoff immediate", h.Immediate, g.Immediate)
			boolean("handoff pause_bot", h.PauseBot, g.PauseBot)
			boolean("handoff out_of_hours", h.OutOfHours, g.OutOfHours)
			if h.Notify != nil && !sameSet(*h.Notify, g.Notify) {
				fail("handoff notify: got %v, want %v", g.Notify, *h.Notify)
			}
			if h.MessageContains != nil && !strings.Contains(g.CustomerMessage, *h.MessageContains) {
				fail("handoff message: got %q, want it to contain %q", g.CustomerMessage, *h.MessageContains)
			}
		}
	}
	if r := e.Release; r != nil {
		switch {
		case !r.Want && d.Release != nil:
			fail("release: got %q, want none", d.Release.Rule)
		case r.Want && d.Release == nil:
			fail("release: got none, want %s", orElse(r.Rule, "one"))
		case r.Want && r.Rule != "" && d.Release.Rule != r.Rule:
			fail("release: got %q, want %q", d.Release.Rule, r.Rule)
		}
	}
	if e.Followups != nil {
		var got []string
		for _, fu := range d.Followups {
			got = append(got, fu.Name)
		}
		if !sameSet(*e.Followups, got) {
			fail("followups: got %s, want %s", list(got), list(*e.Followups))
		}
	}
	for _, name := range e.Matched {
		if !d.Matched(name) {
			fail("matched: %q did not fire", name)
		}
	}
	for _, name := range e.NotMatched {
		if d.Matched(name) {
			fail("not_matched: %q fired", name)
		}
	}
	return f
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return fmt.Sprintf("%q", s)
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// Write prints the results the way go test does: failures with their
// reasons, then a summary line (ok or FAIL). verbose also prints passes.
func (r *Report) Write(w io.Writer, verbose bool) {
	for i := range r.Results {
		res := &r.Results[i]
		where := fmt.Sprintf("%s:%d", res.File, res.Line)
		if verbose {
			fmt.Fprintf(w, "=== RUN   %s\n", res.Name)
		}
		if res.Passed() {
			if verbose {
				fmt.Fprintf(w, "--- PASS: %s (%s)\n", res.Name, where)
			}
			continue
		}
		fmt.Fprintf(w, "--- FAIL: %s (%s)\n", res.Name, where)
		for _, f := range res.Failures {
			fmt.Fprintf(w, "    %s\n", f)
		}
		if d := res.Decision; d != nil {
			fmt.Fprintf(w, "    decision: %s", indent(d.Explain(), "      "))
		}
	}
	n, failed := len(r.Results), r.Failed()
	if failed > 0 {
		fmt.Fprintf(w, "FAIL\t%s\t%d of %d cases failed\n", r.Dir, failed, n)
	} else {
		fmt.Fprintf(w, "ok  \t%s\t%d cases passed\n", r.Dir, n)
	}
}

// WriteCoverage prints the rules no case made fire.
func (r *Report) WriteCoverage(w io.Writer) {
	un := r.Uncovered()
	fmt.Fprintf(w, "coverage: %d of %d rules fired in some case\n", len(r.Rules)-len(un), len(r.Rules))
	for _, ref := range un {
		fmt.Fprintf(w, "  not exercised: %s %q (%s:%d)\n", ref.Section, ref.Name, filepath.Join(r.Dir, ref.File), ref.Line)
	}
}

func indent(s, pad string) string {
	s = strings.TrimRight(s, "\n")
	return strings.ReplaceAll(s, "\n", "\n"+pad) + "\n"
}
