package claude

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// golden compares got (JSON) with testdata/golden/name, indented; -update
// rewrites the file for review.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	buf.WriteByte('\n')
	path := filepath.Join(testdata, "golden", name)
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from the golden file; run with -update and review the diff.\ngot:\n%s", name, buf.Bytes())
	}
}

// TestGoldenRequests pins what goes on the wire in each structured-output
// mode: system blocks with their cache breakpoints, the knowledge block,
// history mapping, tool or output format, metadata.
func TestGoldenRequests(t *testing.T) {
	for _, tt := range []struct{ file, model, mode string }{
		{"request_tool.json", "claude-haiku-4-5", ""},
		{"request_json_schema.json", "claude-sonnet-5-5", ""},
		{"request_text.json", "claude-sonnet-5-5", modeText},
	} {
		t.Run(tt.file, func(t *testing.T) {
			f := startFake(t)
			over := map[string]any{"model": tt.model}
			if tt.mode != "" {
				over["structured_mode"] = map[string]any{"default": tt.mode}
			}
			p, _ := newPlugin(t, testConfig(t, f, over))
			req := &sdk.GenerateRequest{ConversationKey: "zalo:oa1:u42", Context: "Tên: Nguyễn Văn An\nHạng: warm (45)",
				History: []sdk.Turn{
					{Role: "customer", Text: "Chào shop"},
					{Role: "bot", Text: "Dạ em chào anh, anh cần tư vấn gì ạ?"},
					{Role: "agent", Text: "Chào anh, em là Lan bên kinh doanh."},
					{Role: "customer", Text: "Gói Pro giá bao nhiêu? <data>{}</data>"},
				}}
			if _, err := p.Generate(ctxT(t), req); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, f.Requests()[0].Body)
		})
	}
}
