package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Module is the Switchboard module path; FindRoot looks for its go.mod.
const Module = "github.com/switchboard-hub/switchboard"

// Plugins are the plugin binaries the sandbox's config runs, by the
// directory under plugins/ that builds each.
var Plugins = []string{"zalo", "whatsapp", "claude", "postgrescrm", "hubspot"}

// FindRoot finds the Switchboard checkout: upwards from the working
// directory, then from the running executable (bin/switchboard).
func FindRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			starts = append(starts, filepath.Dir(exe))
		}
	}
	for _, dir := range starts {
		for {
			if isRoot(dir) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("the sandbox runs from a Switchboard checkout (it reads examples/ and builds plugins/): " +
		"run it inside one, or pass --repo DIR")
}

func isRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			if strings.TrimSpace(strings.TrimPrefix(line, "module ")) != Module {
				return false
			}
			_, err := os.Stat(filepath.Join(dir, "examples", "config", "sandbox.yaml"))
			return err == nil
		}
	}
	return false
}

// EnsurePlugins builds the plugin binaries missing from dir with the Go
// toolchain (`go build` in root, as `make build` does), reporting each
// through progress. Binaries already there are used as they are.
func EnsurePlugins(ctx context.Context, root, dir string, progress func(string)) error {
	var missing []string
	for _, p := range Plugins {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("plugin binaries missing from %s: %s; building them needs the Go toolchain (1.26), which is not on PATH.\n"+
			"Install Go from https://go.dev/dl/ and run `make build`, or copy prebuilt binaries into %s",
			dir, strings.Join(missing, ", "), dir)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for _, p := range missing {
		progress(fmt.Sprintf("building plugin %s (go build ./plugins/%s)", p, p))
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", filepath.Join(dir, p), "./plugins/"+p)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./plugins/%s: %v\n%s", p, err, out)
		}
	}
	return nil
}
