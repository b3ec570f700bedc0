package rules

import (
	"strings"

	"github.com/expr-lang/expr/ast"
)

// Most rule conditions are a few field comparisons joined by && and ||
// (intent == "complaint", lead.decision_maker, tier == "hot", a condition's
// name). Running each through expr's virtual machine costs a run setup,
// reflective field loads and boxing the environment into an interface. So,
// after expr has type-checked an expression, the compiler also tries to
// build it as a Go closure over *Env from the small subset below; an
// expression outside the subset runs on the VM. A differential test checks
// that both agree on every rule of the test rule sets.

// value is a typed getter; exactly one field is set.
type value struct {
	b  func(*Env) bool
	s  func(*Env) string
	i  func(*Env) int
	f  func(*Env) float64
	ss func(*Env) []string
}

func strField(get func(*Env) string) value       { return value{s: get} }
func boolField(get func(*Env) bool) value        { return value{b: get} }
func intField(get func(*Env) int) value          { return value{i: get} }
func floatField(get func(*Env) float64) value    { return value{f: get} }
func stringsField(get func(*Env) []string) value { return value{ss: get} }

// nativeFields are the fields the subset reads, by path.
var nativeFields = map[string]value{
	"message.id":      strField(func(e *Env) string { return e.Message.ID }),
	"message.text":    strField(func(e *Env) string { return e.Message.Text }),
	"message.channel": strField(func(e *Env) string { return e.Message.Channel }),
	"message.type":    strField(func(e *Env) string { return e.Message.Type }),
	"message.author":  strField(func(e *Env) string { return e.Message.Author }),

	"contact.id":       strField(func(e *Env) string { return e.Contact.ID }),
	"contact.name":     strField(func(e *Env) string { return e.Contact.Name }),
	"contact.phone":    strField(func(e *Env) string { return e.Contact.Phone }),
	"contact.email":    strField(func(e *Env) string { return e.Contact.Email }),
	"contact.owner":    strField(func(e *Env) string { return e.Contact.Owner }),
	"contact.tags":     stringsField(func(e *Env) []string { return e.Contact.Tags }),
	"contact.score":    intField(func(e *Env) int { return e.Contact.Score }),
	"contact.messages": intField(func(e *Env) int { return e.Contact.Messages }),

	"lead.intent":         strField(func(e *Env) string { return e.Lead.Intent }),
	"lead.need":           strField(func(e *Env) string { return e.Lead.Need }),
	"lead.budget":         strField(func(e *Env) string { return e.Lead.Budget }),
	"lead.timeline":       strField(func(e *Env) string { return e.Lead.Timeline }),
	"lead.decision_maker": boolField(func(e *Env) bool { return e.Lead.DecisionMaker }),
	"lead.action":         strField(func(e *Env) string { return e.Lead.Action }),
	"lead.confidence":     floatField(func(e *Env) float64 { return e.Lead.Confidence }),
	"lead.lead_estimate":  intField(func(e *Env) int { return e.Lead.LeadEstimate }),

	"conversation.id":    strField(func(e *Env) string { return e.Conversation.ID }),
	"conversation.turns": intField(func(e *Env) int { return e.Conversation.Turns }),
	"conversation.state": strField(func(e *Env) string { return e.Conversation.State }),

	"text":     strField(func(e *Env) string { return e.Text }),
	"intent":   strField(func(e *Env) string { return e.Intent }),
	"action":   strField(func(e *Env) string { return e.Action }),
	"score":    intField(func(e *Env) int { return e.Score }),
	"tier":     strField(func(e *Env) string { return e.Tier }),
	"team":     strField(func(e *Env) string { return e.Team }),
	"priority": strField(func(e *Env) string { return e.Priority }),
}

// nativeOf builds an expression as a closure; ok is false when it is
// outside the subset.
func nativeOf(n ast.Node) (value, bool) { return native(n) }

func native(n ast.Node) (value, bool) {
	switch n := n.(type) {
	case *ast.BoolNode:
		c := n.Value
		return value{b: func(*Env) bool { return c }}, true
	case *ast.StringNode:
		c := n.Value
		return value{s: func(*Env) string { return c }}, true
	case *ast.IntegerNode:
		c := n.Value
		return value{i: func(*Env) int { return c }}, true
	case *ast.FloatNode:
		c := n.Value
		return value{f: func(*Env) float64 { return c }}, true
	case *ast.IdentifierNode:
		v, ok := nativeFields[n.Value]
		return v, ok
	case *ast.MemberNode:
		return nativeMember(n)
	case *ast.UnaryNode:
		x, ok := native(n.Node)
		switch {
		case !ok:
		case (n.Operator == "!" || n.Operator == "not") && x.b != nil:
			return value{b: func(e *Env) bool { return !x.b(e) }}, true
		case n.Operator == "-" && x.i != nil:
			return value{i: func(e *Env) int { return -x.i(e) }}, true
		}
		return value{}, false
	case *ast.BuiltinNode:
		return nativeMinMax(n)
	case *ast.BinaryNode:
		return nativeBinary(n)
	}
	return value{}, false
}

func nativeMember(n *ast.MemberNode) (value, bool) {
	obj, ok := n.Node.(*ast.IdentifierNode)
	if !ok || n.Optional || n.Method {
		return value{}, false
	}
	switch p := n.Property.(type) {
	case *ast.StringNode:
		v, ok := nativeFields[obj.Value+"."+p.Value]
		return v, ok
	case *ast.IntegerNode:
		k := p.Value
		switch {
		case obj.Value == "__m" && k >= 0 && k < matchSlots:
			return value{b: func(e *Env) bool { return e.M[k] }}, true
		case obj.Value == "__c" && k >= 0 && k < condSlots:
			return value{b: func(e *Env) bool { return e.C[k] }}, true
		case obj.Value == "__f" && k >= 0 && k < fieldSlots:
			return value{s: func(e *Env) string { return e.F[k] }}, true
		}
	}
	return value{}, false
}

func nativeBinary(n *ast.BinaryNode) (value, bool) {
	if n.Operator == "in" {
		return nativeIn(n)
	}
	l, ok1 := native(n.Left)
	r, ok2 := native(n.Right)
	if !ok1 || !ok2 {
		return value{}, false
	}
	switch n.Operator {
	case "&&", "and":
		if l.b != nil && r.b != nil {
			return value{b: func(e *Env) bool { return l.b(e) && r.b(e) }}, true
		}
	case "||", "or":
		if l.b != nil && r.b != nil {
			return value{b: func(e *Env) bool { return l.b(e) || r.b(e) }}, true
		}
	case "==", "!=":
		var eq func(*Env) bool
		switch {
		case l.s != nil && r.s != nil:
			eq = func(e *Env) bool { return l.s(e) == r.s(e) }
		case l.b != nil && r.b != nil:
			eq = func(e *Env) bool { return l.b(e) == r.b(e) }
		case l.i != nil && r.i != nil:
			eq = func(e *Env) bool { return l.i(e) == r.i(e) }
		case l.f != nil && r.f != nil:
			eq = func(e *Env) bool { return l.f(e) == r.f(e) }
		default:
			return value{}, false
		}
		if n.Operator == "!=" {
			return value{b: func(e *Env) bool { return !eq(e) }}, true
		}
		return value{b: eq}, true
	case "<", "<=", ">", ">=":
		switch {
		case l.i != nil && r.i != nil:
			return value{b: compare(n.Operator, l.i, r.i)}, true
		case l.f != nil && r.f != nil:
			return value{b: compare(n.Operator, l.f, r.f)}, true
		case l.s != nil && r.s != nil:
			return value{b: compare(n.Operator, l.s, r.s)}, true
		}
	case "+", "-", "*":
		// Integers only: expr's / gives a float and % can fail, so they stay
		// on the VM.
		if l.i != nil && r.i != nil {
			switch n.Operator {
			case "+":
				return value{i: func(e *Env) int { return l.i(e) + r.i(e) }}, true
			case "-":
				return value{i: func(e *Env) int { return l.i(e) - r.i(e) }}, true
			default:
				return value{i: func(e *Env) int { return l.i(e) * r.i(e) }}, true
			}
		}
	case "contains", "startsWith", "endsWith":
		if l.s != nil && r.s != nil {
			f := strings.Contains
			switch n.Operator {
			case "startsWith":
				f = strings.HasPrefix
			case "endsWith":
				f = strings.HasSuffix
			}
			return value{b: func(e *Env) bool { return f(l.s(e), r.s(e)) }}, true
		}
	}
	return value{}, false
}

func compare[T int | float64 | string](op string, l, r func(*Env) T) func(*Env) bool {
	switch op {
	case "<":
		return func(e *Env) bool { return l(e) < r(e) }
	case "<=":
		return func(e *Env) bool { return l(e) <= r(e) }
	case ">":
		return func(e *Env) bool { return l(e) > r(e) }
	default:
		return func(e *Env) bool { return l(e) >= r(e) }
	}
}

// nativeIn handles `text in ["a", "b"]` and `"vip" in contact.tags`.
func nativeIn(n *ast.BinaryNode) (value, bool) {
	l, ok := native(n.Left)
	if !ok || l.s == nil {
		return value{}, false
	}
	if arr, ok := n.Right.(*ast.ArrayNode); ok {
		set := make([]string, 0, len(arr.Nodes))
		for _, it := range arr.Nodes {
			s, ok := it.(*ast.StringNode)
			if !ok {
				return value{}, false
			}
			set = append(set, s.Value)
		}
		return value{b: func(e *Env) bool {
			x := l.s(e)
			for _, s := range set {
				if s == x {
					return true
				}
			}
			return false
		}}, true
	}
	r, ok := native(n.Right)
	if !ok || r.ss == nil {
		return value{}, false
	}
	return value{b: func(e *Env) bool {
		x := l.s(e)
		for _, s := range r.ss(e) {
			if s == x {
				return true
			}
		}
		return false
	}}, true
}

// nativeMinMax handles min and max of integers.
func nativeMinMax(n *ast.BuiltinNode) (value, bool) {
	if (n.Name != "min" && n.Name != "max") || len(n.Arguments) == 0 {
		return value{}, false
	}
	args := make([]func(*Env) int, len(n.Arguments))
	for i, a := range n.Arguments {
		v, ok := native(a)
		if !ok || v.i == nil {
			return value{}, false
		}
		args[i] = v.i
	}
	isMin := n.Name == "min"
	return value{i: func(e *Env) int {
		m := args[0](e)
		for _, a := range args[1:] {
			if x := a(e); isMin && x < m || !isMin && x > m {
				m = x
			}
		}
		return m
	}}, true
}
