package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// srcFile is one file of the rule set.
type srcFile struct {
	path  string // as opened (dir joined), for problems
	rel   string // relative to the rules directory, for firings
	data  []byte
	lines []string
}

// decoder walks yaml.v3 nodes by hand rather than decoding into structs, so
// that every value keeps its line and column for error messages, and so that
// unknown keys are refused with a suggestion (KnownFields, with positions).
type decoder struct {
	f     *srcFile
	probs *[]Problem
}

func (d *decoder) errf(n *yaml.Node, format string, a ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	*d.probs = append(*d.probs, Problem{File: d.f.path, Line: line, Col: col, Msg: fmt.Sprintf(format, a...)})
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// field is a key and its value.
type field struct {
	key, val *yaml.Node
}

// fields returns the pairs of mapping n, reporting unknown and repeated keys.
// what names the mapping in messages ("scoring rule \"x\"").
func (d *decoder) fields(n *yaml.Node, what string, known ...string) (map[string]field, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		d.errf(n, "%s must be a mapping (key: value lines)%s", what, kindHint(n))
		return nil, false
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errf(k, "%s: keys must be plain names", what)
			continue
		}
		if len(known) > 0 && !contains(known, k.Value) {
			d.errf(k, "unknown field %q in %s%s (known fields: %s)", k.Value, what, didYouMean(k.Value, known), strings.Join(known, ", "))
			continue
		}
		if prev, dup := out[k.Value]; dup {
			d.errf(k, "%s: %q is given twice (first at line %d)", what, k.Value, prev.key.Line)
			continue
		}
		out[k.Value] = field{k, v}
	}
	return out, true
}

// pairs returns the pairs of mapping n in order, for maps keyed by names the
// author chooses (teams, tiers, conditions).
func (d *decoder) pairs(n *yaml.Node, what string) []field {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		d.errf(n, "%s must be a mapping of names to definitions%s", what, kindHint(n))
		return nil
	}
	var out []field
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			d.errf(k, "%s: keys must be plain names", what)
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errf(k, "%s: %q is given twice (first at line %d)", what, k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, field{k, n.Content[i+1]})
	}
	return out
}

func (d *decoder) seq(n *yaml.Node, what string) []*yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		d.errf(n, "%s must be a list (lines starting with -)%s", what, kindHint(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = resolve(c)
	}
	return out
}

func kindHint(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return ", not empty"
		}
		return fmt.Sprintf(", not the value %q", n.Value)
	case yaml.SequenceNode:
		return ", not a list"
	case yaml.MappingNode:
		return ", not a mapping"
	}
	return ""
}

func (d *decoder) str(n *yaml.Node, what string) (string, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		d.errf(n, "%s must be a single value%s", what, kindHint(n))
		return "", false
	}
	if n.Tag == "!!null" || strings.TrimSpace(n.Value) == "" {
		d.errf(n, "%s is empty", what)
		return "", false
	}
	return n.Value, true
}

func (d *decoder) integer(n *yaml.Node, what string) (int, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errf(n, "%s must be a whole number%s", what, kindHint(n))
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		d.errf(n, "%s: %v", what, err)
		return 0, false
	}
	return v, true
}

func (d *decoder) boolean(n *yaml.Node, what string) (bool, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errf(n, "%s must be true or false%s", what, kindHint(n))
		return false, false
	}
	return n.Value == "true" || n.Value == "True" || n.Value == "TRUE", true
}

func (d *decoder) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := d.str(n, what)
	if !ok {
		return 0, false
	}
	v, err := parseDuration(s)
	if err != nil || v <= 0 {
		d.errf(resolve(n), "%s: %q is not a positive duration (such as 90s, 15m, 2h, 1d)", what, s)
		return 0, false
	}
	return v, true
}

// parseDuration is time.ParseDuration plus whole days ("1d", "2d12h").
func parseDuration(s string) (time.Duration, error) {
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, err
		}
		rest := time.Duration(0)
		if s[i+1:] != "" {
			if rest, err = time.ParseDuration(s[i+1:]); err != nil {
				return 0, err
			}
		}
		return time.Duration(days)*24*time.Hour + rest, nil
	}
	return time.ParseDuration(s)
}

// strList accepts one value or a list of values.
func (d *decoder) strList(n *yaml.Node, what string) ([]string, bool) {
	n = resolve(n)
	if n != nil && n.Kind == yaml.ScalarNode {
		s, ok := d.str(n, what)
		if !ok {
			return nil, false
		}
		return []string{s}, true
	}
	items := d.seq(n, what)
	if items == nil {
		return nil, false
	}
	out := make([]string, 0, len(items))
	ok := true
	for _, it := range items {
		s, good := d.str(it, what+" item")
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
