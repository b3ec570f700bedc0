package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadProblems loads a broken rule set and returns its problems, one string
// each (file:line:col: message).
func loadProblems(t *testing.T, dir string) []string {
	t.Helper()
	_, err := LoadDir(dir)
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("LoadDir(%s): want a *LoadError, got %v", dir, err)
	}
	out := make([]string, len(le.Problems))
	for i, p := range le.Problems {
		out[i] = p.String()
	}
	return out
}

func TestLoadBroken(t *testing.T) {
	// Each want is a problem that must be reported: its file:line:col
	// prefix and a part of its message.
	type want struct{ at, msg string }
	cases := []struct {
		dir   string
		wants []want
	}{
		{"typo", []want{
			{"rules.yaml:7:18", `scoring rule "budget known": when: lead has no field budgt; did you mean lead.budget?`},
			{"rules.yaml:7:18", `(in "lead.budgt != \"\"", which must give true or false)`},
		}},
		{"unknown-key", []want{
			{"rules.yaml:4:5", `unknown field "stratgy" in team "sales"; did you mean strategy?`},
			{"rules.yaml:8:7", `unknown field "wehn" in scoring rule "decision maker"; did you mean when?`},
			{"rules.yaml:10:1", `unknown section "routng"; did you mean routing?`},
		}},
		{"duplicates", []want{
			{"20-b.yaml:8:13", `scoring rule "decision maker": the name is already used by scoring rule "decision maker" at testdata/broken/duplicates/10-a.yaml:6`},
			{"20-b.yaml:16:11", `route "decision maker": the name is already used by scoring rule "decision maker" at`},
			{"20-b.yaml:2:3", `team "sales" is already defined at testdata/broken/duplicates/10-a.yaml:2`},
			{"20-b.yaml:11:3", `tiers are already defined at testdata/broken/duplicates/10-a.yaml:9`},
			{"20-b.yaml:14:3", `condition "urgent" is already defined`},
			{"10-a.yaml:3:20", `agent "an" is already defined at testdata/broken/duplicates/20-b.yaml:5`},
		}},
		{"routing", []want{
			{"rules.yaml:7:11", `route "complaints": unknown team "suport"`},
			{"rules.yaml:8:15", `unknown priority "hihg"; did you mean high?`},
			{"rules.yaml:9:5", `route "no team" names no team`},
			{"rules.yaml:13:5", `route "never reached" is never reached: route "catch everything"`},
		}},
		{"no-catch-all", []want{
			{"rules.yaml:5:5", `the last route, "hot only", must be a catch-all`},
		}},
		{"teams", []want{
			{"rules.yaml:2:28", `agent "an": capacity cannot be negative`},
			{"rules.yaml:6:15", `strategy capacity needs a capacity for agent "an"`},
			{"rules.yaml:6:19", `team "sales": unknown agent "ghost"`},
			{"rules.yaml:6:26", `agent "an" is listed twice`},
			{"rules.yaml:7:18", `escalate_to: unknown team "leads"`},
			{"rules.yaml:8:17", `supervisor: unknown agent "nobody"`},
			{"rules.yaml:10:15", `unknown time zone "Asia/Hanoi_City"`},
			{"rules.yaml:12:23", `first_response: "5 minutes" is not a positive duration`},
			{"rules.yaml:14:9", `unknown priority "critical"`},
			{"rules.yaml:16:15", `unknown strategy "lottery"`},
			{"rules.yaml:18:12", `hours: unknown day "fry"`},
			{"rules.yaml:19:18", `escalate_to names the team itself`},
			{"rules.yaml:22:18", `escalation goes round in a circle: a → b → a`},
			{"rules.yaml:26:3", `team "nobody-home" has no members`},
			{"rules.yaml:27:5", `holidays need hours`},
			{"rules.yaml:27:16", `"2025-13-01" is not a date`},
		}},
		{"scoring", []want{
			{"rules.yaml:6:7", `scoring rule "two effects" needs exactly one of add, subtract or set (it has 2)`},
			{"rules.yaml:10:7", `"no effect" needs exactly one of add, subtract or set (it has 0)`},
			{"rules.yaml:14:12", `set 150 is outside 0..100`},
			{"rules.yaml:17:12", `add takes a positive number (use subtract`},
			{"rules.yaml:19:13", `score is not known yet in scoring rules`},
			{"rules.yaml:22:13", `when: it gives string (in "lead.need", which must give true or false)`},
			{"rules.yaml:24:7", `scoring rule #7 has no name`},
			{"rules.yaml:28:10", `tier "hot" (score >= 70) is never reached: "warm" (score >= 40) comes first`},
			{"rules.yaml:29:10", `tier "top": a score never reaches 120`},
		}},
		{"phases", []want{
			{"rules.yaml:6:10", `tier "hot": tier is not known yet in tiers`},
			{"rules.yaml:9:11", `route "by team": when: team is not known yet in routing`},
		}},
		{"handoff", []want{
			{"rules.yaml:7:13", `unknown name asks_for_human`},
			{"rules.yaml:8:15", `notify "team:salse": unknown team "salse"; did you mean sales?`},
			{"rules.yaml:8:15", `notify "agent:ghost": unknown agent "ghost"`},
			{"rules.yaml:8:15", `unknown notify target "boss"`},
			{"rules.yaml:9:16", `unknown placeholder {next_opne}; did you mean next_open?`},
			{"rules.yaml:10:13", `handoff rule "human": unknown team "marketing"`},
			{"rules.yaml:11:18", `pause_bot must be true or false, not the value "yes"`},
			{"rules.yaml:13:7", `release rule "back" has no when`},
			{"rules.yaml:18:12", `followup "call": after: "soon" is not a positive duration`},
			{"rules.yaml:19:13", `unknown action "telephone"`},
			{"rules.yaml:24:18", `cancel_when: it gives string`},
		}},
		{"conditions", []want{
			{"rules.yaml:5:6", `condition "a": condition refers to itself: a → b → a`},
			{"rules.yaml:7:3", `condition name "score" is taken by the expression language`},
			{"rules.yaml:9:18", `condition "broken": invalid operation: == (mismatched types string and int)`},
			{"rules.yaml:10:3", `condition name "bad name"`},
			{"rules.yaml:17:39", `workingHours: "Mon-Fri 25:00-26:00" is neither a team nor an hours spec`},
			{"rules.yaml:23:39", `containsWord: "!!" would match every text`},
		}},
		{"yaml-syntax", []want{
			{"rules.yaml:4:1", `not valid YAML`},
		}},
		{"sections", []want{
			{"rules.yaml:1:1", `unknown section "scorring"; did you mean scoring?`},
			{"rules.yaml:4:3", `handoff must be a mapping`},
		}},
		{"holidays-file", []want{
			{"rules.yaml:5:15", `holidays file: open testdata/broken/holidays-file/missing.txt`},
			{"bad.txt:3:1", `"2025-02-30" is not a date`},
			{"bad.txt:4:1", `the range must go forward`},
		}},
		{"too-big", []want{
			{"rules.yaml:10:", `expression exceeds maximum allowed nodes`},
		}},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", "broken", c.dir)
			got := loadProblems(t, dir)
			for _, w := range c.wants {
				prefix := filepath.Join(dir, w.at)
				found := false
				for _, g := range got {
					if strings.HasPrefix(g, prefix) && strings.Contains(g, w.msg) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("no problem %s: ...%s...\ngot:\n%s", prefix, w.msg, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func TestLoadErrorsAreSortedAndOnePerLine(t *testing.T) {
	_, err := LoadDir("testdata/broken/teams")
	lines := strings.Split(err.Error(), "\n")
	var le *LoadError
	errors.As(err, &le)
	if len(lines) != len(le.Problems) {
		t.Fatalf("%d lines for %d problems", len(lines), len(le.Problems))
	}
	for i := 1; i < len(le.Problems); i++ {
		a, b := le.Problems[i-1], le.Problems[i]
		if a.File == b.File && (a.Line > b.Line || a.Line == b.Line && a.Col > b.Col) {
			t.Errorf("not sorted: %s before %s", a, b)
		}
	}
	if le.Dir != "testdata/broken/teams" {
		t.Errorf("Dir = %q", le.Dir)
	}
}

func TestLoadDirEdgeCases(t *testing.T) {
	if _, err := LoadDir("testdata/does-not-exist"); err == nil {
		t.Error("missing dir: no error")
	}
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "only_test.yaml"), []byte("tests: []\n"), 0o644)
	os.WriteFile(filepath.Join(empty, ".swap.yaml"), []byte("garbage: ["), 0o644)
	_, err := LoadDir(empty)
	if err == nil || !strings.Contains(err.Error(), "no rule files") {
		t.Errorf("dir with only tests and hidden files: got %v", err)
	}
}

func TestIsRuleFile(t *testing.T) {
	for name, want := range map[string]bool{
		"sales.yaml": true, "sales.yml": true, "10-routing.yaml": true,
		"sales_test.yaml": false, "sales_test.yml": false, ".sales.yaml": false,
		"sales.yaml~": false, "holidays.txt": false, "README.md": false,
	} {
		if got := IsRuleFile(name); got != want {
			t.Errorf("IsRuleFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// A rule set may be split across files in any way, and YAML anchors and
// several documents per file work.
func TestLoadSplitFilesAnchorsAndDocuments(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", `
teams:
  sales:
    members: [{id: an}]
---
scoring:
  rules:
    - &dm
      name: decision maker
      when: lead.decision_maker
      add: 30
`)
	write(t, dir, "b.yaml", `
routing:
  - name: everything
    team: sales
`)
	rs, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(rs.Files()); got != 2 {
		t.Errorf("Files() = %d files", got)
	}
	d, _ := rs.Evaluate(Input{Lead: Lead{DecisionMaker: true}})
	if d.Score != 30 || d.Team != "sales" {
		t.Errorf("decision = %+v", d)
	}
}

func TestVersionFollowsContent(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", minimalRules)
	a, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LoadDir(dir)
	if a.Version() != b.Version() || len(a.Version()) != 16 {
		t.Errorf("same content, versions %q and %q", a.Version(), b.Version())
	}
	write(t, dir, "a.yaml", minimalRules+"\n# a comment changes the content\n")
	c, _ := LoadDir(dir)
	if c.Version() == a.Version() {
		t.Error("changed content, same version")
	}
}

const minimalRules = `
teams:
  sales:
    members: [{id: an}]
routing:
  - name: everything
    team: sales
`

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSuggestions(t *testing.T) {
	cands := []string{"lead.budget", "lead.need", "lead.decision_maker", "message.text"}
	for in, want := range map[string]string{
		"lead.budgt":         "lead.budget",
		"lead.budgte":        "lead.budget",
		"lead.decisionMaker": "lead.decision_maker",
		"lead.nede":          "lead.need",
		"lead.completely":    "",
	} {
		if got := nearest(in, cands); got != want {
			t.Errorf("nearest(%q) = %q, want %q", in, got, want)
		}
	}
}
