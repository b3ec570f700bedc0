// Package rulescli implements `switchboard rules check|test|explain`. The
// switchboard binary calls Main with the arguments after "rules".
package rulescli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/rules"
	"github.com/switchboard-hub/switchboard/rules/ruletest"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitFail  = 1 // problems in the rules, failed tests
	ExitUsage = 2
)

const usage = `usage: switchboard rules <command> [flags] DIR...

commands:
  check DIR...                       load and validate the rule files of each DIR;
                                     print every problem as file:line:col: message
  test [-v] [--run REGEX] [--coverage] DIR...
                                     run the *_test.yaml cases beside the rules
  explain DIR --facts FILE [--now TIME] [--json]
                                     evaluate the facts in FILE and print every
                                     rule's verdict and the decision

Exit status: 0 when all is well, 1 on problems or failed tests, 2 on bad usage.
`

// Main runs a rules command and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	switch args[0] {
	case "check":
		return check(args[1:], stdout, stderr)
	case "test":
		return test(args[1:], stdout, stderr)
	case "explain":
		return explain(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(stderr, "switchboard rules: unknown command %q\n\n%s", args[0], usage)
	return ExitUsage
}

// parse parses flags wherever they are among the arguments
// (`test DIR --coverage` as well as `test --coverage DIR`).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("switchboard rules "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	return fs
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	dirs, err := parse(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(dirs) == 0 {
		fmt.Fprintln(stderr, "switchboard rules check: name a rules directory")
		return ExitUsage
	}
	code := ExitOK
	for _, dir := range dirs {
		rs, err := rules.LoadDir(dir)
		if err != nil {
			printLoadError(stderr, dir, err)
			code = ExitFail
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%s; version %s)\n", dir, summary(rs), rs.Version())
	}
	return code
}

func printLoadError(w io.Writer, dir string, err error) {
	var le *rules.LoadError
	if errors.As(err, &le) {
		for _, p := range le.Problems {
			fmt.Fprintln(w, p)
		}
		fmt.Fprintf(w, "%s: %d problem%s\n", dir, len(le.Problems), plural(len(le.Problems)))
		return
	}
	fmt.Fprintf(w, "%s: %v\n", dir, err)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func summary(rs *rules.Ruleset) string {
	count := map[string]int{}
	for _, r := range rs.Rules() {
		count[r.Section]++
	}
	var parts []string
	parts = append(parts, fmt.Sprintf("%d file%s", len(rs.Files()), plural(len(rs.Files()))))
	for _, s := range []struct{ key, name string }{
		{"scoring", "scoring rules"}, {"tier", "tiers"}, {"routing", "routes"},
		{"handoff", "handoff rules"}, {"release", "release rules"}, {"followup", "followups"},
	} {
		if n := count[s.key]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s.name))
		}
	}
	parts = append(parts, fmt.Sprintf("%d teams", len(rs.Teams())))
	return strings.Join(parts, ", ")
}

func test(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("test", stderr)
	verbose := fs.Bool("v", false, "print every case, not only failures")
	run := fs.String("run", "", "run only the cases whose name matches this regular expression")
	coverage := fs.Bool("coverage", false, "list the rules no case made fire")
	dirs, err := parse(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(dirs) == 0 {
		fmt.Fprintln(stderr, "switchboard rules test: name a rules directory")
		return ExitUsage
	}
	var opt ruletest.Options
	if *run != "" {
		if opt.Run, err = regexp.Compile(*run); err != nil {
			fmt.Fprintf(stderr, "switchboard rules test: --run: %v\n", err)
			return ExitUsage
		}
	}
	code := ExitOK
	for _, dir := range dirs {
		rep, err := ruletest.Run(dir, opt)
		if err != nil {
			code = ExitFail
			var le *rules.LoadError
			if errors.As(err, &le) || rep == nil {
				printLoadError(stderr, dir, err)
				fmt.Fprintf(stdout, "FAIL\t%s\t(rules or tests do not load)\n", dir)
				continue
			}
			fmt.Fprintln(stderr, err)
		}
		rep.Write(stdout, *verbose)
		if *coverage {
			rep.WriteCoverage(stdout)
		}
		if rep.Failed() > 0 {
			code = ExitFail
		}
	}
	return code
}

func explain(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("explain", stderr)
	facts := fs.String("facts", "", "YAML file with the message, contact, lead and conversation facts")
	nowFlag := fs.String("now", "", "evaluation time (RFC 3339); default: the facts file's now, else the current time")
	asJSON := fs.Bool("json", false, "print the decision and the verdicts as JSON")
	dirs, err := parse(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(dirs) != 1 || *facts == "" {
		fmt.Fprintln(stderr, "switchboard rules explain: want one rules directory and --facts FILE")
		return ExitUsage
	}
	rs, err := rules.LoadDir(dirs[0])
	if err != nil {
		printLoadError(stderr, dirs[0], err)
		return ExitFail
	}
	now := time.Now()
	if *nowFlag != "" {
		if now, err = time.Parse(time.RFC3339, *nowFlag); err != nil {
			fmt.Fprintf(stderr, "switchboard rules explain: --now: %v\n", err)
			return ExitUsage
		}
	}
	in, err := ruletest.LoadFacts(*facts, now)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitFail
	}
	if *nowFlag != "" {
		in.Now = now // the flag wins over the file
	}
	d, verdicts, evalErr := rs.Trace(in)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Decision *rules.Decision `json:"decision"`
			Verdicts []rules.Verdict `json:"verdicts"`
		}{d, verdicts})
	} else {
		writeTrace(stdout, rs, d, verdicts)
	}
	if evalErr != nil {
		fmt.Fprintln(stderr, evalErr)
		return ExitFail
	}
	return ExitOK
}

var sectionTitles = map[string]string{
	"condition": "CONDITIONS", "scoring": "SCORING", "tier": "TIERS", "routing": "ROUTING",
	"handoff": "HANDOFF", "release": "RELEASE", "followup": "FOLLOWUPS",
}

// writeTrace prints every rule's verdict, by section, then the decision.
func writeTrace(w io.Writer, rs *rules.Ruleset, d *rules.Decision, vs []rules.Verdict) {
	fmt.Fprintf(w, "rules  %s (version %s)\nnow    %s\n", rs.Dir(), rs.Version(), d.Now.Format(time.RFC3339))
	fmt.Fprintln(w, "       [x] applied  [~] matched but did not apply  [ ] did not match")
	width := 0
	for _, v := range vs {
		width = max(width, len([]rune(v.Rule)))
	}
	section := ""
	for _, v := range vs {
		if v.Section != section {
			if section == "scoring" {
				fmt.Fprintf(w, "  = score %d\n", d.Score)
			}
			section = v.Section
			fmt.Fprintf(w, "\n%s\n", sectionTitles[section])
		}
		mark := "[ ]"
		switch {
		case v.Applied:
			mark = "[x]"
		case v.Matched:
			mark = "[~]" // matched, but did not take effect
		}
		name := v.Rule + strings.Repeat(" ", width-len([]rune(v.Rule)))
		fmt.Fprintf(w, "  %s %s  %-28s %s:%d\n", mark, name, v.Effect, v.File, v.Line)
		if v.When != "" && v.Section != "tier" {
			fmt.Fprintf(w, "      when %s\n", strings.Join(strings.Fields(v.When), " "))
		}
		if v.Note != "" {
			fmt.Fprintf(w, "      %s\n", v.Note)
		}
	}
	if section == "scoring" {
		fmt.Fprintf(w, "  = score %d\n", d.Score)
	}
	fmt.Fprintf(w, "\nDECISION\n  %s", strings.ReplaceAll(strings.TrimRight(d.Explain(), "\n"), "\n", "\n  "))
	fmt.Fprintln(w)
}
