package rules

import "time"

// Input is what the pipeline knows about a message when it asks for a
// decision. Facts accumulate upstream (the LLM's findings and the contact's
// history are merged across turns before they get here); the rules only read.
type Input struct {
	Message      Message      `json:"message"`
	Contact      Contact      `json:"contact"`
	Lead         Lead         `json:"lead"`
	Conversation Conversation `json:"conversation"`
	// Now is the evaluation time: now and now() in expressions. Zero means
	// time.Now(). Tests fix it so that time-dependent rules are deterministic.
	Now time.Time `json:"now,omitempty"`
}

// Message is the inbound message being handled.
type Message struct {
	ID      string    `json:"id,omitempty" expr:"id"`
	Text    string    `json:"text" expr:"text"`
	Channel string    `json:"channel,omitempty" expr:"channel"` // zalo, whatsapp, ...
	Type    string    `json:"type,omitempty" expr:"type"`       // text, image, sticker, file, audio, location, ...
	Time    time.Time `json:"time,omitempty" expr:"time"`
	Author  string    `json:"author,omitempty" expr:"author"` // customer, agent, bot, system
}

// Contact is what the hub (and the CRM) know about the person writing.
type Contact struct {
	ID    string   `json:"id,omitempty" expr:"id"`
	Name  string   `json:"name,omitempty" expr:"name"`
	Phone string   `json:"phone,omitempty" expr:"phone"`
	Email string   `json:"email,omitempty" expr:"email"`
	Tags  []string `json:"tags,omitempty" expr:"tags"`
	Owner string   `json:"owner,omitempty" expr:"owner"` // agent id of the account owner
	// Score is the last score the rules gave this contact (the previous
	// evaluation's), not the one being computed.
	Score      int               `json:"score,omitempty" expr:"score"`
	Messages   int               `json:"messages,omitempty" expr:"messages"` // messages received from this contact so far
	FirstSeen  time.Time         `json:"first_seen,omitempty" expr:"first_seen"`
	ChannelIDs map[string]string `json:"channel_ids,omitempty" expr:"channel_ids"` // channel name → id on that channel
}

// Lead holds the LLM's structured findings about the conversation so far.
type Lead struct {
	Intent        string  `json:"intent,omitempty" expr:"intent"` // purchase, question, complaint, support, spam, ...
	Need          string  `json:"need,omitempty" expr:"need"`
	Budget        string  `json:"budget,omitempty" expr:"budget"`
	Timeline      string  `json:"timeline,omitempty" expr:"timeline"`
	DecisionMaker bool    `json:"decision_maker,omitempty" expr:"decision_maker"`
	Action        string  `json:"action,omitempty" expr:"action"` // what the LLM suggests: reply, handoff, send_quote, schedule_demo, ...
	Confidence    float64 `json:"confidence,omitempty" expr:"confidence"`
	LeadEstimate  int     `json:"lead_estimate,omitempty" expr:"lead_estimate"` // estimated deal value, in the account's currency
	// Extra holds findings the schema above does not name, as strings.
	Extra map[string]string `json:"extra,omitempty" expr:"extra"`
}

// Conversation states.
const (
	StateBot       = "bot"
	StateHandedOff = "handed_off"
	StateHuman     = "human"
	StateClosed    = "closed"
)

// Conversation is the state of the conversation the message belongs to.
type Conversation struct {
	ID    string `json:"id,omitempty" expr:"id"`
	Turns int    `json:"turns,omitempty" expr:"turns"` // customer messages so far, this one included
	// State is bot, handed_off (waiting for a person), human or closed. Empty
	// counts as bot.
	State               string    `json:"state,omitempty" expr:"state"`
	FirstSeen           time.Time `json:"first_seen,omitempty" expr:"first_seen"`
	LastAgentReply      time.Time `json:"last_agent_reply,omitempty" expr:"last_agent_reply"` // zero: no person has replied
	LastCustomerMessage time.Time `json:"last_customer_message,omitempty" expr:"last_customer_message"`
}
