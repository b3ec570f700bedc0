package pluginhost_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/pluginhost"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// A developer runs a plugin under a debugger with its `debug` subcommand;
// the hub attaches to that process instead of launching one, and leaves it
// running when it stops.
func TestDebugReattach(t *testing.T) {
	ch, _, _ := bins(t)
	cmd := exec.Command(ch, "debug", "dbg")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	var reattach string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, sdk.ReattachEnv+"='"); ok {
			reattach = rest[:strings.Index(rest, "'")]
			break
		}
	}
	var info map[string]sdk.ReattachInfo
	if err := json.Unmarshal([]byte(reattach), &info); err != nil || info["dbg"].Pid != cmd.Process.Pid {
		t.Fatalf("debug printed %q (%v)", reattach, err)
	}
	t.Setenv(sdk.ReattachEnv, reattach)
	m := pluginhost.New(pluginhost.Options{})
	if err := m.Start(context.Background(), []pluginhost.Spec{{Name: "dbg", Kind: sdk.KindChannel, Path: "/not/used/in/debug",
		Config: json.RawMessage(`{"secret":"s"}`)}}); err != nil {
		t.Fatal(err)
	}
	c, _ := m.Channel("dbg")
	if _, err := c.Send(ctx(t), &sdk.Outbound{Text: "hello", To: sdk.Identity{UserID: "u"}}); err != nil {
		t.Fatalf("call through the attached plugin: %v", err)
	}
	if s := m.Get("dbg").Status(); !s.Debug || s.State != pluginhost.StateRunning {
		t.Errorf("status %+v", s)
	}
	m.Stop()
	// The developer's process is still there after the hub stopped.
	if !alive(cmd.Process.Pid) {
		t.Error("stopping the hub killed the plugin the developer started")
	}
}
