package pipeline

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Task kinds. Every task is keyed by its conversation in the queue, so the
// tasks of one conversation run in order.
const (
	TaskEvent = "event" // a normalized event from a webhook
	TaskReply = "reply" // answer the conversation (after the quiet window)
	TaskSend  = "send"  // send a paced reply
)

// Task is the queue's payload.
type Task struct {
	Kind       string     `json:"kind"`
	Instance   string     `json:"instance"` // channel plugin instance
	Conv       string     `json:"conv"`     // conversation id: instance + ":" + the plugin's key
	RequestID  string     `json:"request_id,omitempty"`
	ReceivedAt time.Time  `json:"received_at"`
	Event      *sdk.Event `json:"event,omitempty"`
	// Replay marks an admin replay: it bypasses the dedupe of event ids.
	Replay bool `json:"replay,omitempty"`
	// ReplyTo is the inbound event a reply answers; effect keys derive from it.
	ReplyTo string `json:"reply_to,omitempty"`
	// AgentSeen is the conversation's agent-message count when ingress
	// received the customer's message: a person who speaks after that voids
	// the bot's reply to it. Nil (a replay, an older task) reads it afresh.
	AgentSeen *int64    `json:"agent_seen,omitempty"`
	Send      *Outgoing `json:"send,omitempty"`
}

// Outgoing is a reply waiting to be sent.
type Outgoing struct {
	Key  string `json:"key"` // idempotency key of the send effect
	Text string `json:"text"`
	// AgentSeen is the conversation's agent-message count when the reply
	// was composed; a send after an agent spoke is dropped.
	AgentSeen int64 `json:"agent_seen"`
}

// ConvID is the hub's conversation id for a plugin's conversation key.
func ConvID(instance, key string) string { return instance + ":" + key }

func encodeTask(t *Task) ([]byte, error) { return json.Marshal(t) }

func decodeTask(b []byte) (*Task, error) {
	var t Task
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("decode task: %w", err)
	}
	if t.Conv == "" || t.Kind == "" {
		return nil, fmt.Errorf("decode task: no conversation or kind")
	}
	return &t, nil
}
