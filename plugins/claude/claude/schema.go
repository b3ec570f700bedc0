package claude

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

//go:embed lead_facts.schema.json
var leadFactsSchema []byte

// LeadFactsSchema is the built-in output schema, used when a request
// carries none: the reply text, intent, BANT facts, the model's lead
// estimate, the suggested action and a confidence.
func LeadFactsSchema() json.RawMessage { return bytes.Clone(leadFactsSchema) }

// Schema is a compiled JSON schema. It validates the subset of JSON Schema
// that structured outputs use: type (one or a list), enum, const,
// properties, required, additionalProperties, items, anyOf/oneOf/allOf,
// local $ref into $defs/definitions, numeric bounds, string and array
// lengths and pattern. Other keywords (format, titles, descriptions) are
// accepted and ignored.
type Schema struct {
	root *node
	raw  json.RawMessage
	// wire is the schema as sent to the API for output_config.format.
	wire map[string]any
	// object is the raw schema decoded, as sent for a forced tool.
	object map[string]any
	// hasReply says the schema has a string "reply" property, the text
	// for the customer.
	hasReply bool
}

type node struct {
	types       []string
	enum        []any
	constVal    any
	hasConst    bool
	props       map[string]*node
	required    []string
	addlFalse   bool
	addl        *node
	items       *node
	anyOf       []*node
	oneOf       []*node
	allOf       []*node
	min, max    *float64
	exMin       *float64
	exMax       *float64
	minLen      *int
	maxLen      *int
	minItems    *int
	maxItems    *int
	pattern     *regexp.Regexp
	ref         string
	refResolved *node
}

var (
	schemaCache sync.Map // string(raw) → *Schema; schemas are few and reused
	schemaCount atomic.Int64
)

// maxCachedSchemas bounds the cache against a caller that sends a new
// schema on every call.
const maxCachedSchemas = 64

// CompileSchema parses and compiles raw. Compiled schemas are cached by
// content, so a hub sending the same schema on every call compiles it once.
func CompileSchema(raw json.RawMessage) (*Schema, error) {
	key := string(raw)
	if s, ok := schemaCache.Load(key); ok {
		return s.(*Schema), nil
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if t, _ := m["type"].(string); t != "object" {
		return nil, errors.New("schema: the root must be of type object")
	}
	defs := map[string]*node{}
	c := compiler{defs: defs, rawDefs: map[string]map[string]any{}}
	for _, key := range []string{"$defs", "definitions"} {
		if dm, ok := m[key].(map[string]any); ok {
			for name, d := range dm {
				if dd, ok := d.(map[string]any); ok {
					c.rawDefs["#/"+key+"/"+name] = dd
				}
			}
		}
	}
	root, err := c.compile(m, "")
	if err != nil {
		return nil, err
	}
	if err := c.resolve(); err != nil {
		return nil, err
	}
	s := &Schema{root: root, raw: bytes.Clone(raw), object: jsonNumbersToFloat(m).(map[string]any)}
	s.wire = wireSchema(s.object)
	if p := root.props["reply"]; p != nil && len(p.types) == 1 && p.types[0] == "string" {
		s.hasReply = true
	}
	if schemaCount.Load() >= maxCachedSchemas {
		return s, nil
	}
	actual, loaded := schemaCache.LoadOrStore(key, s)
	if !loaded {
		schemaCount.Add(1)
	}
	return actual.(*Schema), nil
}

type compiler struct {
	defs    map[string]*node
	rawDefs map[string]map[string]any
	refs    []*node
}

func (c *compiler) compile(m map[string]any, path string) (*node, error) {
	n := &node{}
	switch t := m["type"].(type) {
	case string:
		n.types = []string{t}
	case []any:
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("schema %s: type list must hold strings", pathOr(path))
			}
			n.types = append(n.types, s)
		}
	case nil:
	default:
		return nil, fmt.Errorf("schema %s: bad type", pathOr(path))
	}
	for _, t := range n.types {
		switch t {
		case "object", "array", "string", "number", "integer", "boolean", "null":
		default:
			return nil, fmt.Errorf("schema %s: unknown type %q", pathOr(path), t)
		}
	}
	if e, ok := m["enum"].([]any); ok {
		for _, v := range e {
			n.enum = append(n.enum, normNumber(v))
		}
	}
	if v, ok := m["const"]; ok {
		n.constVal, n.hasConst = normNumber(v), true
	}
	if r, ok := m["$ref"].(string); ok {
		n.ref = r
		c.refs = append(c.refs, n)
	}
	if props, ok := m["properties"].(map[string]any); ok {
		n.props = map[string]*node{}
		for name, p := range props {
			pm, ok := p.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("schema %s: property %q is not a schema", pathOr(path), name)
			}
			sub, err := c.compile(pm, path+"/"+name)
			if err != nil {
				return nil, err
			}
			n.props[name] = sub
		}
	}
	if req, ok := m["required"].([]any); ok {
		for _, r := range req {
			if s, ok := r.(string); ok {
				n.required = append(n.required, s)
			}
		}
	}
	switch a := m["additionalProperties"].(type) {
	case bool:
		n.addlFalse = !a
	case map[string]any:
		sub, err := c.compile(a, path+"/additionalProperties")
		if err != nil {
			return nil, err
		}
		n.addl = sub
	}
	if it, ok := m["items"].(map[string]any); ok {
		sub, err := c.compile(it, path+"/items")
		if err != nil {
			return nil, err
		}
		n.items = sub
	}
	for key, dst := range map[string]*[]*node{"anyOf": &n.anyOf, "oneOf": &n.oneOf, "allOf": &n.allOf} {
		if list, ok := m[key].([]any); ok {
			for i, alt := range list {
				am, ok := alt.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("schema %s: %s[%d] is not a schema", pathOr(path), key, i)
				}
				sub, err := c.compile(am, fmt.Sprintf("%s/%s/%d", path, key, i))
				if err != nil {
					return nil, err
				}
				*dst = append(*dst, sub)
			}
		}
	}
	n.min, n.max = numField(m, "minimum"), numField(m, "maximum")
	n.exMin, n.exMax = numField(m, "exclusiveMinimum"), numField(m, "exclusiveMaximum")
	n.minLen, n.maxLen = intField(m, "minLength"), intField(m, "maxLength")
	n.minItems, n.maxItems = intField(m, "minItems"), intField(m, "maxItems")
	if p, ok := m["pattern"].(string); ok {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("schema %s: pattern: %w", pathOr(path), err)
		}
		n.pattern = re
	}
	return n, nil
}

// resolve links $ref nodes to their definitions; definitions compile on
// first use, and a definition referring to itself works through the
// shared pointer.
func (c *compiler) resolve() error {
	for i := 0; i < len(c.refs); i++ {
		n := c.refs[i]
		target, ok := c.defs[n.ref]
		if !ok {
			raw, ok := c.rawDefs[n.ref]
			if !ok {
				return fmt.Errorf("schema: $ref %q: only local refs into $defs or definitions are supported", n.ref)
			}
			target = &node{}
			c.defs[n.ref] = target
			compiled, err := c.compile(raw, n.ref)
			if err != nil {
				return err
			}
			*target = *compiled
		}
		n.refResolved = target
	}
	return nil
}

func pathOr(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

func numField(m map[string]any, k string) *float64 {
	if v, ok := m[k].(json.Number); ok {
		f, err := v.Float64()
		if err == nil {
			return &f
		}
	}
	return nil
}

func intField(m map[string]any, k string) *int {
	if f := numField(m, k); f != nil {
		i := int(*f)
		return &i
	}
	return nil
}

// normNumber turns json.Number into float64 so enum and const compare with
// decoded values.
func normNumber(v any) any {
	if n, ok := v.(json.Number); ok {
		f, _ := n.Float64()
		return f
	}
	return v
}

func jsonNumbersToFloat(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonNumbersToFloat(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonNumbersToFloat(e)
		}
		return out
	}
	return v
}

// ValidationError lists what is wrong with a value, by JSON pointer. It
// names paths and types only, never values: output can echo customer text,
// and these messages reach logs.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	const show = 5
	ps := e.Problems
	more := ""
	if len(ps) > show {
		more = fmt.Sprintf(" (and %d more)", len(ps)-show)
		ps = ps[:show]
	}
	return "output does not match the schema: " + strings.Join(ps, "; ") + more
}

// Validate checks v (as decoded by encoding/json into any) against s.
func (s *Schema) Validate(v any) error {
	var probs []string
	s.root.validate(v, "", &probs)
	if len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	return nil
}

// ValidateJSON decodes raw and validates it.
func (s *Schema) ValidateJSON(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("output is not JSON: %w", err)
	}
	return s.Validate(v)
}

func (n *node) validate(v any, path string, probs *[]string) {
	if len(*probs) > 20 {
		return
	}
	bad := func(format string, args ...any) {
		*probs = append(*probs, pathOr(path)+": "+fmt.Sprintf(format, args...))
	}
	if n.refResolved != nil {
		n.refResolved.validate(v, path, probs)
	}
	if len(n.types) > 0 && !typeMatches(v, n.types) {
		bad("want %s, got %s", strings.Join(n.types, " or "), typeName(v))
		return
	}
	if n.enum != nil && !containsValue(n.enum, v) {
		bad("%s value is not one of the allowed values", typeName(v))
	}
	if n.hasConst && !equalValue(n.constVal, v) {
		bad("%s value is not the required constant", typeName(v))
	}
	for _, sub := range n.allOf {
		sub.validate(v, path, probs)
	}
	if len(n.anyOf) > 0 {
		ok := false
		for _, alt := range n.anyOf {
			var p []string
			alt.validate(v, path, &p)
			if len(p) == 0 {
				ok = true
				break
			}
		}
		if !ok {
			bad("%s value matches none of the allowed shapes", typeName(v))
		}
	}
	if len(n.oneOf) > 0 {
		matches := 0
		for _, alt := range n.oneOf {
			var p []string
			alt.validate(v, path, &p)
			if len(p) == 0 {
				matches++
			}
		}
		if matches != 1 {
			bad("%s value must match exactly one shape, matches %d", typeName(v), matches)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for _, r := range n.required {
			if _, ok := x[r]; !ok {
				bad("missing required property %q", r)
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub := n.props[k]
			switch {
			case sub != nil:
				sub.validate(x[k], path+"/"+k, probs)
			case n.addl != nil:
				n.addl.validate(x[k], path+"/"+k, probs)
			case n.addlFalse:
				bad("property %q is not allowed", k)
			}
		}
	case []any:
		if n.minItems != nil && len(x) < *n.minItems {
			bad("want at least %d items", *n.minItems)
		}
		if n.maxItems != nil && len(x) > *n.maxItems {
			bad("want at most %d items", *n.maxItems)
		}
		if n.items != nil {
			for i, e := range x {
				n.items.validate(e, fmt.Sprintf("%s/%d", path, i), probs)
			}
		}
	case string:
		l := utf8.RuneCountInString(x)
		if n.minLen != nil && l < *n.minLen {
			bad("want at least %d characters", *n.minLen)
		}
		if n.maxLen != nil && l > *n.maxLen {
			bad("want at most %d characters", *n.maxLen)
		}
		if n.pattern != nil && !n.pattern.MatchString(x) {
			bad("does not match pattern %s", n.pattern)
		}
	case float64:
		if n.min != nil && x < *n.min {
			bad("%v is below the minimum %v", x, *n.min)
		}
		if n.max != nil && x > *n.max {
			bad("%v is above the maximum %v", x, *n.max)
		}
		if n.exMin != nil && x <= *n.exMin {
			bad("%v must be above %v", x, *n.exMin)
		}
		if n.exMax != nil && x >= *n.exMax {
			bad("%v must be below %v", x, *n.exMax)
		}
	}
}

func typeMatches(v any, types []string) bool {
	for _, t := range types {
		switch x := v.(type) {
		case nil:
			if t == "null" {
				return true
			}
		case bool:
			if t == "boolean" {
				return true
			}
		case string:
			if t == "string" {
				return true
			}
		case float64:
			if t == "number" || t == "integer" && x == math.Trunc(x) && !math.IsInf(x, 0) {
				return true
			}
		case map[string]any:
			if t == "object" {
				return true
			}
		case []any:
			if t == "array" {
				return true
			}
		}
	}
	return false
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		return "number"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

func containsValue(list []any, v any) bool {
	for _, e := range list {
		if equalValue(e, v) {
			return true
		}
	}
	return false
}

func equalValue(a, b any) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return bytes.Equal(ab, bb)
}

// unsupportedWire are keywords structured outputs reject (400 "property
// 'minimum' is not supported"); they move into the description, where the
// model still reads them, and the plugin enforces them after the call.
var unsupportedWire = []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
	"minLength", "maxLength", "maxItems", "uniqueItems", "minProperties", "maxProperties"}

// wireSchema rewrites a schema for output_config.format: unsupported
// bounds become description text, type lists become anyOf, and every
// object closes with additionalProperties false, as the API requires.
func wireSchema(in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	var notes []string
	for k, v := range in {
		switch {
		case isUnsupportedWire(k):
			b, _ := json.Marshal(v)
			notes = append(notes, k+": "+string(b))
		case k == "properties":
			props := map[string]any{}
			if pm, ok := v.(map[string]any); ok {
				for name, p := range pm {
					if sub, ok := p.(map[string]any); ok {
						props[name] = wireSchema(sub)
					} else {
						props[name] = p
					}
				}
			}
			out[k] = props
		case k == "items" || k == "additionalProperties":
			if sub, ok := v.(map[string]any); ok {
				out[k] = wireSchema(sub)
			} else {
				out[k] = v
			}
		case k == "anyOf" || k == "allOf" || k == "oneOf" || k == "$defs" || k == "definitions":
			out[k] = wireList(v)
		default:
			out[k] = v
		}
	}
	if oneOf, ok := out["oneOf"]; ok {
		if _, has := out["anyOf"]; !has {
			out["anyOf"] = oneOf
		}
		delete(out, "oneOf")
	}
	if list, ok := out["type"].([]any); ok {
		delete(out, "type")
		var alts []any
		for _, t := range list {
			alt := map[string]any{"type": t}
			if t == "object" {
				for _, k := range []string{"properties", "required", "additionalProperties"} {
					if v, ok := out[k]; ok {
						alt[k] = v
						delete(out, k)
					}
				}
			}
			if t == "array" {
				if v, ok := out["items"]; ok {
					alt["items"] = v
					delete(out, "items")
				}
			}
			alts = append(alts, wireSchema(alt))
		}
		out["anyOf"] = alts
	}
	if out["type"] == "object" {
		if _, ok := out["properties"]; !ok {
			out["properties"] = map[string]any{}
		}
		out["additionalProperties"] = false
	}
	if len(notes) > 0 {
		sort.Strings(notes)
		d, _ := out["description"].(string)
		extra := "{" + strings.Join(notes, ", ") + "}"
		if d != "" {
			d += " "
		}
		out["description"] = d + extra
	}
	return out
}

func wireList(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			if sub, ok := e.(map[string]any); ok {
				out[i] = wireSchema(sub)
			} else {
				out[i] = e
			}
		}
		return out
	case map[string]any: // $defs
		out := make(map[string]any, len(x))
		for k, e := range x {
			if sub, ok := e.(map[string]any); ok {
				out[k] = wireSchema(sub)
			} else {
				out[k] = e
			}
		}
		return out
	}
	return v
}

func isUnsupportedWire(k string) bool {
	for _, u := range unsupportedWire {
		if k == u {
			return true
		}
	}
	return false
}
