package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-hub/switchboard/rules"
)

// The sandbox plays the same story at any hour. The default rules' teams
// keep office hours, so at night the hot lead would wait for the morning
// and nobody would be assigned; and at noon nobody would be outside
// working hours. So the sandbox runs a copy of the default rules in which
// every team works around the clock, plus one file of its own: an
// English-speaking desk for WhatsApp whose hours are closed right now,
// which is where the out-of-hours customer writes. The hub evaluates the
// rules against the real clock; nothing is faked in the pipeline.

// OverlayFile is the sandbox's own rule file. Its name sorts between the
// scoring and the routing files, so its route and handoff rule come before
// the default ones (routes and handoff rules are tried in file order).
const OverlayFile = "25-sandbox.yaml"

// OverlayTeam is the team the overlay adds.
const OverlayTeam = "english"

// Overlay describes what the sandbox changed in the default rules.
type Overlay struct {
	// Hours is the English desk's hours spec, closed when the sandbox
	// started; Opens is when it opens next.
	Hours string
	Opens time.Time
	// AlwaysOpen lists the default teams the copy keeps open 24/7.
	AlwaysOpen []string
}

const zone = "Asia/Ho_Chi_Minh"

// WriteRules writes the sandbox's rule set into dst: the rule files of src
// (not its tests) with every team open 24/7, and OverlayFile. With keep,
// files already in dst are left as they are (they may carry your edits);
// the overlay is always rewritten, because its hours depend on now.
func WriteRules(src, dst string, now time.Time, keep bool) (Overlay, error) {
	var ov Overlay
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return ov, err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return ov, fmt.Errorf("the default rules: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml") {
			continue
		}
		out := filepath.Join(dst, name)
		if _, err := os.Stat(out); err == nil && keep {
			if teams, err := teamNames(out); err == nil {
				ov.AlwaysOpen = append(ov.AlwaysOpen, teams...)
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return ov, err
		}
		if rules.IsRuleFile(name) {
			var teams []string
			if b, teams, err = openAllHours(b); err != nil {
				return ov, fmt.Errorf("%s: %w", name, err)
			}
			ov.AlwaysOpen = append(ov.AlwaysOpen, teams...)
		}
		if err := os.WriteFile(out, b, 0o600); err != nil {
			return ov, err
		}
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return ov, err
	}
	local := now.In(loc)
	// A one-hour window starting two hours from now: closed now, and
	// still closed an hour from now should the sandbox start slowly.
	start := (local.Hour() + 2) % 24
	ov.Hours = fmt.Sprintf("daily %02d:00-%02d:00", start, start+1)
	ov.Opens = time.Date(local.Year(), local.Month(), local.Day(), start, 0, 0, 0, loc)
	if !ov.Opens.After(local) {
		ov.Opens = ov.Opens.AddDate(0, 0, 1)
	}
	overlay := fmt.Sprintf(overlayText, local.Format("2006-01-02 15:04 -07:00"), OverlayTeam, ov.Hours, zone)
	if err := os.WriteFile(filepath.Join(dst, OverlayFile), []byte(overlay), 0o600); err != nil {
		return ov, err
	}
	if _, err := rules.LoadDir(dst); err != nil {
		return ov, fmt.Errorf("the sandbox's rules in %s do not load:\n%w", dst, err)
	}
	return ov, nil
}

const overlayText = `# Written by switchboard sandbox at %[1]s. Not part of the default
# rules: an English-speaking desk for WhatsApp whose hours are closed right
# now, so that the sandbox shows a customer writing outside working hours
# whenever you run it. (The other teams are open 24/7 in this copy, so that
# the hot lead and the complaint are assigned at once at any hour.)

teams:
  %[2]s:
    description: English-speaking customers on WhatsApp
    strategy: round_robin
    members: [lan]
    hours: "%[3]s"
    timezone: %[4]s

routing:
  - name: whatsapp to the english desk
    when: message.channel == "whatsapp" && intent != "complaint"
    team: %[2]s

handoff:
  rules:
    - name: english customer asks for a person
      when: asks_for_human && team == "%[2]s"
      immediate: true
      notify: [assignee, team]
      reason: Customer asked for a person
      message: Sure, I'm passing you to a colleague now. Please hold on a moment.
      out_of_hours_message: >-
        Thanks for your message! Our English-speaking team is offline right
        now; a colleague will write back at {next_open_time} on
        {next_open_day_en} ({next_open_date}).
`

// openAllHours rewrites a rule file's teams to work around the clock:
// hours "24/7" and no holidays (a holiday closes a team whatever its
// hours). Comments and everything else are kept; a file without teams is
// returned as it is. It returns the teams.
func openAllHours(b []byte) ([]byte, []string, error) {
	docs, err := decodeAll(b)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for _, doc := range docs {
		teams := mapValue(doc, "teams")
		if teams == nil || teams.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(teams.Content); i += 2 {
			names = append(names, teams.Content[i].Value)
			team := teams.Content[i+1]
			if team.Kind != yaml.MappingNode {
				continue
			}
			var kept []*yaml.Node
			for j := 0; j+1 < len(team.Content); j += 2 {
				k, v := team.Content[j], team.Content[j+1]
				switch k.Value {
				case "holidays":
					continue
				case "hours":
					v.Value, v.Style, v.Tag = "24/7", yaml.DoubleQuotedStyle, "!!str"
					k.LineComment, v.LineComment = "", "sandbox: open around the clock"
				}
				kept = append(kept, k, v)
			}
			team.Content = kept
		}
	}
	if names == nil {
		return b, nil, nil
	}
	var buf bytes.Buffer
	buf.WriteString("# Copied by switchboard sandbox from the default rules, with every team\n# open 24/7 (see " + OverlayFile + " for why).\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, doc := range docs {
		if err := enc.Encode(doc); err != nil {
			return nil, nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), names, nil
}

func decodeAll(b []byte) ([]*yaml.Node, error) {
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err == io.EOF {
			return docs, nil
		} else if err != nil {
			return nil, err
		}
		docs = append(docs, &doc)
	}
}

func teamNames(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	docs, err := decodeAll(b)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, doc := range docs {
		if teams := mapValue(doc, "teams"); teams != nil {
			for i := 0; i+1 < len(teams.Content); i += 2 {
				names = append(names, teams.Content[i].Value)
			}
		}
	}
	return names, nil
}

// mapValue finds key in a document's top-level mapping.
func mapValue(doc *yaml.Node, key string) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
