package claude

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
)

func TestSchemaValidate(t *testing.T) {
	schema := `{"type":"object","additionalProperties":false,"required":["a"],
		"$defs":{"tag":{"type":"string","pattern":"^[a-z]+$"}},
		"properties":{
			"a":{"type":"string","minLength":1,"maxLength":5},
			"n":{"type":["integer","null"],"minimum":0,"maximum":10},
			"x":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1},
			"e":{"enum":["red","green",1]},
			"c":{"const":"fixed"},
			"any":{"anyOf":[{"type":"boolean"},{"type":"null"}]},
			"one":{"oneOf":[{"type":"integer"},{"type":"number","minimum":5}]},
			"all":{"allOf":[{"type":"string"},{"minLength":2}]},
			"tags":{"type":"array","items":{"$ref":"#/$defs/tag"},"minItems":1,"maxItems":2},
			"obj":{"type":"object","additionalProperties":{"type":"integer"}}
		}}`
	s, err := CompileSchema(json.RawMessage(schema))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		doc  string
		want string // "" = valid, else a substring of the error
	}{
		{`{"a":"x"}`, ""},
		{`{"a":"x","n":null,"x":0.5,"e":1,"c":"fixed","any":true,"one":3,"all":"ab","tags":["ok"],"obj":{"k":1}}`, ""},
		{`{}`, `missing required property "a"`},
		{`{"a":""}`, "at least 1 characters"},
		{`{"a":"toolong"}`, "at most 5 characters"},
		{`{"a":"x","zz":1}`, `property "zz" is not allowed`},
		{`{"a":"x","n":1.5}`, "want integer or null"},
		{`{"a":"x","n":11}`, "above the maximum"},
		{`{"a":"x","x":1}`, "must be below"},
		{`{"a":"x","x":0}`, "must be above"},
		{`{"a":"x","e":"blue"}`, "not one of the allowed values"},
		{`{"a":"x","c":"other"}`, "not the required constant"},
		{`{"a":"x","any":"yes"}`, "none of the allowed shapes"},
		{`{"a":"x","one":7}`, "exactly one shape"},
		{`{"a":"x","all":"a"}`, "at least 2 characters"},
		{`{"a":"x","tags":[]}`, "at least 1 items"},
		{`{"a":"x","tags":["a","b","c"]}`, "at most 2 items"},
		{`{"a":"x","tags":["A"]}`, "/tags/0: does not match pattern"},
		{`{"a":"x","obj":{"k":"v"}}`, "/obj/k: want integer"},
		{`[]`, "want object"},
	}
	for _, tt := range tests {
		err := s.ValidateJSON([]byte(tt.doc))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.doc, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: got %v, want %q", tt.doc, err, tt.want)
		}
	}
	// Errors never echo values: they may come from customer text.
	err = s.ValidateJSON([]byte(`{"a":"x","e":"secret customer words"}`))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error echoes the value: %v", err)
	}
}

func TestCompileSchemaErrors(t *testing.T) {
	for _, bad := range []string{
		`not json`, `{"type":"array"}`, `{"type":"object","properties":{"a":{"type":"strin"}}}`,
		`{"type":"object","properties":{"a":{"$ref":"https://example.com/s.json"}}}`,
		`{"type":"object","properties":{"a":{"type":"string","pattern":"("}}}`,
	} {
		if _, err := CompileSchema(json.RawMessage(bad)); err == nil {
			t.Errorf("CompileSchema(%s) accepted it", bad)
		}
	}
}

func TestSchemaRecursiveRef(t *testing.T) {
	s, err := CompileSchema(json.RawMessage(`{"type":"object","$ref":"#/$defs/node","$defs":{"node":{"type":"object",
		"properties":{"children":{"type":"array","items":{"$ref":"#/$defs/node"}},"v":{"type":"integer"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ValidateJSON([]byte(`{"children":[{"children":[{"v":"x"}]}]}`)); err == nil || !strings.Contains(err.Error(), "/children/0/children/0/v") {
		t.Errorf("recursive ref: %v", err)
	}
}

func TestWireSchemaTypeListBecomesAnyOf(t *testing.T) {
	got := wireSchema(map[string]any{"type": "object", "properties": map[string]any{
		"n": map[string]any{"type": []any{"integer", "null"}, "minimum": 0},
	}})
	b, _ := json.Marshal(got)
	want := `{"additionalProperties":false,"properties":{"n":{"anyOf":[{"type":"integer"},{"type":"null"}],"description":"{minimum: 0}"}},"type":"object"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestParseOutput(t *testing.T) {
	s, _ := CompileSchema(LeadFactsSchema())
	valid := string(mustJSONBytes(facts("Dạ vâng ạ.")))
	noReply := facts("")
	delete(noReply, "reply")
	tool := func(input string) anthropic.ContentBlockUnion {
		return anthropic.ContentBlockUnion{Type: "tool_use", Name: ToolName, Input: json.RawMessage(input)}
	}
	text := func(s string) anthropic.ContentBlockUnion { return anthropic.ContentBlockUnion{Type: "text", Text: s} }
	tests := []struct {
		name      string
		content   []anthropic.ContentBlockUnion
		source    string
		reply     string
		wantError bool
	}{
		{"tool input", []anthropic.ContentBlockUnion{tool(valid)}, sourceTool, "Dạ vâng ạ.", false},
		{"another tool is ignored", []anthropic.ContentBlockUnion{{Type: "tool_use", Name: "other", Input: json.RawMessage(valid)}}, "", "", true},
		{"json text", []anthropic.ContentBlockUnion{text(valid)}, sourceJSON, "Dạ vâng ạ.", false},
		{"fenced json", []anthropic.ContentBlockUnion{text("```json\n" + valid + "\n```")}, sourceJSON, "Dạ vâng ạ.", false},
		{"data block with reply outside", []anthropic.ContentBlockUnion{text("Chào anh!\n<data>" + string(mustJSONBytes(noReply)) + "</data>")}, sourceData, "Chào anh!", false},
		{"last data block wins", []anthropic.ContentBlockUnion{text(`<data>{"x":1}</data> hi <data>` + valid + `</data>`)}, sourceData, "Dạ vâng ạ.", false},
		{"no structured output", []anthropic.ContentBlockUnion{text("Chào anh!")}, "", "", true},
		{"invalid json in data", []anthropic.ContentBlockUnion{text("<data>{nope}</data>")}, sourceData, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseOutput(tt.content, s)
			if (err != nil) != tt.wantError {
				t.Fatalf("err %v, want error %v", err, tt.wantError)
			}
			if p.source != tt.source {
				t.Errorf("source %q, want %q", p.source, tt.source)
			}
			if !tt.wantError && p.obj["reply"] != tt.reply {
				t.Errorf("reply %q, want %q", p.obj["reply"], tt.reply)
			}
		})
	}
}
