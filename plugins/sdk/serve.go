package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ServeChannel serves a channel plugin. Call it from main; it returns only
// when the hub stops the plugin.
func ServeChannel(c Channel) { serve(KindChannel, c, os.Args[1:]) }

// ServeCRM serves a CRM plugin.
func ServeCRM(c CRM) { serve(KindCRM, c, os.Args[1:]) }

// ServeLLM serves an LLM plugin.
func ServeLLM(l LLM) { serve(KindLLM, l, os.Args[1:]) }

// ReattachEnv names the environment variable through which a hub attaches to
// plugins started by hand in debug mode instead of launching them.
const ReattachEnv = "SWITCHBOARD_REATTACH"

// ReattachInfo locates a plugin process started with the `debug` subcommand.
type ReattachInfo struct {
	Protocol string `json:"protocol"`
	Version  int    `json:"version"`
	Network  string `json:"network"`
	Addr     string `json:"addr"`
	Pid      int    `json:"pid"`
}

func serve(kind Kind, impl Plugin, args []string) {
	// Anything on stdout before go-plugin's handshake line breaks the
	// handshake, so route the standard loggers to stderr first.
	log.SetOutput(os.Stderr)
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))

	launchedByHub := os.Getenv(Handshake.MagicCookieKey) == Handshake.MagicCookieValue
	if !launchedByHub && len(args) > 0 {
		switch args[0] {
		case "describe":
			os.Exit(runDescribe(kind, impl, os.Stdout, os.Stderr))
		case "debug":
			instance := ""
			if len(args) > 1 {
				instance = args[1]
			}
			os.Exit(runDebug(kind, impl, instance))
		}
	}
	if !launchedByHub {
		fmt.Fprintf(os.Stderr, "This is a Switchboard %s plugin: the hub starts it.\n"+
			"Run `%s describe` to see what it is, or `%s debug [instance]` to run it under a debugger.\n",
			kind, os.Args[0], os.Args[0])
		os.Exit(1)
	}
	ppid := os.Getppid()
	if hubGone(ppid) {
		fmt.Fprintln(os.Stderr, `{"@level":"warn","@message":"the hub that started this plugin is gone; plugin exiting"}`)
		os.Exit(3)
	}
	watchParent(ppid, time.Second/4)
	plugin.Serve(serveConfig(kind, impl))
}

func serveConfig(kind Kind, impl Plugin) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {string(kind): &GRPCPlugin{Kind: kind, Impl: impl}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))
			return grpc.NewServer(opts...)
		},
		// JSON on stderr keeps levels and fields intact when the host
		// forwards the lines into its own log.
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Info}),
	}
}

// runDescribe prints the manifest as JSON without serving, for install-time
// checks (`switchboard plugins inspect` and package scripts).
func runDescribe(kind Kind, impl Plugin, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := impl.Describe(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "describe: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(completeManifest(m, kind)); err != nil {
		fmt.Fprintf(stderr, "describe: %v\n", err)
		return 1
	}
	return 0
}

// ServeInProcess serves impl inside this process through go-plugin's test
// mode and returns where to reach it. It is how the `debug` subcommand and
// the testkit run a plugin without a subprocess. The plugin stops when ctx
// ends; the returned channel closes once it has.
func ServeInProcess(ctx context.Context, kind Kind, impl Plugin, logger hclog.Logger) (*plugin.ReattachConfig, <-chan struct{}, error) {
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	cfg := serveConfig(kind, impl)
	if logger != nil {
		cfg.Logger = logger
	}
	cfg.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed}
	go plugin.Serve(cfg)
	select {
	case rc := <-reattach:
		return rc, closed, nil
	case <-closed:
		return nil, closed, fmt.Errorf("plugin stopped before serving")
	case <-time.After(10 * time.Second):
		return nil, closed, fmt.Errorf("plugin did not start serving within 10s")
	}
}

// runDebug serves in-process so a developer can run the plugin under a
// debugger, and prints how to make the hub attach to it.
func runDebug(kind Kind, impl Plugin, instance string) int {
	if instance == "" {
		m, err := impl.Describe(context.Background())
		if err != nil {
			fmt.Fprintf(os.Stderr, "debug: describe: %v\n", err)
			return 1
		}
		instance = m.Name
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	rc, closed, err := ServeInProcess(ctx, kind, impl, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "debug: %v\n", err)
		return 1
	}
	info := map[string]ReattachInfo{instance: {Protocol: string(rc.Protocol), Version: rc.ProtocolVersion,
		Network: rc.Addr.Network(), Addr: rc.Addr.String(), Pid: rc.Pid}}
	b, _ := json.Marshal(info)
	fmt.Fprintf(os.Stderr, "Plugin %q serving in debug mode. Start the hub with:\n\n  %s='%s' switchboard serve --config ...\n\n", instance, ReattachEnv, b)
	<-closed
	return 0
}

// HubPIDEnv carries the pid of the hub that launched the plugin.
const HubPIDEnv = "SWITCHBOARD_HUB_PID"

// hubGone reports whether the hub that launched this process died before
// it got here: the plugin was re-parented already, so watchParent, which
// watches for a change of parent, would wait for ever. (Without this, a hub
// killed while it started its plugins could leave them running: their
// stdout pipes held open by their siblings, nothing ever made them exit.)
func hubGone(ppid int) bool {
	want, err := strconv.Atoi(os.Getenv(HubPIDEnv))
	return err == nil && want > 0 && want != ppid
}

// watchParent exits the plugin when the process that started it is gone.
// go-plugin only stops a plugin when the host asks; a host killed with
// SIGKILL never asks. Linux's Pdeathsig is no substitute: it fires when the
// *thread* that forked the child exits, which in a Go host is any OS thread.
// A changed parent pid (re-parented to init or a subreaper) is the signal.
func watchParent(ppid int, every time.Duration) {
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for range t.C {
			if os.Getppid() != ppid {
				fmt.Fprintln(os.Stderr, `{"@level":"warn","@message":"hub process is gone; plugin exiting"}`)
				os.Exit(3)
			}
		}
	}()
}
