package ruletest

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDefaultRuleSetPasses(t *testing.T) {
	rep, err := Run("../../examples/rules", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Write(&out, false)
	if rep.Failed() != 0 {
		t.Fatalf("the default rule set fails its own tests:\n%s", out.String())
	}
	if len(rep.Results) < 40 {
		t.Errorf("only %d cases", len(rep.Results))
	}
	if un := rep.Uncovered(); len(un) != 0 {
		t.Errorf("default rules no case exercises: %+v", un)
	}
}

func TestPassingCases(t *testing.T) {
	rep, err := Run("testdata/mini", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Write(&out, true)
	if rep.Failed() != 0 {
		t.Fatalf("failures:\n%s", out.String())
	}
	for _, want := range []string{"=== RUN   hot decision maker asking the price", "--- PASS: hot decision maker asking the price (testdata/mini/mini_test.yaml:3)", "ok  \ttestdata/mini\t5 cases passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("verbose output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestFailuresAreReportedLikeGoTest(t *testing.T) {
	rep, err := Run("testdata/failing", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Write(&out, false)
	s := out.String()
	for _, want := range []string{
		"--- FAIL: everything wrong (testdata/failing/failing_test.yaml:6)",
		"    score: got 40, want 10",
		"    score: got 40, want at least 50",
		"    score: got 40, want at most 5",
		`    tier: got "hot", want "cold"`,
		`    team: got "sales", want "support"`,
		`    priority: got "normal", want "urgent"`,
		`    strategy: got "round_robin", want "capacity"`,
		`    route: got "rest", want "complaints"`,
		"    out_of_hours: got false, want true",
		`    handoff rule: got "hot lead", want "other"`,
		`    handoff team: got "sales", want "support"`,
		"    handoff immediate: got false, want true",
		"    handoff pause_bot: got true, want false",
		"    handoff out_of_hours: got false, want true",
		"    handoff notify: got [assignee], want [supervisor]",
		`    handoff message: got "Nhân viên sẽ gọi lúc 09:00", want it to contain "tomorrow"`,
		"    release: got none, want one",
		"    followups: got none, want [call]",
		`    matched: "never fires" did not fire`,
		`    not_matched: "decision maker" fired`,
		"    decision: score 40 (hot)",
		"--- FAIL: handoff expected, none",
		`    handoff: got none, want one`,
		`    release: got none, want "quiet agent"`,
		`--- FAIL: no handoff expected`,
		`    handoff: got "hot lead", want none`,
		`    release: got "quiet agent", want none`,
		"    no now: tests need a fixed clock",
		"    given: give one of text and message.text, not both",
		"FAIL\ttestdata/failing\t6 of 7 cases failed",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(s, "--- FAIL: passes") {
		t.Error("a passing case is reported as failing")
	}
	if t.Failed() {
		t.Log(s)
	}
}

func TestRunFilter(t *testing.T) {
	rep, err := Run("testdata/failing", Options{Run: regexp.MustCompile("^pass")})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Failed() != 0 {
		t.Errorf("results = %+v", rep.Results)
	}
}

func TestCoverage(t *testing.T) {
	rep, err := Run("testdata/mini", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rep.Uncovered() {
		names = append(names, r.Section+"/"+r.Name)
	}
	if strings.Join(names, ",") != "scoring/never fires" {
		t.Errorf("uncovered = %v, want [scoring/never fires]", names)
	}
	var out bytes.Buffer
	rep.WriteCoverage(&out)
	if !strings.Contains(out.String(), `not exercised: scoring "never fires" (testdata/mini/rules.yaml:16)`) {
		t.Errorf("coverage output:\n%s", out.String())
	}
}

func TestBadTestFiles(t *testing.T) {
	_, err := Run("testdata/badtest", Options{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"testdata/badtest/bad_test.yaml: line 5: field scroe not found", "testdata/badtest/bad2_test.yaml: line 5: field rul not found in handoff"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Run("testdata/notests", Options{}); err == nil || !strings.Contains(err.Error(), "no test files") {
		t.Errorf("no test files: %v", err)
	}
	if _, err := Run("testdata/does-not-exist", Options{}); err == nil {
		t.Error("missing directory: no error")
	}
}

func TestRuleFilesSubset(t *testing.T) {
	rep, err := Run("testdata/subset", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Write(&out, true)
	if rep.Failed() != 0 || len(rep.Results) != 2 {
		t.Fatalf("results:\n%s", out.String())
	}
}

func TestLoadFacts(t *testing.T) {
	in, err := LoadFacts("testdata/facts.yaml", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 6, 7, 14, 0, 0, 0, time.FixedZone("", 7*3600))
	if !in.Now.Equal(now) || in.Message.Text != "giá sao" || !in.Lead.DecisionMaker || in.Conversation.Turns != 2 ||
		!in.Conversation.LastAgentReply.Equal(now.Add(-3*time.Hour)) || !in.Message.Time.Equal(now) {
		t.Errorf("input = %+v", in)
	}
	if _, err := LoadFacts("testdata/mini/mini_test.yaml", time.Now()); err == nil || !strings.Contains(err.Error(), "field tests not found") {
		t.Errorf("a test file is not a facts file: %v", err)
	}
}

func TestWhen(t *testing.T) {
	now := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"-2h", now.Add(-2 * time.Hour), false},
		{"-3d", now.Add(-72 * time.Hour), false},
		{"+15m", now.Add(15 * time.Minute), false},
		{"now", now, false},
		{"2025-01-01T00:00:00Z", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"yesterday", time.Time{}, true},
	} {
		var f Facts
		err := decodeStrict([]byte("conversation: {last_agent_reply: "+c.in+"}"), &f)
		if c.bad {
			if err == nil {
				t.Errorf("%q accepted", c.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		in, _ := f.Input(now)
		if !in.Conversation.LastAgentReply.Equal(c.want) {
			t.Errorf("%q = %v, want %v", c.in, in.Conversation.LastAgentReply, c.want)
		}
	}
}
