// Package ruletest runs the test cases integrators keep beside their rules
// (*_test.yaml): given these facts, expect this score, tier, team, handoff.
// It is what `switchboard rules test` runs, and what a CI gates on.
package ruletest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/rules"
	"gopkg.in/yaml.v3"
)

// Facts is what a test case (or an explain --facts file) says about a
// message: the rules.Input in YAML, with shortcuts.
type Facts struct {
	// Now is the evaluation time; facts files may give it, test cases give
	// it at the top of the file or in the case.
	Now *time.Time `yaml:"now"`

	// Shortcuts for message.text, lead.intent and lead.action.
	Text   *string `yaml:"text"`
	Intent *string `yaml:"intent"`
	Action *string `yaml:"action"`

	Message      Message      `yaml:"message"`
	Contact      Contact      `yaml:"contact"`
	Lead         Lead         `yaml:"lead"`
	Conversation Conversation `yaml:"conversation"`
}

// Message is rules.Message in YAML.
type Message struct {
	ID      string `yaml:"id"`
	Text    string `yaml:"text"`
	Channel string `yaml:"channel"`
	Type    string `yaml:"type"`
	Time    When   `yaml:"time"` // default: now
	Author  string `yaml:"author"`
}

// Contact is rules.Contact in YAML.
type Contact struct {
	ID         string            `yaml:"id"`
	Name       string            `yaml:"name"`
	Phone      string            `yaml:"phone"`
	Email      string            `yaml:"email"`
	Tags       []string          `yaml:"tags"`
	Owner      string            `yaml:"owner"`
	Score      int               `yaml:"score"`
	Messages   int               `yaml:"messages"`
	FirstSeen  When              `yaml:"first_seen"`
	ChannelIDs map[string]string `yaml:"channel_ids"`
}

// Lead is rules.Lead in YAML.
type Lead struct {
	Intent        string            `yaml:"intent"`
	Need          string            `yaml:"need"`
	Budget        string            `yaml:"budget"`
	Timeline      string            `yaml:"timeline"`
	DecisionMaker bool              `yaml:"decision_maker"`
	Action        string            `yaml:"action"`
	Confidence    float64           `yaml:"confidence"`
	LeadEstimate  int               `yaml:"lead_estimate"`
	Extra         map[string]string `yaml:"extra"`
}

// Conversation is rules.Conversation in YAML.
type Conversation struct {
	ID                  string `yaml:"id"`
	Turns               int    `yaml:"turns"`
	State               string `yaml:"state"`
	FirstSeen           When   `yaml:"first_seen"`
	LastAgentReply      When   `yaml:"last_agent_reply"`
	LastCustomerMessage When   `yaml:"last_customer_message"`
}

// When is a time given absolutely (2025-06-02T09:00:00+07:00) or relative
// to now ("-2h", "-3d", "now"), so that cases read as "the agent replied two
// hours ago" whatever now is.
type When struct {
	abs time.Time
	rel time.Duration
	set bool
	isR bool
}

// UnmarshalYAML reads an absolute or relative time.
func (w *When) UnmarshalYAML(n *yaml.Node) error {
	if n.Tag == "!!null" {
		return nil
	}
	if n.Tag == "!!timestamp" {
		var t time.Time
		if err := n.Decode(&t); err != nil {
			return err
		}
		*w = When{abs: t, set: true}
		return nil
	}
	s := strings.TrimSpace(n.Value)
	if s == "now" {
		*w = When{set: true, isR: true}
		return nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		*w = When{abs: t, set: true}
		return nil
	}
	d, err := parseRel(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is neither a time (2025-06-02T09:00:00+07:00) nor an offset from now (-2h, -3d, now)", n.Line, s)
	}
	*w = When{rel: d, set: true, isR: true}
	return nil
}

func parseRel(s string) (time.Duration, error) {
	sign := time.Duration(1)
	if strings.HasPrefix(s, "-") {
		sign, s = -1, s[1:]
	} else if strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || fmt.Sprint(n) != days {
			return 0, fmt.Errorf("bad days %q", s)
		}
		return sign * time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	return sign * d, err
}

// At resolves the time against now; the zero When gives def.
func (w When) At(now, def time.Time) time.Time {
	switch {
	case !w.set:
		return def
	case w.isR:
		return now.Add(w.rel)
	}
	return w.abs
}

// Input turns the facts into a rules.Input evaluated at now.
func (f *Facts) Input(now time.Time) (rules.Input, error) {
	in := rules.Input{Now: now}
	m := f.Message
	in.Message = rules.Message{ID: m.ID, Text: m.Text, Channel: m.Channel, Type: m.Type, Time: m.Time.At(now, now), Author: m.Author}
	c := f.Contact
	in.Contact = rules.Contact{ID: c.ID, Name: c.Name, Phone: c.Phone, Email: c.Email, Tags: c.Tags, Owner: c.Owner,
		Score: c.Score, Messages: c.Messages, FirstSeen: c.FirstSeen.At(now, time.Time{}), ChannelIDs: c.ChannelIDs}
	l := f.Lead
	in.Lead = rules.Lead{Intent: l.Intent, Need: l.Need, Budget: l.Budget, Timeline: l.Timeline, DecisionMaker: l.DecisionMaker,
		Action: l.Action, Confidence: l.Confidence, LeadEstimate: l.LeadEstimate, Extra: l.Extra}
	v := f.Conversation
	in.Conversation = rules.Conversation{ID: v.ID, Turns: v.Turns, State: v.State, FirstSeen: v.FirstSeen.At(now, time.Time{}),
		LastAgentReply: v.LastAgentReply.At(now, time.Time{}), LastCustomerMessage: v.LastCustomerMessage.At(now, time.Time{})}
	for _, sc := range []struct {
		short *string
		long  *string
		name  string
	}{{f.Text, &in.Message.Text, "text and message.text"}, {f.Intent, &in.Lead.Intent, "intent and lead.intent"}, {f.Action, &in.Lead.Action, "action and lead.action"}} {
		if sc.short == nil {
			continue
		}
		if *sc.long != "" {
			return in, fmt.Errorf("give one of %s, not both", sc.name)
		}
		*sc.long = *sc.short
	}
	return in, nil
}

// LoadFacts reads a facts file (for `switchboard rules explain --facts`):
// Facts in YAML, unknown keys refused. now, when the file does not give it,
// is the evaluation time.
func LoadFacts(path string, now time.Time) (rules.Input, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return rules.Input{}, err
	}
	var f Facts
	if err := decodeStrict(data, &f); err != nil {
		return rules.Input{}, fmt.Errorf("%s: %v", path, err)
	}
	if f.Now != nil {
		now = *f.Now
	}
	in, err := f.Input(now)
	if err != nil {
		return in, fmt.Errorf("%s: %v", path, err)
	}
	return in, nil
}

// yamlMsg trims yaml.v3's prefix and keeps one line per problem.
func yamlMsg(err error) string {
	s := strings.ReplaceAll(err.Error(), "yaml: unmarshal errors:\n  ", "")
	s = strings.ReplaceAll(s, "\n  ", "; ")
	return strings.TrimPrefix(s, "yaml: ")
}

// decodeStrict decodes YAML refusing unknown keys.
func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return errors.New(yamlMsg(err))
	}
	return nil
}
