package claude

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/anthropics/anthropic-sdk-go"
)

// Where the structured output was found.
const (
	sourceTool = "tool_use"
	sourceJSON = "json"
	sourceData = "data_block"
)

// parsed is the model's answer, decoded and validated.
type parsed struct {
	obj    map[string]any
	source string
	// text is what the model wrote outside the structured output.
	text string
}

var errNoStructured = errors.New("the answer holds no structured output: no tool call, no JSON text, no <data> block")

// parseOutput finds the structured answer in the message: the forced
// tool's input, else the text as JSON (output_config.format), else the last
// <data>{...}</data> block of plain text, for models that ignore both. The
// object is validated against schema; when the schema has a "reply" and the
// model put its reply outside the block, that text is used.
func parseOutput(content []anthropic.ContentBlockUnion, schema *Schema) (*parsed, error) {
	var raw []byte
	source := ""
	var texts []string
	for _, b := range content {
		switch b.Type {
		case "tool_use":
			if raw == nil && b.Name == ToolName {
				raw, source = b.Input, sourceTool
			}
		case "text":
			texts = append(texts, b.Text)
		}
	}
	text := strings.TrimSpace(strings.Join(texts, "\n"))
	return parseText(raw, source, text, schema)
}

func parseText(raw []byte, source, text string, schema *Schema) (*parsed, error) {
	outside := text
	if raw == nil {
		if t := stripFence(text); strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
			raw, source, outside = []byte(t), sourceJSON, ""
		}
	}
	if raw == nil {
		if m := dataBlockRe.FindAllStringSubmatchIndex(text, -1); len(m) > 0 {
			last := m[len(m)-1]
			inner := stripFence(text[last[2]:last[3]])
			raw, source = []byte(inner), sourceData
			outside = strings.TrimSpace(text[:last[0]] + " " + text[last[1]:])
		}
	}
	if raw == nil {
		return &parsed{text: text}, errNoStructured
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return &parsed{text: outside, source: source}, errors.New("the structured output is not a JSON object")
	}
	if dec.More() {
		return &parsed{text: outside, source: source}, errors.New("the structured output has trailing data after the JSON object")
	}
	outside = cleanReply(outside)
	if _, has := obj["reply"]; !has && schema.hasReply && outside != "" {
		obj["reply"] = outside
	}
	p := &parsed{obj: obj, source: source, text: outside}
	if err := schema.Validate(obj); err != nil {
		return p, err
	}
	return p, nil
}

// stripFence removes a ```json … ``` fence some models wrap JSON in.
func stripFence(s string) string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "```") {
		return s
	}
	s = strings.TrimPrefix(s, "```")
	if i := strings.IndexByte(s, '\n'); i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[:i]), "{") {
		s = s[i+1:]
	}
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "```"))
}
