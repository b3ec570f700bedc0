package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/switchboard-hub/switchboard/hub/sandbox"
)

func init() {
	extraCommands = append(extraCommands, command{"sandbox", "sandbox [--no-play] [--keep] [--dir DIR]",
		"run the hub with fake providers and play sample conversations", sandboxCmd})
}

func sandboxCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noPlay := fs.Bool("no-play", false, "start the hub and the fakes, play nothing")
	keep := fs.Bool("keep", false, "keep the data directory of the last run instead of wiping it")
	dir := fs.String("dir", "data/sandbox", "where the store, the CRM's SQLite file, the rules, the config and the hub's log go")
	crm := fs.String("crm", sandbox.CRMSQL, "the CRM the pipeline writes to: sql (SQLite) or hubspot (the HubSpot fake)")
	listen := fs.String("listen", "127.0.0.1:8080", "webhook listen address")
	adminListen := fs.String("admin-listen", "127.0.0.1:8081", "admin API listen address")
	repo := fs.String("repo", "", "the Switchboard checkout (default: found from the working directory or the executable)")
	plugins := fs.String("plugins", "", "directory of the plugin binaries (default REPO/bin/plugins); missing ones are built with go build")
	exit := fs.Bool("exit", false, "stop after playing, instead of keeping the hub running (for scripts and CI)")
	noInput := fs.Bool("no-input", false, "do not read messages from the terminal after playing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchboard sandbox: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	sb, err := sandbox.Start(ctx, sandbox.Options{
		Root: *repo, Dir: *dir, Keep: *keep, PluginDir: *plugins, CRM: *crm,
		Listen: *listen, AdminListen: *adminListen,
		Out: stdout, Color: colorful(stdout),
		AppOptions: mountAdmin(),
	})
	if err != nil {
		fmt.Fprintf(stderr, "switchboard sandbox: %v\n", err)
		return 1
	}
	if !*noPlay {
		if _, err := sb.Play(ctx); err != nil {
			sb.Close()
			if ctx.Err() != nil {
				return 0
			}
			fmt.Fprintf(stderr, "switchboard sandbox: %v\n", err)
			return 1
		}
	}
	if *exit {
		if err := sb.Close(); err != nil {
			fmt.Fprintf(stderr, "switchboard sandbox: %v\n", err)
			return 1
		}
		return 0
	}
	interactive := !*noInput && isTerminal(os.Stdin)
	sb.Running(interactive)
	go sb.Follow(ctx)
	if interactive {
		go chat(ctx, sb, os.Stdin)
	}
	if err := sb.Wait(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "switchboard sandbox: %v\n", err)
		return 1
	}
	return 0
}

// chat sends each line typed on the terminal as a Zalo customer's message
// and shows what the hub did with it, one message at a time.
func chat(ctx context.Context, sb *sandbox.Sandbox, in io.Reader) {
	var you sandbox.ConvReport
	sc := bufio.NewScanner(in)
	sb.Prompt()
	for sc.Scan() {
		if text := strings.TrimSpace(sc.Text()); text != "" {
			if _, err := sb.Say(ctx, &you, text); err != nil {
				if ctx.Err() != nil {
					return
				}
				sb.Errorf("%v", err)
			}
		}
		sb.Prompt()
	}
}

// colorful reports whether w is a terminal that should get colours
// (https://no-color.org turns them off).
func colorful(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// isTerminal reports whether f is a terminal: a character device other
// than /dev/null, which is what services and CI jobs get as stdin.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}
