package rulescli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	typoDir := t.TempDir()
	os.WriteFile(filepath.Join(typoDir, "rules.yaml"), []byte(`teams:
  sales:
    members: [{id: an}]
scoring:
  rules:
    - name: budget known
      when: lead.budgt != ""
      add: 20
routing:
  - name: everything
    team: sales
`), 0o644)
	cases := []struct {
		name      string
		args      []string
		code      int
		stdout    []string
		stderr    []string
		notStdout []string
	}{
		{"check ok", []string{"check", "../../examples/rules"}, 0,
			[]string{"../../examples/rules: ok (7 files, 15 scoring rules, 3 tiers, 5 routes, 3 handoff rules, 2 release rules, 3 followups, 3 teams; version "}, nil, nil},
		{"check typo", []string{"check", typoDir}, 1, nil,
			[]string{filepath.Join(typoDir, "rules.yaml") + `:7:18: scoring rule "budget known": when: lead has no field budgt; did you mean lead.budget?`, "1 problem\n"}, nil},
		{"check several dirs, one broken", []string{"check", "../../examples/rules", "../testdata/broken/routing"}, 1,
			[]string{"examples/rules: ok"}, []string{`unknown priority "hihg"; did you mean high?`, "4 problems"}, nil},
		{"check no dir", []string{"check"}, 2, nil, []string{"name a rules directory"}, nil},
		{"test ok", []string{"test", "../../examples/rules"}, 0, []string{"ok  \t../../examples/rules\t51 cases passed"}, nil, []string{"--- PASS"}},
		{"test verbose and run", []string{"test", "-v", "--run", "complaint", "../../examples/rules"}, 0,
			[]string{"=== RUN   complaints go to support with high priority whatever the score", "--- PASS: a cold complaint goes to support"}, nil, []string{"hot lead at night"}},
		{"test flags after the dir", []string{"test", "../../examples/rules", "--coverage"}, 0, []string{"coverage: 31 of 31 rules fired in some case"}, nil, nil},
		{"test failing", []string{"test", "--coverage", "../ruletest/testdata/failing"}, 1,
			[]string{"--- FAIL: everything wrong (../ruletest/testdata/failing/failing_test.yaml:6)", "    score: got 40, want 10", "FAIL\t../ruletest/testdata/failing\t6 of 7 cases failed", `not exercised: scoring "never fires"`}, nil, nil},
		{"test broken rules", []string{"test", typoDir}, 1, []string{"(rules or tests do not load)"}, []string{"did you mean lead.budget?"}, nil},
		{"test bad regex", []string{"test", "--run", "(", "../../examples/rules"}, 2, nil, []string{"--run"}, nil},
		{"test bad test file", []string{"test", "../ruletest/testdata/badtest"}, 1, nil, []string{"field scroe not found"}, nil},
		{"explain", []string{"explain", "../../examples/rules", "--facts", "../ruletest/testdata/facts.yaml"}, 0,
			[]string{"[x] applied  [~] matched but did not apply  [ ] did not match", "CONDITIONS", "  [x] asked_for_price", "SCORING", "  [x] decision maker", "  [ ] budget known", "  = score 42", "TIERS", "ROUTING",
				"  [x] everything else", "  [ ] hot leads to sales", "HANDOFF", "RELEASE", "not evaluated: the conversation is bot", "FOLLOWUPS", "DECISION",
				"score 42 (warm) → team sales (round_robin), priority normal, out of hours until Mon 09/06 08:00"}, nil, nil},
		{"explain now flag", []string{"explain", "--now", "2025-06-02T10:00:00+07:00", "--facts", "../ruletest/testdata/facts.yaml", "../../examples/rules"}, 0,
			[]string{"now    2025-06-02T10:00:00+07:00"}, nil, []string{"out of hours"}},
		{"explain missing facts", []string{"explain", "../../examples/rules"}, 2, nil, []string{"--facts FILE"}, nil},
		{"explain bad facts file", []string{"explain", "../../examples/rules", "--facts", "nope.yaml"}, 1, nil, []string{"nope.yaml"}, nil},
		{"explain broken rules", []string{"explain", typoDir, "--facts", "../ruletest/testdata/facts.yaml"}, 1, nil, []string{"did you mean lead.budget?"}, nil},
		{"unknown command", []string{"lint"}, 2, nil, []string{`unknown command "lint"`, "usage:"}, nil},
		{"no command", nil, 2, nil, []string{"usage:"}, nil},
		{"help", []string{"help"}, 0, []string{"usage: switchboard rules"}, nil, nil},
		{"bad flag", []string{"test", "--nope", "../../examples/rules"}, 2, nil, []string{"flag provided but not defined"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			for _, w := range c.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			for _, w := range c.notStdout {
				if strings.Contains(out, w) {
					t.Errorf("stdout has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestExplainJSON(t *testing.T) {
	code, out, errOut := run("explain", "../../examples/rules", "--facts", "../ruletest/testdata/facts.yaml", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var v struct {
		Decision struct {
			Score int    `json:"score"`
			Tier  string `json:"tier"`
			Fired []struct {
				Rule string `json:"rule"`
			} `json:"fired"`
		} `json:"decision"`
		Verdicts []struct {
			Section string `json:"section"`
			Rule    string `json:"rule"`
			Matched bool   `json:"matched"`
		} `json:"verdicts"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if v.Decision.Score != 42 || v.Decision.Tier != "warm" || len(v.Verdicts) < 40 || v.Decision.Fired[0].Rule != "decision maker" {
		t.Errorf("decoded %+v", v)
	}
}
