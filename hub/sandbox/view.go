package sandbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/pipeline"
)

// view writes the sandbox's terminal view: one block per message, in the
// order things happen, with ANSI colours when writing to a terminal.
type view struct {
	w     io.Writer
	color bool
}

const (
	sReset   = "\x1b[0m"
	sBold    = "\x1b[1m"
	sDim     = "\x1b[2m"
	sRed     = "\x1b[31m"
	sGreen   = "\x1b[32m"
	sYellow  = "\x1b[33m"
	sBlue    = "\x1b[34m"
	sMagenta = "\x1b[35m"
	sCyan    = "\x1b[36m"
)

func newView(w io.Writer, color bool) *view { return &view{w: w, color: color} }

func (v *view) paint(style, s string) string {
	if !v.color || s == "" {
		return s
	}
	return style + s + sReset
}

func (v *view) printf(format string, a ...any) { fmt.Fprintf(v.w, format, a...) }

// line is one labelled line under a message.
func (v *view) line(label, text string) {
	v.printf("      %s %s\n", v.paint(sDim, pad(label, 9)), text)
}

// field is one labelled line of the setup.
func (v *view) field(label, text string) {
	v.printf("  %s %s\n", v.paint(sDim, pad(label, 7)), text)
}

func (v *view) banner() {
	v.printf("%s %s\n", v.paint(sBold, "Switchboard sandbox"),
		v.paint(sDim, "· the whole hub on this machine: real plugins and webhooks, fake providers, no accounts"))
}

func (v *view) progress(msg string) { v.printf("  %s %s\n", v.paint(sDim, "·"), msg) }

func (v *view) setup(s *Sandbox) {
	v.field("data", rel(s.o.Dir)+v.paint(sDim, "  (wiped at each start unless --keep)"))
	v.field("config", rel(s.ConfigFile)+v.paint(sDim, "  = examples/config/sandbox.yaml; the sandbox supplies its ${VARS}"))
	v.field("fakes", fmt.Sprintf("Zalo OA %s · WhatsApp Cloud %s · HubSpot %s · Anthropic %s",
		s.Zalo.URL(), s.WhatsApp.URL, s.HubSpot.URL, s.Claude.URL()))
	if s.o.CRM == CRMHubSpot {
		v.field("crm", "HubSpot (the fake above)"+v.paint(sDim, "  · the SQL CRM stands by"))
	} else {
		v.field("crm", "SQL CRM on SQLite "+rel(s.CRMFile)+v.paint(sDim, "  · HubSpot stands by (--crm hubspot)"))
	}
	teams := append([]string(nil), s.Overlay.AlwaysOpen...)
	sort.Strings(teams)
	v.field("rules", rel(s.RulesDir)+v.paint(sDim, "  = examples/rules with "+strings.Join(teams, ", ")+" open 24/7,"))
	v.field("", v.paint(sDim, fmt.Sprintf("  + %s: an English desk for WhatsApp, closed now (%s, opens %s)",
		OverlayFile, s.Overlay.Hours, s.Overlay.Opens.Format("15:04 Mon")+" Vietnam time")))
	v.field("log", rel(s.LogFile))
}

func (v *view) ready(s *Sandbox) {
	names := make([]string, 0, len(s.App.Config.Plugins))
	for _, p := range s.App.Config.Plugins {
		names = append(names, p.Name)
	}
	v.printf("  %s hub ready · webhooks %s/webhooks/{zalo,whatsapp} · admin %s · plugins %s\n",
		v.paint(sGreen, "✓"), s.WebhookURL(), s.AdminURL(), strings.Join(names, ", "))
}

func (v *view) scenario(i, n int, sc Scenario) {
	v.printf("\n%s %s\n", v.paint(sBold+sCyan, fmt.Sprintf("━━ %d/%d  %s", i, n, sc.Title)), v.paint(sDim, "· "+sc.Expect))
}

func (v *view) message(sc Scenario, st Step, n, total int) {
	counter := ""
	if total > 0 {
		counter = v.paint(sDim, fmt.Sprintf("  [%d/%d]", n, total))
	}
	if st.Agent {
		app := "Zalo OA chat"
		if sc.Channel == "whatsapp" {
			app = "WhatsApp Business App"
		}
		v.printf("  %s %s %s  %s%s\n", v.paint(sMagenta, "◂"), v.paint(sBold, st.AgentName),
			v.paint(sDim, "(a person, in the "+app+")"), st.Text, counter)
		return
	}
	v.printf("  %s %s %s  %s%s\n", v.paint(sCyan, "▸"), v.paint(sBold, sc.Customer), v.paint(sDim, "("+sc.Channel+")"), st.Text, counter)
}

func (v *view) outcome(sr StepReport, names map[string]string) {
	defer func() {
		for _, r := range sr.Background {
			v.background(r, names)
		}
	}()
	c := sr.Conv
	by := map[string][]pipeline.AuditRecord{}
	for _, r := range sr.Records {
		by[r.Kind] = append(by[r.Kind], r)
	}
	for _, r := range by["dead_letter"] {
		v.line("error", v.paint(sRed, "dead-lettered: "+r.Detail))
	}
	if sr.Step.Agent {
		for _, r := range by["state"] {
			v.line("state", v.paint(sMagenta, r.Detail)+": the bot steps aside")
		}
		if len(by["state"]) == 0 {
			v.line("state", c.State)
		}
		return
	}
	if !sr.Answered {
		for _, r := range by["release"] {
			v.line("release", r.Detail)
		}
		if len(by["release"]) == 0 {
			v.line("bot", v.paint(sDim, "silent: a person has this conversation (state "+c.State+")"))
		}
		v.replies(sr, by)
		return
	}
	if f := facts(c); f != "" {
		v.line("facts", f)
	}
	d := c.LastDecision
	if d != nil {
		var parts []string
		for _, f := range d.Fired {
			if f.RuleInfo == nil || f.Section != "scoring" {
				continue
			}
			switch f.Op {
			case "set":
				parts = append(parts, fmt.Sprintf("%s =%d", f.Rule, f.Value))
			default:
				parts = append(parts, fmt.Sprintf("%s %+d", f.Rule, f.Value))
			}
		}
		if len(parts) == 0 {
			parts = append(parts, v.paint(sDim, "none"))
		}
		v.line("rules", strings.Join(parts, v.paint(sDim, " · ")))
		score := v.paint(sBold+tierStyle(d.Tier), fmt.Sprintf("%d %s", d.Score, d.Tier))
		s := fmt.Sprintf("%s → team %s · priority %s", score, v.paint(sBold, d.Team), d.Priority)
		if d.Route != "" {
			s += v.paint(sDim, " · route "+quote(d.Route))
		}
		if d.OutOfHours {
			s += " · " + v.paint(sYellow, "closed now, opens "+d.NextOpen.Format("15:04 Mon 02/01"))
		}
		v.line("score", s)
	}
	if len(by["handoff"]) > 0 && d != nil && d.Handoff != nil {
		h := d.Handoff
		s := fmt.Sprintf("%s → %s", quote(h.Rule), v.paint(sBold, c.Team))
		if h.PauseBot {
			s += " · bot paused"
		}
		if h.Immediate {
			s += " · at once (the handoff message replaces the bot's answer)"
		}
		v.line("handoff", v.paint(sMagenta, s))
	}
	sla := ""
	if a := sr.Assignment; a != nil && !a.Deadline.IsZero() {
		sla = v.paint(sDim, fmt.Sprintf(" · %s due by %s", strings.ReplaceAll(a.DeadlineKind, "_", " "), a.Deadline.Local().Format("15:04:05")))
	}
	switch {
	case len(by["assignment"]) > 0:
		r := by["assignment"][len(by["assignment"])-1]
		v.line("agent", v.paint(sBold+sGreen, r.Target)+v.paint(sDim, "  ("+r.Detail+")")+sla)
	case len(by["queued"]) > 0:
		v.line("agent", v.paint(sYellow, "waiting in the queue: "+by["queued"][0].Detail))
	case len(by["assignment_failed"]) > 0:
		v.line("agent", v.paint(sRed, by["assignment_failed"][0].Detail))
	case c.Assignee != "":
		v.line("agent", v.paint(sBold+sGreen, c.Assignee)+sla)
	case len(by["handoff"]) > 0:
		v.line("agent", v.paint(sYellow, "not assigned: this hub runs without the assignment service; handed off to team "+c.Team))
	}
	var crm []string
	for _, r := range by["crm_contact"] {
		if sr.NewContact {
			crm = append(crm, "contact "+r.Target+" created")
		} else {
			crm = append(crm, "contact updated")
		}
	}
	if len(by["crm_note"]) > 0 {
		crm = append(crm, "note added")
	}
	for _, r := range by["crm_deal"] {
		crm = append(crm, "deal at "+r.Detail)
	}
	if len(crm) > 0 {
		v.line("crm", strings.Join(crm, v.paint(sDim, " · ")))
	}
	if d != nil && len(d.Followups) > 0 {
		var fs []string
		for _, f := range d.Followups {
			fs = append(fs, fmt.Sprintf("%s (%s in %s)", quote(f.Name), f.Action, shortDur(f.After)))
		}
		v.line("followup", strings.Join(fs, v.paint(sDim, " · ")))
	}
	v.replies(sr, by)
}

// background shows something the hub did on its own time.
func (v *view) background(r pipeline.AuditRecord, names map[string]string) {
	who := names[r.Conv]
	if who == "" {
		who = r.Conv
	}
	var s string
	switch r.Kind {
	case "notification":
		s = fmt.Sprintf("%s notified (%s) about %s", r.Target, r.Detail, who)
	case "notification_failed":
		s = v.paint(sRed, fmt.Sprintf("notifying %s about %s failed: %s", r.Target, who, r.Detail))
	case "sla_breach":
		s = v.paint(sYellow, fmt.Sprintf("%s missed a deadline for %s: %s", orDash(r.Target), who, r.Detail))
	case "assignment":
		s = v.paint(sGreen, fmt.Sprintf("%s assigned to %s (%s)", who, r.Target, r.Detail))
	default:
		s = fmt.Sprintf("%s, %s: %s %s", r.Kind, who, r.Target, r.Detail)
	}
	v.printf("  %s %s %s\n", v.paint(sDim, "·"), v.paint(sDim, r.At.Local().Format("15:04:05")), s)
}

func (v *view) replies(sr StepReport, by map[string][]pipeline.AuditRecord) {
	for _, t := range sr.Replies {
		v.line("reply", v.paint(sGreen, t))
	}
	for _, r := range by["reply_dropped"] {
		v.line("reply", v.paint(sDim, "dropped: "+r.Detail))
	}
	for _, r := range by["reply_failed"] {
		v.line("reply", v.paint(sRed, "failed: "+r.Detail))
	}
}

func (v *view) summary(s *Sandbox, rep *Report) {
	v.printf("\n%s\n", v.paint(sBold+sCyan, "━━ Summary"))
	rows := [][]string{{"customer", "channel", "score", "tier", "team", "state", "agent"}}
	for _, cr := range rep.Conversations {
		c := cr.Final
		if c == nil {
			continue
		}
		rows = append(rows, []string{cr.Scenario.Customer, c.Channel, fmt.Sprint(c.Score), c.Tier, c.Team, c.State, orDash(c.Assignee)})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for i, r := range rows {
		var b strings.Builder
		for j, cell := range r {
			b.WriteString(pad(cell, widths[j]+2))
		}
		line := strings.TrimRight(b.String(), " ")
		if i == 0 {
			line = v.paint(sDim, line)
		}
		v.printf("  %s\n", line)
	}
	var contacts, notes, deals int
	for _, cr := range rep.Conversations {
		for _, st := range cr.Steps {
			for _, r := range st.Records {
				switch r.Kind {
				case "crm_contact":
					contacts++
				case "crm_note":
					notes++
				case "crm_deal":
					deals++
				}
			}
		}
	}
	where := "SQL CRM " + rel(s.CRMFile)
	if s.o.CRM == CRMHubSpot {
		where = fmt.Sprintf("HubSpot (fake): %d contacts, %d notes, %d deals", len(s.HubSpot.Objects("contacts")),
			len(s.HubSpot.Objects("notes")), len(s.HubSpot.Objects("deals")))
	}
	v.printf("  CRM writes: %d contact upserts, %d notes, %d deal moves %s\n", contacts, notes, deals, v.paint(sDim, "→ "+where))
	customers := map[string]bool{}
	for _, cr := range rep.Conversations {
		customers[cr.User] = true
	}
	toCustomers, toAgents := 0, 0
	for _, m := range s.Zalo.Accepted() {
		if customers[m.UserID] {
			toCustomers++
		} else {
			toAgents++
		}
	}
	v.printf("  delivered by the fakes: Zalo %d to customers and %d notifications to agents' Zalo, WhatsApp %d\n",
		toCustomers, toAgents, len(s.WhatsApp.Sent()))
}

// Running prints how to reach the running hub: the admin key and
// ready-made commands.
func (s *Sandbox) Running(interactive bool) {
	v := s.view
	adm := s.AdminURL()
	v.printf("\n%s %s\n", v.paint(sBold+sCyan, "━━ The hub keeps running"), v.paint(sDim, "· Ctrl-C stops it"))
	v.printf("  An admin API key was created for you (role admin; stored hashed, shown only here):\n")
	v.printf("    export SB_KEY=%s\n", v.paint(sBold, s.AdminKey))
	v.printf("  %s\n", v.paint(sDim, "# conversations, with state, score, team and assignee"))
	v.printf("    curl -s -H \"Authorization: Bearer $SB_KEY\" %s%s/conversations\n", adm, admin.Prefix)
	conv, who := "CONVERSATION_ID", "one conversation"
	if s.played != nil && len(s.played.Conversations) > 0 {
		conv, who = s.played.Conversations[0].Conv, s.played.Conversations[0].Scenario.Customer+"'s conversation"
	}
	v.printf("  %s\n", v.paint(sDim, "# the trail of "+who+": every effect the hub had, in order"))
	v.printf("    curl -s -H \"Authorization: Bearer $SB_KEY\" %s%s/conversations/%s/trail\n", adm, admin.Prefix, conv)
	v.printf("  %s\n", v.paint(sDim, "# a dry run: what the running rules decide for these facts, rule by rule"))
	v.printf("    curl -s -H \"Authorization: Bearer $SB_KEY\" -H 'Content-Type: application/json' -X POST %s%s/rules/dry-run \\\n", adm, admin.Prefix)
	v.printf("      -d '{\"input\":{\"message\":{\"text\":\"Tôi là giám đốc, cần báo giá gấp\"},\"lead\":{\"decision_maker\":true,\"need\":\"CRM cho 20 người\",\"timeline\":\"tuần này\",\"budget\":\"50 triệu\"}}}'\n")
	v.printf("  %s\n", v.paint(sDim, "# metrics"))
	v.printf("    curl -s -H \"Authorization: Bearer $SB_KEY\" %s%s/metrics | grep '^switchboard_'\n", adm, admin.Prefix)
	if s.o.CRM != CRMHubSpot {
		v.printf("  %s\n", v.paint(sDim, "# the CRM's records"))
		v.printf("    sqlite3 %s 'select name, score, tier, intent from contacts'\n", rel(s.CRMFile))
	}
	v.printf("  Edit the rules in %s: the hub reloads them within seconds.\n", rel(s.RulesDir))
	if interactive {
		v.printf("  Type a message and press Enter to write to the bot as a Zalo customer:\n")
	}
}

// Prompt shows the interactive prompt; background lines printed while it
// waits put it back.
func (s *Sandbox) Prompt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prompt()
}

func (s *Sandbox) prompt() {
	s.prompting = true
	s.view.printf("%s ", s.view.paint(sCyan, "▸"))
}

// Errorf shows an error in the view, for failures that do not end the
// sandbox (an interactive message that timed out).
func (s *Sandbox) Errorf(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view.printf("  %s %s\n", s.view.paint(sRed, "✗"), fmt.Sprintf(format, a...))
}

func facts(c *pipeline.Conversation) string {
	f := c.Facts
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	add("intent", f.Intent)
	if f.Need != "" {
		add("need", quote(truncate(f.Need, 48)))
	}
	add("budget", f.Budget)
	add("timeline", f.Timeline)
	if f.DecisionMakerKnown {
		add("decision maker", map[bool]string{true: "yes", false: "no"}[f.DecisionMaker])
	}
	add("action", f.Action)
	return strings.Join(parts, " · ")
}

func tierStyle(tier string) string {
	switch tier {
	case "hot":
		return sRed
	case "warm":
		return sYellow
	default:
		return sBlue
	}
}

// shortDur writes 24h0m0s as 24h and 1h30m0s as 1h30m.
func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func quote(s string) string { return "“" + s + "”" }

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func pad(s string, n int) string {
	if k := utf8.RuneCountInString(s); k < n {
		return s + strings.Repeat(" ", n-k)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rel shows path relative to the working directory when it is below it.
func rel(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if r, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
