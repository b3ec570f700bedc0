// Command switchboard is the hub's one CLI: serve the hub, check its config,
// inspect plugins, work with rules, and run the sandbox.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/switchboard-hub/switchboard/hub/app"
	"github.com/switchboard-hub/switchboard/hub/config"
	"github.com/switchboard-hub/switchboard/hub/pluginhost"
	"github.com/switchboard-hub/switchboard/hub/version"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
)

// command is one subcommand.
type command struct {
	name, usage, help string
	run               func(args []string, stdout, stderr io.Writer) int
}

// allCommands lists the built-in commands and those other files add.
func allCommands() []command {
	base := []command{
		{"serve", "serve [--config FILE]", "run the hub", serve},
		{"config", "config check FILE", "validate a hub config file", configCmd},
		{"plugins", "plugins inspect|sha256 BINARY", "start a plugin binary and print what it is, or print its sha256 pin", pluginsCmd},
		{"version", "version", "print the version", func(_ []string, out, _ io.Writer) int {
			fmt.Fprintf(out, "switchboard %s (plugin protocol v%d)\n", version.Version, sdk.ProtocolVersion)
			return 0
		}},
	}
	return append(base, extraCommands...)
}

// extraCommands are added by other files of this package.
var extraCommands []command

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range allCommands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Switchboard: an integration hub for conversational sales.")
	fmt.Fprintln(w, "\nUsage:")
	cs := allCommands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  switchboard %-38s %s\n", c.usage, c.help)
	}
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "switchboard.yaml", "hub config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath, nil)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard: config:\n%v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	a, err := app.New(ctx, cfg, stdout, mountAdmin()...)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard: %s\n", cfg.Redact(err.Error()))
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "switchboard: %s\n", cfg.Redact(err.Error()))
		return 1
	}
	return 0
}

// mountAdmin returns the options that mount the admin API; other files of
// this package add to it.
var mountAdmin = func() []app.Option { return nil }

func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: switchboard config check FILE")
		return 2
	}
	cfg, err := config.Load(args[1], nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[1])
	store := "embedded " + func() string {
		if cfg.Store.Embedded != nil {
			return cfg.Store.Embedded.Path
		}
		return ""
	}()
	if cfg.Store.Redis != nil {
		store = "redis"
	}
	fmt.Fprintf(stdout, "  listen: webhooks %s, admin %s\n  store: %s (%d partitions)\n", cfg.Listen.Webhooks,
		orDefault(cfg.Listen.Admin, "(same listener)"), store, cfg.Store.Partitions)
	for _, p := range cfg.Plugins {
		pin := "unpinned"
		if p.SHA256 != "" {
			pin = "sha256 pinned"
		}
		fmt.Fprintf(stdout, "  plugin %s: %s %s (%s)\n", p.Name, p.Kind, p.Path, pin)
	}
	if cfg.Rules.Dir != "" {
		fmt.Fprintf(stdout, "  rules: %s\n", cfg.Rules.Dir)
	}
	fmt.Fprintf(stdout, "  secrets resolved: %d (never printed)\n", cfg.Secrets())
	return 0
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func pluginsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || (args[0] != "inspect" && args[0] != "sha256") {
		fmt.Fprintln(stderr, "usage: switchboard plugins inspect|sha256 BINARY")
		return 2
	}
	bin := args[1]
	if args[0] == "sha256" {
		sum, err := pluginhost.FileSHA256(bin)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s  %s\n", sum, bin)
		return 0
	}
	if err := pluginhost.Verify(pluginhost.Spec{Name: "inspect", Path: bin}); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Dispense as any kind: the common service answers Describe whatever
	// the plugin is.
	raw, client, err := testkit.Launch(bin, sdk.KindChannel, nil, hclog.NewNullLogger())
	if err != nil {
		fmt.Fprintf(stderr, "start %s: %v\n", bin, err)
		return 1
	}
	defer client.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := raw.(*sdk.RemoteChannel).Describe(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "describe: %v\n", err)
		return 1
	}
	sum, _ := pluginhost.FileSHA256(bin)
	fmt.Fprintf(stdout, "name:       %s\nkind:       %s\nversion:    %s\nprotocol:   v%d (negotiated); plugin speaks %s\nsdk:        %s\n",
		m.Name, m.Kind, m.Version, client.NegotiatedVersion(), ints(m.ProtocolVersions), m.SDKVersion)
	if m.Description != "" {
		fmt.Fprintf(stdout, "about:      %s\n", m.Description)
	}
	if len(m.Capabilities) > 0 {
		fmt.Fprintf(stdout, "caps:       %s\n", strings.Join(m.Capabilities, ", "))
	}
	fmt.Fprintf(stdout, "sha256:     %s\n", sum)
	return 0
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("v%d", x)
	}
	return strings.Join(s, ", ")
}
