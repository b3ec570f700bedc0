package rules

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/checker"
	exprcompiler "github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// maxNodes bounds the size of one expression, so that a runaway rule (a
// generated list of ten thousand phrases) is refused at load rather than
// slowing every message.
const maxNodes = 500

// exprSrc is an expression and where it was written.
type exprSrc struct {
	src  string
	node *yaml.Node
	f    *srcFile
}

type condDef struct {
	name string
	e    exprSrc
	bad  bool // failed to compile (and said so)
	prog *program
	slot int // index in Env.C when precomputed, else -1 (inlined)
}

// compiler compiles the expressions of one rule set.
type compiler struct {
	probs    *[]Problem
	loc      *time.Location
	fnOpts   []expr.Option
	parseCfg *conf.Config
	conds    map[string]*condDef
	hours    map[string]*Hours // team name → its hours, for workingHours(t, "sales")
	slots    []fieldSlot
	matches  []matchDef
}

func newCompiler(probs *[]Problem, loc *time.Location) *compiler {
	c := &compiler{probs: probs, loc: loc, fnOpts: functions(loc), conds: map[string]*condDef{}, hours: map[string]*Hours{}}
	// The parser must know the functions (and that now is not a builtin)
	// to parse conditions the way the compiler will.
	c.parseCfg = conf.CreateNew()
	for _, o := range c.options(Env{}) {
		o(c.parseCfg)
	}
	for name := range c.parseCfg.Disabled {
		delete(c.parseCfg.Builtins, name)
	}
	return c
}

func (c *compiler) options(env any) []expr.Option {
	return append([]expr.Option{expr.Env(env), expr.MaxNodes(maxNodes)}, c.fnOpts...)
}

// reservedNames are the names a condition may not take.
func reservedNames() []string {
	names := slices.Clone(functionNames)
	names = append(names, envNames(reflect.TypeOf(Env{}))...)
	for _, b := range builtin.Builtins {
		names = append(names, b.Name)
	}
	return append(names, "true", "false", "nil", "not", "and", "or", "in", "matches", "contains",
		"startsWith", "endsWith", "let", "if", "else", "agent")
}

// envNames are the top-level names of an environment struct, hidden ones
// excluded.
func envNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			out = append(out, envNames(f.Type)...)
			continue
		}
		name := f.Tag.Get("expr")
		if name == "" || strings.HasPrefix(name, "__") {
			continue
		}
		out = append(out, name)
	}
	return out
}

// labels names the structs of the environment the way expressions reach
// them, to turn expr's "type rules.Lead has no field budgt" into
// "lead has no field budgt; did you mean lead.budget?".
var labels = map[string]struct {
	name string
	t    reflect.Type
}{
	"rules.Message":      {"message", reflect.TypeOf(Message{})},
	"rules.Contact":      {"contact", reflect.TypeOf(Contact{})},
	"rules.Lead":         {"lead", reflect.TypeOf(Lead{})},
	"rules.Conversation": {"conversation", reflect.TypeOf(Conversation{})},
	"rules.Agent":        {"agent", reflect.TypeOf(Agent{})},
}

var (
	reNoField     = regexp.MustCompile(`^type (\S+) has no field (\S+)`)
	reUnknownName = regexp.MustCompile(`^unknown name (\S+)`)
)

// improve rewrites expr's messages in the rules' own terms and adds a
// suggestion for a misspelt name.
func (c *compiler) improve(msg string, agent bool) string {
	if m := reNoField.FindStringSubmatch(msg); m != nil {
		l, ok := labels[m[1]]
		if !ok {
			return msg
		}
		label := l.name
		fields := envNames(l.t)
		full := make([]string, len(fields))
		for i, f := range fields {
			full[i] = label + "." + f
		}
		return fmt.Sprintf("%s has no field %s%s", label, m[2], didYouMean(label+"."+m[2], full)) + msg[len(m[0]):]
	}
	if m := reUnknownName.FindStringSubmatch(msg); m != nil {
		names := envNames(reflect.TypeOf(Env{}))
		if agent {
			names = append(names, "agent")
		}
		names = append(names, functionNames...)
		for name := range c.conds {
			names = append(names, name)
		}
		for _, b := range builtin.Builtins {
			names = append(names, b.Name)
		}
		return fmt.Sprintf("unknown name %s%s", m[1], didYouMean(m[1], names)) + msg[len(m[0]):]
	}
	return msg
}

// pos maps a 1-based line and 0-based rune column inside the expression to
// the file.
func (e exprSrc) pos(line, col int) (int, int) {
	n := e.node
	if n == nil {
		return 1, 1
	}
	switch n.Style {
	case yaml.LiteralStyle:
		// The text starts on the line after the | indicator; its lines keep
		// any indentation beyond the block's, which the first line sets.
		indent := 0
		if n.Line < len(e.f.lines) {
			l := e.f.lines[n.Line]
			indent = len(l) - len(strings.TrimLeft(l, " "))
		}
		return n.Line + line, indent + col + 1
	case yaml.FoldedStyle:
		return n.Line + 1, n.Column // lines are joined: point at the block
	}
	// Plain and quoted scalars: exact while the expression sits on the key's
	// line and no escape shifts it; otherwise the start of the value.
	raw := ""
	if n.Line <= len(e.f.lines) {
		raw = e.f.lines[n.Line-1]
	}
	start := n.Column
	if n.Style == yaml.DoubleQuotedStyle || n.Style == yaml.SingleQuotedStyle {
		start++
		if strings.Contains(raw, `\`) || strings.Contains(raw, "''") {
			return n.Line, n.Column
		}
	}
	if line == 1 && start+col <= utf8.RuneCountInString(raw) {
		return n.Line, start + col
	}
	return n.Line, n.Column
}

func (c *compiler) errAt(e exprSrc, line, col int, msg string) {
	l, cl := e.pos(line, col)
	*c.probs = append(*c.probs, Problem{File: e.f.path, Line: l, Col: cl, Msg: msg})
}

// kind of value an expression must produce.
type kind int

const (
	kindBool kind = iota
	kindInt
)

func (k kind) String() string {
	if k == kindInt {
		return "a whole number"
	}
	return "true or false"
}

// phase says which evaluation-time names an expression may read.
type phase struct {
	name   string // "scoring", "tiers", ...
	forbid uses
}

var (
	phaseScoring = phase{"scoring rules", usesScore | usesTier | usesTeam | usesPriority}
	phaseTiers   = phase{"tiers", usesTier | usesTeam | usesPriority}
	phaseRouting = phase{"routing", usesTeam | usesPriority}
	phaseLate    = phase{"", 0}
)

func (u uses) names() []string {
	var out []string
	for _, x := range []struct {
		u    uses
		name string
	}{{usesScore, "score"}, {usesTier, "tier"}, {usesTeam, "team"}, {usesPriority, "priority"}} {
		if u&x.u != 0 {
			out = append(out, x.name)
		}
	}
	return out
}

func forbidReason(name string) string {
	switch name {
	case "score", "tier":
		return "the scoring rules compute score, and tiers compute tier from it; contact.score holds the previous evaluation's score"
	default:
		return "routing decides team and priority; handoff, release and followup rules can read them"
	}
}

// compile compiles one expression; what names it in messages
// (`scoring rule "x": when`). It returns nil after reporting a problem.
func (c *compiler) compile(e exprSrc, what string, k kind, ph phase, agent bool) *program {
	return c.compileWith(e, what, k, ph, agent, nil)
}

func (c *compiler) compileWith(e exprSrc, what string, k kind, ph phase, agent bool, selfCond *condDef) *program {
	p := &patcher{c: c}
	if selfCond != nil {
		p.self = selfCond.name
	}
	var env any = Env{}
	if agent {
		env = AgentEnv{}
	}
	opts := append(c.options(env), expr.Patch(p))
	if k == kindInt {
		opts = append(opts, expr.AsInt())
	} else {
		opts = append(opts, expr.AsBool())
	}
	prog, native, err := compileExpr(e.src, opts, !agent)
	bad := p.broken
	for _, pe := range p.errs {
		line, col := locate(e.src, pe.loc)
		c.errAt(e, line, col, fmt.Sprintf("%s: %s (in %s)", what, pe.msg, quoteExpr(e.src)))
		bad = true
	}
	if err != nil {
		if bad {
			return nil // the patch problem explains it better
		}
		line, col, msg := 1, 0, err.Error()
		var fe *file.Error
		if errors.As(err, &fe) {
			line, col, msg = fe.Line, fe.Column, fe.Message
		}
		if _, got, ok := strings.Cut(msg, "but got "); ok && strings.HasPrefix(msg, "expected ") {
			msg = "it gives " + got
		}
		c.errAt(e, line, col, fmt.Sprintf("%s: %s (in %s, which must give %s)", what, c.improve(msg, agent), quoteExpr(e.src), k))
		return nil
	}
	if bad {
		return nil
	}
	if f := p.uses & ph.forbid; f != 0 {
		for _, name := range f.names() {
			// The name may come from a condition, and not be in the text.
			c.errAt(e, 1, max(strings.Index(e.src, name), 0), fmt.Sprintf("%s: %s is not known yet in %s: %s", what, name, ph.name, forbidReason(name)))
		}
		return nil
	}
	pr := &program{src: e.src, prog: prog, uses: p.uses}
	if k == kindBool {
		pr.native = native.b
	} else {
		pr.nativeInt = native.i
	}
	return pr
}

// compileExpr is expr.Compile, done step by step (with expr's own packages)
// so that the checked tree can also be built as a native closure before the
// optimizer rewrites it.
func compileExpr(src string, opts []expr.Option, wantNative bool) (*vm.Program, value, error) {
	config := conf.CreateNew()
	for _, op := range opts {
		op(config)
	}
	for name := range config.Disabled {
		delete(config.Builtins, name)
	}
	config.Check()
	tree, err := checker.ParseCheck(src, config)
	if err != nil {
		return nil, value{}, err
	}
	var native value
	if wantNative {
		native, _ = nativeOf(tree.Node)
	}
	if config.Optimize {
		if err := optimizer.Optimize(&tree.Node, config); err != nil {
			var fe *file.Error
			if errors.As(err, &fe) {
				return nil, value{}, fe.Bind(tree.Source)
			}
			return nil, value{}, err
		}
	}
	prog, err := exprcompiler.Compile(tree, config)
	if err != nil {
		return nil, value{}, err
	}
	return prog, native, nil
}

// locate turns a rune offset in src into a 1-based line and 0-based column.
func locate(src string, loc file.Location) (int, int) {
	line, col, i := 1, 0, 0
	for _, r := range src {
		if i == loc.From {
			break
		}
		if r == '\n' {
			line++
			col = 0
		} else {
			col++
		}
		i++
	}
	return line, col
}

type patchErr struct {
	loc file.Location
	msg string
}

// patcher rewrites an expression before it is type-checked:
//   - a condition's name becomes the condition itself;
//   - now() reads the evaluation's clock, since(t) and until(t) subtract it;
//   - fold(f), containsAny(f, [...]) and containsWord(f, [...]) of a string
//     field read a fold of f computed once per evaluation, and constant
//     needle lists are folded once here rather than on every message;
//   - a constant workingHours spec (or team name) is parsed here, so a bad
//     spec is a load error.
type patcher struct {
	c      *compiler
	errs   []patchErr
	uses   uses
	self   string   // the condition being compiled on its own, if any
	stack  []string // conditions being inlined, to catch cycles
	outer  ast.Node // the outermost inlined name, where a cycle is reported
	broken bool     // a condition used is broken; its own problem says why
}

// fail records a problem, unless it is inside an inlined condition: the
// condition's own compilation reports that.
func (p *patcher) fail(n ast.Node, format string, a ...any) {
	if len(p.stack) > 0 {
		return
	}
	p.errs = append(p.errs, patchErr{n.Location(), fmt.Sprintf(format, a...)})
}

func (p *patcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "score":
			p.uses |= usesScore
		case "tier":
			p.uses |= usesTier
		case "team":
			p.uses |= usesTeam
		case "priority":
			p.uses |= usesPriority
		}
		if cd, ok := p.c.conds[n.Value]; ok {
			p.inline(node, cd)
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok {
			p.call(node, n, id.Value)
		}
	}
}

func (p *patcher) inline(node *ast.Node, cd *condDef) {
	if cd.name == p.self || slices.Contains(p.stack, cd.name) {
		if p.self != "" {
			path := append(append([]string{p.self}, p.stack...), cd.name)
			at := *node
			if p.outer != nil {
				at = p.outer
			}
			p.errs = append(p.errs, patchErr{at.Location(), "condition refers to itself: " + strings.Join(path, " → ")})
		}
		p.broken = true
		return
	}
	if cd.bad && p.self == "" {
		p.broken = true
		return
	}
	if cd.slot >= 0 && p.self == "" {
		// Rules read the value computed once per evaluation. Conditions
		// themselves inline each other, so that all of them can be computed
		// from one environment.
		ast.Patch(node, &ast.MemberNode{Node: &ast.IdentifierNode{Value: "__c"}, Property: &ast.IntegerNode{Value: cd.slot}})
		p.uses |= usesConds
		return
	}
	tree, err := parser.ParseWithConfig(cd.e.src, p.c.parseCfg)
	if err != nil {
		p.broken = true
		return
	}
	if len(p.stack) == 0 {
		p.outer = *node
	}
	p.stack = append(p.stack, cd.name)
	ast.Walk(&tree.Node, p)
	p.stack = p.stack[:len(p.stack)-1]
	ast.Patch(node, tree.Node)
}

func (p *patcher) call(node *ast.Node, n *ast.CallNode, name string) {
	args := n.Arguments
	switch name {
	case "now":
		if len(args) == 0 {
			ast.Patch(node, &ast.IdentifierNode{Value: "now"})
		}
	case "since":
		if len(args) == 1 {
			ast.Patch(node, &ast.BinaryNode{Operator: "-", Left: &ast.IdentifierNode{Value: "now"}, Right: args[0]})
		}
	case "until":
		if len(args) == 1 {
			ast.Patch(node, &ast.BinaryNode{Operator: "-", Left: args[0], Right: &ast.IdentifierNode{Value: "now"}})
		}
	case "fold":
		if len(args) == 1 {
			if i := p.fieldSlot(args[0]); i >= 0 {
				p.c.slots[i].forms[formFold] = true
				p.c.slots[i].read = true
				ast.Patch(node, slotNode("__f", i))
			}
		}
	case "isBlank":
		if len(args) == 1 {
			if i := p.fieldSlot(args[0]); i >= 0 {
				if k := p.c.match(matchDef{slot: i, form: formWords, blank: true}); k >= 0 {
					ast.Patch(node, slotNode("__m", k))
				}
			}
		}
	case "containsAny", "containsWord", "containsWordExact":
		if len(args) != 2 {
			return
		}
		form := map[string]textForm{"containsAny": formFold, "containsWord": formWords, "containsWordExact": formExact}[name]
		arr, ok := args[1].(*ast.ArrayNode)
		if !ok {
			return
		}
		needles := make([]string, 0, len(arr.Nodes))
		for _, it := range arr.Nodes {
			s, ok := it.(*ast.StringNode)
			if !ok {
				return // not constant: normalized when the rule runs
			}
			nd := normalizeNeedle(s.Value, form)
			if strings.TrimSpace(nd) == "" {
				p.fail(it, "%s: %q would match every text", name, s.Value)
				return
			}
			needles = append(needles, nd)
		}
		if i := p.fieldSlot(args[0]); i >= 0 {
			if k := p.c.match(matchDef{slot: i, form: form, needles: needles}); k >= 0 {
				ast.Patch(node, slotNode("__m", k))
				return
			}
		}
		var list any = foldedList(needles)
		switch form {
		case formWords:
			list = wordsList(needles)
		case formExact:
			list = exactList(needles)
		}
		ast.Patch(&n.Arguments[1], &ast.ConstantNode{Value: list})
	case "workingHours":
		if len(args) != 2 {
			return
		}
		s, ok := args[1].(*ast.StringNode)
		if !ok {
			return
		}
		h, isTeam := p.c.hours[s.Value]
		if !isTeam {
			var err error
			if h, err = ParseHours(s.Value, p.c.loc); err != nil {
				p.fail(s, "workingHours: %q is neither a team nor an hours spec: %v", s.Value, err)
				return
			}
		}
		if h == nil {
			// A team with no hours is always open; say so to the checker
			// with a spec that is.
			h, _ = ParseHours("24/7", p.c.loc)
		}
		ast.Patch(&n.Arguments[1], &ast.ConstantNode{Value: h})
	}
}

func slotNode(name string, i int) ast.Node {
	return &ast.MemberNode{Node: &ast.IdentifierNode{Value: name}, Property: &ast.IntegerNode{Value: i}}
}

// fieldSlot returns the slot of the string field arg reads (allocating one),
// or -1 when arg is not a plain string field or the slots are all taken.
// fold(f), already rewritten to __f[i], counts as f.
func (p *patcher) fieldSlot(arg ast.Node) int {
	a, ok := arg.(*ast.MemberNode)
	if !ok {
		if id, ok := arg.(*ast.IdentifierNode); ok {
			return p.c.fieldSlot(id.Value)
		}
		return -1
	}
	obj, ok1 := a.Node.(*ast.IdentifierNode)
	if !ok1 || a.Optional || a.Method {
		return -1
	}
	switch prop := a.Property.(type) {
	case *ast.StringNode:
		return p.c.fieldSlot(obj.Value + "." + prop.Value)
	case *ast.IntegerNode:
		if obj.Value == "__f" {
			return prop.Value
		}
	}
	return -1
}

func (c *compiler) fieldSlot(path string) int {
	f, ok := stringFields[path]
	if !ok {
		return -1
	}
	for i := range c.slots {
		if c.slots[i].field.canonical == f.canonical {
			return i
		}
	}
	if len(c.slots) == fieldSlots {
		return -1
	}
	c.slots = append(c.slots, fieldSlot{field: f})
	return len(c.slots) - 1
}

// match returns the match slot for m (shared with an identical one), or -1
// when they are all taken.
func (c *compiler) match(m matchDef) int {
	for k := range c.matches {
		x := &c.matches[k]
		if x.slot == m.slot && x.form == m.form && x.blank == m.blank && slices.Equal(x.needles, m.needles) {
			return k
		}
	}
	if len(c.matches) == matchSlots {
		return -1
	}
	c.slots[m.slot].forms[m.form] = true
	c.matches = append(c.matches, m)
	return len(c.matches) - 1
}

// quoteExpr quotes an expression for a message, on one line and cut short.
func quoteExpr(src string) string {
	s := oneLine(src)
	if r := []rune(s); len(r) > 100 {
		s = string(r[:100]) + "…"
	}
	return fmt.Sprintf("%q", s)
}
