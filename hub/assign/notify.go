package assign

import "time"

// Notification is what an agent or supervisor is told.
type Notification struct {
	Kind   string `json:"kind"` // handoff, sla_breach, escalation, reminder, release
	Target string `json:"target"`
	Agent  string `json:"agent,omitempty"`
	Conv   string `json:"conv"`
	Team   string `json:"team,omitempty"`
	Text   string `json:"text"` // the rendered summary, as sent to chat targets
	// Summary fields, for webhook receivers.
	Summary *Summary  `json:"summary,omitempty"`
	At      time.Time `json:"at"`
}

// Summary describes a handed-off conversation for the person taking it.
type Summary struct {
	Name       string   `json:"name,omitempty"`
	Channel    string   `json:"channel,omitempty"`
	Need       string   `json:"need,omitempty"`
	Budget     string   `json:"budget,omitempty"`
	Timeline   string   `json:"timeline,omitempty"`
	Score      int      `json:"score"`
	Tier       string   `json:"tier,omitempty"`
	Explain    string   `json:"explain,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Priority   string   `json:"priority,omitempty"`
	ContactURL string   `json:"contact_url,omitempty"`
	Last       []string `json:"last_messages,omitempty"`
}
