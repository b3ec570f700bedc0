// Package testkit runs plugin implementations over real gRPC, in-process or
// as real subprocesses, and holds the conformance suites any plugin author
// can run against their plugin:
//
//	func TestConformance(t *testing.T) {
//		testkit.RunChannelSuite(t, func(t *testing.T) *sdk.RemoteChannel {
//			return testkit.StartChannel(t, mychannel.New())
//		}, testkit.ChannelFixture{...})
//	}
//
// Like the SDK, it imports nothing from the hub.
package testkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// StartChannel serves impl in-process over a real gRPC connection, with the
// same conversions and error mapping as a subprocess, and returns the host's
// handle. Everything is torn down at t.Cleanup.
func StartChannel(t testing.TB, impl sdk.Channel) *sdk.RemoteChannel {
	return startInProcess(t, sdk.KindChannel, impl).(*sdk.RemoteChannel)
}

// StartCRM is StartChannel for a CRM.
func StartCRM(t testing.TB, impl sdk.CRM) *sdk.RemoteCRM {
	return startInProcess(t, sdk.KindCRM, impl).(*sdk.RemoteCRM)
}

// StartLLM is StartChannel for an LLM.
func StartLLM(t testing.TB, impl sdk.LLM) *sdk.RemoteLLM {
	return startInProcess(t, sdk.KindLLM, impl).(*sdk.RemoteLLM)
}

func startInProcess(t testing.TB, kind sdk.Kind, impl sdk.Plugin) any {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rc, closed, err := sdk.ServeInProcess(ctx, kind, impl, hclog.NewNullLogger())
	if err != nil {
		cancel()
		t.Fatalf("testkit: serve %s in-process: %v", kind, err)
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: sdk.Handshake,
		// A reattached client takes Plugins, not VersionedPlugins.
		Plugins:          sdk.HostPluginSets()[rc.ProtocolVersion],
		Reattach:         rc,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
		GRPCDialOptions:  dialOptions(),
	})
	t.Cleanup(func() {
		client.Kill()
		cancel()
		<-closed
	})
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("testkit: connect to in-process %s: %v", kind, err)
	}
	raw, err := rpc.Dispense(string(kind))
	if err != nil {
		t.Fatalf("testkit: dispense %s: %v", kind, err)
	}
	return raw
}

func dialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize))}
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// BuildPlugin builds the main package pkg (an import path, or a path
// relative to the current directory starting with ./ or ../) once per test
// process and returns the binary's path.
func BuildPlugin(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "sbplugins-")
		if err != nil {
			t.Fatalf("testkit: %v", err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = os.Environ()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testkit: go build %s: %v\n%s", pkg, err, b)
	}
	buildCache[pkg] = out
	return out
}

// LaunchChannel starts binary as a real subprocess through go-plugin, with
// the hub's hardening (AutoMTLS, no inherited environment), and returns the
// host's handle. The process is killed at t.Cleanup.
func LaunchChannel(t testing.TB, binary string) *sdk.RemoteChannel {
	return launch(t, binary, sdk.KindChannel).(*sdk.RemoteChannel)
}

// LaunchCRM is LaunchChannel for a CRM.
func LaunchCRM(t testing.TB, binary string) *sdk.RemoteCRM {
	return launch(t, binary, sdk.KindCRM).(*sdk.RemoteCRM)
}

// LaunchLLM is LaunchChannel for an LLM.
func LaunchLLM(t testing.TB, binary string) *sdk.RemoteLLM {
	return launch(t, binary, sdk.KindLLM).(*sdk.RemoteLLM)
}

func launch(t testing.TB, binary string, kind sdk.Kind) any {
	t.Helper()
	raw, client, err := Launch(binary, kind, nil, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("testkit: launch %s: %v", binary, err)
	}
	t.Cleanup(client.Kill)
	return raw
}

// Launch starts a plugin binary and dispenses kind from it. env is the
// complete environment the plugin gets (nil: none but go-plugin's own).
// The caller owns the client and must Kill it.
func Launch(binary string, kind sdk.Kind, env []string, logger hclog.Logger) (any, *plugin.Client, error) {
	cmd := exec.Command(binary)
	cmd.Env = env
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		Logger:           logger,
		StartTimeout:     30 * time.Second,
		GRPCDialOptions:  dialOptions(),
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, nil, err
	}
	raw, err := rpc.Dispense(string(kind))
	if err != nil {
		client.Kill()
		return nil, nil, err
	}
	return raw, client, nil
}

// Context returns a context bounded by d and cancelled at test end.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
