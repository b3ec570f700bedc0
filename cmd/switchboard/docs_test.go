package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-hub/switchboard/hub/config"
	"github.com/switchboard-hub/switchboard/rules"
)

// The docs checker: every `switchboard ...` command the guides and the
// README show must exist in this CLI, with its subcommand and flags, and
// every YAML example of a hub config must load with the real config parser
// (unknown keys are errors), and every rule-file example must use only
// known sections and fields. A guide that drifts from the code fails CI.

// docFiles are the Markdown files checked.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs found: %v", err)
	}
	return append(files, "../../README.md")
}

// exampleFiles are the deployment examples and the example configs, each
// one snippet with comment markers removed: their comments show commands.
func exampleFiles(t *testing.T) []snippet {
	t.Helper()
	var files []string
	for _, g := range []string{"../../examples/deploy/*", "../../examples/deploy/*/*", "../../examples/config/*.yaml"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	var out []snippet
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			lines[i] = commentMark.ReplaceAllString(l, "")
		}
		out = append(out, snippet{file: f, line: 1, lang: "sh", text: strings.Join(lines, "\n")})
	}
	return out
}

var commentMark = regexp.MustCompile(`^\s*#\s?`)

// snippet is a piece of code in a Markdown file.
type snippet struct {
	file string
	line int    // of the snippet's first line
	lang string // fenced blocks: the info string's first word; inline spans: "inline"
	text string
}

var fence = regexp.MustCompile("^\\s*(```+|~~~+)\\s*([A-Za-z0-9_+-]*)")

// snippets returns the fenced blocks and the inline code spans of a
// Markdown file.
func snippets(t *testing.T, file string) []snippet {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return parseSnippets(file, string(b))
}

func parseSnippets(file, md string) []snippet {
	var out []snippet
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		m := fence.FindStringSubmatch(lines[i])
		if m == nil {
			for _, span := range inlineCode.FindAllStringSubmatch(lines[i], -1) {
				out = append(out, snippet{file: file, line: i + 1, lang: "inline", text: span[1]})
			}
			continue
		}
		start, marker := i, strings.TrimSpace(m[1])
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), marker); i++ {
			body = append(body, lines[i])
		}
		out = append(out, snippet{file: file, line: start + 2, lang: strings.ToLower(m[2]), text: strings.Join(body, "\n")})
	}
	return out
}

var inlineCode = regexp.MustCompile("`([^`]+)`")

// invocation finds `switchboard` in command position: at the start of a
// line or span (after an optional "$ " prompt), after a shell operator, in
// a systemd ExecStart=, with or without a directory (bin/switchboard).
var invocation = regexp.MustCompile(`(?m)(?:^|&&|\|\||;|\||\$\(|\(|ExecStart=|\bexec\s)[ \t]*(?:\$[ \t]+)?(?:[\w.~/-]*/)?switchboard((?:[ \t]+[^\s|;&#)` + "`" + `]+)*)`)

var flagName = regexp.MustCompile(`(?:^|[\s\[|(])--?([a-z][a-z0-9-]*)`)

func TestDocsCommandsExist(t *testing.T) {
	var all []snippet
	for _, file := range docFiles(t) {
		all = append(all, snippets(t, file)...)
	}
	all = append(all, exampleFiles(t)...)
	problems, seen := commandProblems(all)
	for _, p := range problems {
		t.Error(p)
	}
	if seen < 20 {
		t.Errorf("only %d switchboard invocations found in the docs: is the checker still finding them?", seen)
	}
}

// commandProblems checks every invocation in the snippets against the
// CLI: the command, its subcommand, and each flag against what the
// command's --help prints.
func commandProblems(snips []snippet) (problems []string, seen int) {
	cmds := map[string]command{}
	for _, c := range allCommands() {
		cmds[c.name] = c
	}
	helpFlags := map[string]map[string]bool{}
	flagsOf := func(path ...string) map[string]bool {
		key := strings.Join(path, " ")
		if f, ok := helpFlags[key]; ok {
			return f
		}
		_, out, errOut := runCLI(append(path, "--help")...)
		f := map[string]bool{"help": true, "h": true}
		for _, m := range flagName.FindAllStringSubmatch(out+"\n"+errOut, -1) {
			f[m[1]] = true
		}
		helpFlags[key] = f
		return f
	}
	for _, sn := range snips {
		if sn.lang == "yaml" || sn.lang == "yml" || sn.lang == "json" || sn.lang == "go" {
			continue
		}
		for i, line := range strings.Split(sn.text, "\n") {
			for _, m := range invocation.FindAllStringSubmatch(line, -1) {
				where := fmt.Sprintf("%s:%d: `switchboard%s`", rel(sn.file), sn.line+i, m[1])
				if sn.lang == "inline" {
					where = fmt.Sprintf("%s:%d: `switchboard%s`", rel(sn.file), sn.line, m[1])
				}
				args := strings.Fields(m[1])
				if len(args) == 0 {
					continue // the bare name, in prose about the binary
				}
				seen++
				if strings.HasPrefix(args[0], "-") {
					if args[0] != "--help" && args[0] != "-h" {
						problems = append(problems, fmt.Sprintf("%s: the CLI has no global flag %s", where, args[0]))
					}
					continue
				}
				c, ok := cmds[args[0]]
				if !ok {
					problems = append(problems, fmt.Sprintf("%s: no such command %q", where, args[0]))
					continue
				}
				path := []string{args[0]}
				subs := subcommands(c.usage)
				if len(subs) > 0 && len(args) > 1 && !strings.HasPrefix(args[1], "-") {
					if !isPlaceholder(args[1]) && !subs[args[1]] {
						problems = append(problems, fmt.Sprintf("%s: %q has no subcommand %q (usage: %s)", where, args[0], args[1], c.usage))
						continue
					}
					path = append(path, args[1])
				}
				flags := flagsOf(path...)
				for _, a := range args[1:] {
					if !strings.HasPrefix(a, "-") || a == "-" {
						continue
					}
					name := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
					if name != "" && !flags[name] {
						problems = append(problems, fmt.Sprintf("%s: %q has no flag %s", where, strings.Join(path, " "), a))
					}
				}
			}
		}
	}
	return problems, seen
}

// subcommands reads "rules check|test|explain DIR" as {check, test, explain}.
func subcommands(usage string) map[string]bool {
	f := strings.Fields(usage)
	if len(f) < 2 || !regexp.MustCompile(`^[a-z0-9-]+(\|[a-z0-9-]+)*$`).MatchString(f[1]) {
		return nil
	}
	out := map[string]bool{}
	for _, s := range strings.Split(f[1], "|") {
		out[s] = true
	}
	return out
}

// isPlaceholder is a documented argument such as DIR, FILE or <name>.
func isPlaceholder(s string) bool {
	return strings.ToUpper(s) == s || strings.HasPrefix(s, "<") || strings.Contains(s, "...")
}

func rel(file string) string { return strings.TrimPrefix(file, "../../") }

// Top-level keys only a hub config has, and the rule files' sections.
var (
	hubOnlyKeys  = map[string]bool{"listen": true, "store": true, "plugins": true, "pipeline": true, "admin": true, "log": true}
	hubKeys      = map[string]bool{"rules": true, "handoff": true}
	ruleSections = map[string]bool{"settings": true, "conditions": true, "scoring": true, "routing": true,
		"agents": true, "teams": true, "handoff": true, "followups": true}
)

var crossRef = regexp.MustCompile(`is not an? (channel|crm|llm) plugin instance`)

var withDefault = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*):-`)

var fileRef = regexp.MustCompile(`file:([^\s"',}\]]+)`)

func TestDocsConfigExamplesParse(t *testing.T) {
	var all []snippet
	for _, file := range docFiles(t) {
		all = append(all, snippets(t, file)...)
	}
	problems, hubs, ruleFiles := yamlProblems(t, all)
	for _, p := range problems {
		t.Error(p)
	}
	// The example configs themselves.
	configs, err := filepath.Glob("../../examples/config/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range configs {
		if filepath.Base(f) == "knowledge.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range hubConfigProblems(t, snippet{file: f, line: 1, lang: "yaml", text: string(b)}, true) {
			t.Error(p)
		}
	}
	if hubs < 5 || ruleFiles < 5 {
		t.Errorf("found %d hub config and %d rule file examples: is the checker still finding them?", hubs, ruleFiles)
	}
}

// yamlProblems loads every YAML example that is a hub config or a rule
// file; others (Kubernetes, CI, rule tests) are left alone.
func yamlProblems(t *testing.T, snips []snippet) (problems []string, hubs, ruleFiles int) {
	for _, sn := range snips {
		if sn.lang != "yaml" && sn.lang != "yml" {
			continue
		}
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(sn.text), &doc); err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: YAML example does not parse: %v", rel(sn.file), sn.line, err))
			continue
		}
		keys := topKeys(&doc)
		switch kindOf(&doc, keys) {
		case "hub":
			hubs++
			problems = append(problems, hubConfigProblems(t, sn, slices.Contains(keys, "plugins"))...)
		case "rules":
			ruleFiles++
			problems = append(problems, ruleFileProblems(t, sn)...)
		}
	}
	return problems, hubs, ruleFiles
}

func topKeys(doc *yaml.Node) []string {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	var keys []string
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		keys = append(keys, m.Content[i].Value)
	}
	return keys
}

// kindOf tells a hub config ("hub") from a rule file ("rules"); anything
// else (Kubernetes manifests, CI files, rule tests) is "".
func kindOf(doc *yaml.Node, keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	hub, rule := true, true
	for _, k := range keys {
		if hubOnlyKeys[k] {
			return "hub"
		}
		if !hubKeys[k] {
			hub = false
		}
		if !ruleSections[k] {
			rule = false
		}
	}
	if hub {
		// Only keys a rule file or a CI file may also have: a hub's rules
		// block names a dir, a hub's handoff block has no rules or release.
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i].Value, m.Content[i+1]
			children := map[string]bool{}
			for j := 0; j+1 < len(v.Content); j += 2 {
				children[v.Content[j].Value] = true
			}
			switch {
			case k == "rules" && !children["dir"]:
				hub = false
			case k == "handoff" && (children["rules"] || children["release"]):
				hub = false
			}
		}
	}
	switch {
	case hub:
		return "hub"
	case rule:
		return "rules"
	}
	return ""
}

// hubConfigProblems loads an example with the hub's own parser: ${VARS}
// get a stub value and file: references a temporary file. A fragment
// without plugins (whole false) may name instances it does not show.
func hubConfigProblems(t *testing.T, sn snippet, whole bool) []string {
	t.Helper()
	dir := t.TempDir()
	n := 0
	text := fileRef.ReplaceAllStringFunc(sn.text, func(string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("secret-%d", n))
		if err := os.WriteFile(p, []byte("stub-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return "file:" + p
	})
	// A variable with a default (${VAR:-default}) is left unset, so the
	// example is checked with its defaults; the others get a stub.
	defaulted := map[string]bool{}
	for _, m := range withDefault.FindAllStringSubmatch(text, -1) {
		defaulted[m[1]] = true
	}
	env := func(name string) (string, bool) {
		if defaulted[name] {
			return "", false
		}
		if strings.Contains(name, "PIN") || strings.Contains(name, "SHA256") {
			return strings.Repeat("0", 64), true
		}
		return "stub-" + strings.ToLower(name), true
	}
	_, err := config.Parse(filepath.Join(dir, "switchboard.yaml"), []byte(text), env)
	var es config.Errors
	if err != nil && !errors.As(err, &es) {
		return []string{fmt.Sprintf("%s:%d: hub config example does not load: %v", rel(sn.file), sn.line, err)}
	}
	var out []string
	for _, e := range es {
		if !whole && crossRef.MatchString(e.Msg) {
			continue
		}
		out = append(out, fmt.Sprintf("%s:%d: hub config example: %s", rel(sn.file), sn.line+max(e.Line, 1)-1, e.Msg))
	}
	return out
}

// ruleFileProblems loads an example rule file on its own. A snippet may
// refer to teams, conditions or agents defined elsewhere, so only problems
// with its own shape count: unknown sections and fields, wrong types.
func ruleFileProblems(t *testing.T, sn snippet) []string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "10-example.yaml"), []byte(sn.text), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := rules.LoadDir(dir)
	if err == nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if !shapeProblem.MatchString(line) {
			continue
		}
		at := sn.line
		if m := exampleLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			at, line = sn.line+n-1, line[len(m[0]):]
		}
		out = append(out, fmt.Sprintf("%s:%d: rule file example:%s", rel(sn.file), at, line))
	}
	sort.Strings(out)
	return out
}

var exampleLine = regexp.MustCompile(`^.*10-example\.yaml:(\d+):\d+:`)

var shapeProblem = regexp.MustCompile(`unknown (field|section)|cannot unmarshal|must be a (mapping|list|string|number)`)

// The checker itself: drift of each kind is caught.
func TestDocsCheckerCatchesDrift(t *testing.T) {
	md := "# Drift\n\n" +
		"```sh\n" +
		"switchboard rules check examples/rules && bin/switchboard sandbox --no-play\n" +
		"switchboard frobnicate\n" +
		"$ switchboard rules lint DIR\n" +
		"switchboard serve --conf x.yaml\n" +
		"```\n\n" +
		"Run `switchboard sandbox --turbo` or `switchboard keys create --role admin --name ci --config FILE`.\n\n" +
		"```yaml\nlisten:\n  webhook: \":8080\"\nplugins:\n  - name: zalo\n    kind: channel\n    path: /opt/zalo\n    config: { secret: file:/run/secrets/zalo }\n```\n\n" +
		"```yaml\nscoring:\n  rules:\n    - name: x\n      wehn: intent == \"spam\"\n      set: 0\n```\n\n" +
		"```yaml\nrules:\n  - changes: [\"rules/**\"]\n```\n"
	snips := parseSnippets("../../docs/drift.md", md)
	problems, seen := commandProblems(snips)
	got := strings.Join(problems, "\n")
	for _, want := range []string{`no such command "frobnicate"`, `no subcommand "lint"`, `"serve" has no flag --conf`, `"sandbox" has no flag --turbo`} {
		if !strings.Contains(got, want) {
			t.Errorf("command drift not caught: %s\n%s", want, got)
		}
	}
	if seen != 7 || len(problems) != 4 {
		t.Errorf("%d invocations, %d problems; want 7 and 4:\n%s", seen, len(problems), got)
	}
	problems, hubs, ruleFiles := yamlProblems(t, snips)
	got = strings.Join(problems, "\n")
	if hubs != 1 || ruleFiles != 1 || len(problems) != 2 ||
		!strings.Contains(got, "docs/drift.md:14: hub config example: webhook is not a known key in listen") ||
		!strings.Contains(got, `docs/drift.md:26: rule file example: unknown field "wehn"`) {
		t.Errorf("%d hub and %d rule examples; problems:\n%s", hubs, ruleFiles, got)
	}
}

// configPaths lists every key of the hub's config as the reference writes
// it: listen.webhooks, plugins[].name, pipeline.deals.*.stage.
func configPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		path := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft == reflect.TypeOf(yaml.Node{}):
			out = append(out, path)
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(config.Duration(0)):
			out = append(out, configPaths(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, configPaths(ft.Elem(), path+"[].")...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			out = append(out, path)
			out = append(out, configPaths(ft.Elem(), path+".*.")...)
		default:
			out = append(out, path)
		}
	}
	return out
}

var referenceRow = regexp.MustCompile("(?m)^\\| `([a-z_]+(?:\\[\\])?(?:\\.[a-z0-9_*]+(?:\\[\\])?)+)` \\|")

// The configuration reference in docs/operations.md names every key of
// hub/config, and nothing else.
func TestDocsConfigReferenceComplete(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range referenceRow.FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = true
	}
	real := map[string]bool{}
	for _, p := range configPaths(reflect.TypeOf(config.Config{}), "") {
		real[p] = true
		if !documented[p] {
			t.Errorf("docs/operations.md: the configuration reference lacks `%s`", p)
		}
	}
	for p := range documented {
		if !real[p] {
			t.Errorf("docs/operations.md: the configuration reference documents `%s`, which hub/config does not have", p)
		}
	}
	if len(real) < 50 {
		t.Errorf("only %d config keys found by reflection", len(real))
	}
}

var (
	metricDef  = regexp.MustCompile(`Name:\s*"(switchboard_[a-z_]+)"`)
	metricUsed = regexp.MustCompile(`\bswitchboard_[a-z_]+`)
)

// docs/operations.md lists every metric the hub registers, and the docs
// name no metric that does not exist.
func TestDocsListEveryMetric(t *testing.T) {
	defined := map[string]bool{}
	err := filepath.WalkDir("../../hub", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		for _, m := range metricDef.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(defined) < 25 {
		t.Fatalf("only %d metrics found in hub/: is the scan still finding them?", len(defined))
	}
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for m := range defined {
		if !strings.Contains(string(ops), "`"+m+"`") {
			t.Errorf("docs/operations.md does not list the metric %s", m)
		}
	}
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricUsed.FindAllString(string(b), -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if strings.HasSuffix(m, suffix) && defined[strings.TrimSuffix(m, suffix)] {
					base = strings.TrimSuffix(m, suffix)
				}
			}
			if !defined[base] && !notMetrics[m] {
				t.Errorf("%s names the metric %s, which the hub does not have", rel(file), m)
			}
		}
	}
}

// notMetrics are switchboard_ names in the docs that are not metrics.
var notMetrics = map[string]bool{}

// The cookbook's recipes load together with the default rules, and its
// test cases pass against them, as the section says.
func TestDocsCookbookRecipes(t *testing.T) {
	b, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	start := strings.Index(md, "## Cookbook")
	if start < 0 {
		t.Fatal("docs/rules.md has no cookbook section")
	}
	end := strings.Index(md[start+1:], "\n## ")
	section := md[start:]
	if end >= 0 {
		section = md[start : start+1+end]
	}
	dir := t.TempDir()
	defaults, err := filepath.Glob("../../examples/rules/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range defaults {
		if strings.HasSuffix(f, "_test.yaml") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	recipes, tests := 0, 0
	for _, sn := range parseSnippets("docs/rules.md", section) {
		if sn.lang != "yaml" {
			continue
		}
		name := fmt.Sprintf("25-recipe-%02d.yaml", recipes+1)
		if strings.Contains(sn.text, "\ntests:") || strings.HasPrefix(sn.text, "tests:") {
			name = fmt.Sprintf("recipes_%d_test.yaml", tests+1)
			tests++
		} else {
			recipes++
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sn.text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if recipes < 5 || tests == 0 {
		t.Fatalf("the cookbook has %d recipes and %d test files", recipes, tests)
	}
	if code, out, errOut := runCLI("rules", "check", dir); code != 0 {
		t.Errorf("the cookbook's recipes with the default rules: %s%s", out, errOut)
	}
	if code, out, errOut := runCLI("rules", "test", dir); code != 0 {
		t.Errorf("the cookbook's tests: %s%s", out, errOut)
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// Links between the guides, and to the repository's files, lead somewhere.
func TestDocsLinksResolve(t *testing.T) {
	n := 0
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				target, _, _ = strings.Cut(target, "#")
				n++
				if _, err := os.Stat(filepath.Join(filepath.Dir(file), target)); err != nil {
					t.Errorf("%s:%d: link to %s, which does not exist", rel(file), i+1, m[1])
				}
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d relative links found", n)
	}
}
