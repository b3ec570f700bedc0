// Command hostproc is a minimal hub for the plugin host's process tests: it
// starts the plugins named on its command line, keeps calls in flight, and
// on SIGTERM stops them the way the hub does. It prints "ready <pid>..."
// once every plugin runs.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-hub/switchboard/hub/pluginhost"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func main() {
	// args: channel=/path crm=/path llm=/path
	var specs []pluginhost.Spec
	for _, a := range os.Args[1:] {
		kind, path, _ := strings.Cut(a, "=")
		cfg := json.RawMessage(`{}`)
		if kind == "channel" {
			cfg = json.RawMessage(`{"secret":"s","send_latency_ms":50}`)
		}
		if kind == "llm" {
			cfg = json.RawMessage(`{"latency_ms":50}`)
		}
		specs = append(specs, pluginhost.Spec{Name: kind, Kind: sdk.Kind(kind), Path: path, Config: cfg})
	}
	m := pluginhost.New(pluginhost.Options{})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := m.Start(ctx, specs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var pids []string
	for _, s := range m.Statuses() {
		pids = append(pids, fmt.Sprint(s.PID))
	}
	fmt.Println("ready " + strings.Join(pids, " "))
	// Keep calls in flight until told to stop.
	for w := 0; w < 8; w++ {
		go func() {
			for ctx.Err() == nil {
				if c, ok := m.Channel("channel"); ok {
					_, _ = c.Send(ctx, &sdk.Outbound{Text: "busy", To: sdk.Identity{UserID: "u"}})
				}
				if l, ok := m.LLM("llm"); ok {
					_, _ = l.Generate(ctx, &sdk.GenerateRequest{History: []sdk.Turn{{Role: "customer", Text: "hi"}}})
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	<-ctx.Done()
	m.Stop()
	fmt.Println("stopped")
}
