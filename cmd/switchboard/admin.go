package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/app"
	"github.com/switchboard-hub/switchboard/hub/config"
	"github.com/switchboard-hub/switchboard/hub/store"
)

func init() {
	mountAdmin = func() []app.Option {
		return []app.Option{app.WithMount(func(a *app.App) {
			admin.New(a, admin.Options{}).Register(a.AdminRouter())
		})}
	}
	extraCommands = append(extraCommands, command{"keys",
		"keys create|list|revoke [flags] --config FILE", "manage admin API keys in the hub's store", keysCmd})
}

const keysUsage = `usage:
  switchboard keys create --role admin|supervisor|agent|viewer --name NAME [--agent ID] [--expires 720h] --config FILE
  switchboard keys list --config FILE
  switchboard keys revoke ID --config FILE

create prints the key on stdout, once: it is stored only as a hash.`

func keysCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, keysUsage)
		return 2
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "switchboard.yaml", "hub config file")
	role := fs.String("role", "", "admin, supervisor, agent or viewer")
	name := fs.String("name", "", "who or what the key is for")
	agent := fs.String("agent", "", "agent keys: the agent id (from the rules) the key acts as")
	expires := fs.String("expires", "", "lifetime, e.g. 720h or 90d (default: never)")
	sub, rest := args[0], args[1:]
	// Flags may come before or after revoke's ID.
	var positional []string
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		rest = fs.Args()
		if len(rest) > 0 {
			positional = append(positional, rest[0])
			rest = rest[1:]
		}
	}
	cfg, err := config.Load(*cfgPath, nil)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard: config:\n%v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func() (store.Store, bool) {
		st, err := app.OpenStore(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "switchboard: %v\n", err)
			if cfg.Store.Redis == nil {
				fmt.Fprintln(stderr, "(a running hub holds the embedded store: stop it, or create the key through POST /admin/v1/keys)")
			}
			return nil, false
		}
		return st, true
	}
	actor := admin.Principal{KeyID: "cli", Name: "switchboard keys (" + osUser() + ")", Role: admin.RoleAdmin}
	switch sub {
	case "create":
		if len(positional) > 0 {
			fmt.Fprintln(stderr, keysUsage)
			return 2
		}
		n := admin.NewKey{Name: *name, Role: admin.Role(*role), Agent: *agent, CreatedBy: "cli"}
		if *expires != "" {
			d, err := config.ParseDuration(*expires)
			if err != nil || d <= 0 {
				fmt.Fprintf(stderr, "switchboard: --expires: %q is not a positive duration such as 720h or 90d\n", *expires)
				return 2
			}
			n.ExpiresIn = d
		}
		if err := n.Check(); err != nil {
			var fe *admin.FieldError
			if errors.As(err, &fe) {
				fmt.Fprintf(stderr, "switchboard: --%s: %s\n", strings.ReplaceAll(fe.Field, "expires_in", "expires"), fe.Msg)
			} else {
				fmt.Fprintf(stderr, "switchboard: %v\n", err)
			}
			return 2
		}
		st, ok := open()
		if !ok {
			return 1
		}
		defer st.Close()
		full, k, err := admin.CreateKey(ctx, st, n, time.Now())
		if err != nil {
			fmt.Fprintf(stderr, "switchboard: %v\n", err)
			return 1
		}
		_ = admin.AppendAudit(ctx, st, cfg.Admin.AuditRetention.D(), admin.AuditEntry{At: time.Now().UTC(), Actor: actor,
			Action: "keys.create", Method: "CLI", Path: "keys create", Target: k.ID, Status: 201, Detail: "role " + string(k.Role) + ", name " + k.Name})
		exp := "never"
		if !k.ExpiresAt.IsZero() {
			exp = k.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(stderr, "created key %s (%s, role %s%s), expires %s\nthe key is printed below, this once: store it now\n",
			k.ID, k.Name, k.Role, agentNote(k.Agent), exp)
		fmt.Fprintln(stdout, full)
		return 0
	case "list":
		st, ok := open()
		if !ok {
			return 1
		}
		defer st.Close()
		cursor := ""
		fmt.Fprintf(stdout, "%-10s %-11s %-10s %-25s %-20s %s\n", "ID", "ROLE", "AGENT", "NAME", "EXPIRES", "STATE")
		now := time.Now()
		for {
			keys, next, err := admin.ListKeys(ctx, st, cursor, 200)
			if err != nil {
				fmt.Fprintf(stderr, "switchboard: %v\n", err)
				return 1
			}
			for _, k := range keys {
				exp, state := "never", "active"
				if !k.ExpiresAt.IsZero() {
					exp = k.ExpiresAt.Format("2006-01-02 15:04")
				}
				switch {
				case !k.RevokedAt.IsZero():
					state = "revoked " + k.RevokedAt.Format("2006-01-02")
				case !k.Active(now):
					state = "expired"
				}
				fmt.Fprintf(stdout, "%-10s %-11s %-10s %-25s %-20s %s\n", k.ID, k.Role, orDefault(k.Agent, "-"), k.Name, exp, state)
			}
			if next == "" {
				return 0
			}
			cursor = next
		}
	case "revoke":
		if len(positional) != 1 {
			fmt.Fprintln(stderr, keysUsage)
			return 2
		}
		st, ok := open()
		if !ok {
			return 1
		}
		defer st.Close()
		k, err := admin.RevokeKey(ctx, st, positional[0], "cli", time.Now())
		if errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(stderr, "switchboard: no key %q\n", positional[0])
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "switchboard: %v\n", err)
			return 1
		}
		_ = admin.AppendAudit(ctx, st, cfg.Admin.AuditRetention.D(), admin.AuditEntry{At: time.Now().UTC(), Actor: actor,
			Action: "keys.revoke", Method: "CLI", Path: "keys revoke", Target: k.ID, Status: 200})
		fmt.Fprintf(stdout, "revoked key %s (%s)\n", k.ID, k.Name)
		return 0
	}
	fmt.Fprintln(stderr, keysUsage)
	return 2
}

func agentNote(a string) string {
	if a == "" {
		return ""
	}
	return ", agent " + a
}

func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}
