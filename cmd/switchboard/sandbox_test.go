package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The sandbox itself is tested end to end in hub/sandbox; here, what the
// command does with its arguments.
func TestSandboxCommandArguments(t *testing.T) {
	if code, _, errOut := runCLI("sandbox", "--turbo"); code != 2 || !strings.Contains(errOut, "-no-play") {
		t.Errorf("unknown flag: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI("sandbox", "now"); code != 2 || !strings.Contains(errOut, `unexpected argument "now"`) {
		t.Errorf("stray argument: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI("sandbox", "--crm", "salesforce", "--dir", t.TempDir()); code != 1 || !strings.Contains(errOut, "want sql or hubspot") {
		t.Errorf("unknown CRM: exit %d, %s", code, errOut)
	}
	// A directory the sandbox did not make is never wiped.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("sandbox", "--dir", dir, "--plugins", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "was not made by the sandbox") {
		t.Errorf("foreign directory: exit %d, %s", code, errOut)
	}
	if !strings.Contains(out, "Switchboard sandbox") {
		t.Errorf("no banner before the error: %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Errorf("the directory's file is gone: %v", err)
	}
	if code, out, _ := runCLI("--help"); code != 0 || !strings.Contains(out, "switchboard sandbox [--no-play] [--keep] [--dir DIR]") {
		t.Errorf("usage: %d %s", code, out)
	}
}
