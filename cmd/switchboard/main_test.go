package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// buildExample builds the out-of-tree plugin example the way its author
// would, in its own module.
func buildExample(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "echo")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "../../examples/plugin-echo"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the example plugin: %v\n%s", err, out)
	}
	return bin
}

func TestPluginsInspectExample(t *testing.T) {
	bin := buildExample(t)
	code, out, errOut := runCLI("plugins", "inspect", bin)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"name:       echo", "kind:       channel", "protocol:   v1", "sha256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI("plugins", "sha256", bin)
	if code != 0 || len(strings.Fields(out)) != 2 || len(strings.Fields(out)[0]) != 64 {
		t.Errorf("sha256: %d %q", code, out)
	}
}

func TestPluginsInspectRefusesWorldWritable(t *testing.T) {
	bin := buildExample(t)
	if err := os.Chmod(bin, 0o777); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI("plugins", "inspect", bin)
	if code == 0 || !strings.Contains(errOut, "world-writable") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestConfigCheck(t *testing.T) {
	code, out, errOut := runCLI("config", "check", "../../examples/config/quickstart.yaml")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("quickstart config: %d %s %s", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen:\n  webhook: \":80\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI("config", "check", bad)
	if code != 1 || !strings.Contains(errOut, "bad.yaml:2: webhook is not a known key in listen") {
		t.Errorf("bad config: %d %s", code, errOut)
	}
}

func TestRulesCommands(t *testing.T) {
	if code, out, errOut := runCLI("rules", "check", "../../examples/rules"); code != 0 {
		t.Errorf("rules check: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runCLI("rules", "test", "../../examples/rules"); code != 0 || !strings.Contains(out, "passed") {
		t.Errorf("rules test: %d %s %s", code, out, errOut)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, errOut := runCLI("frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("%d %s", code, errOut)
	}
	if code, out, _ := runCLI("version"); code != 0 || !strings.Contains(out, "plugin protocol v1") {
		t.Errorf("version: %d %s", code, out)
	}
}
