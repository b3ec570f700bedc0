package sdk

import (
	"context"
	"net/http"
	"time"
)

// Channel is a messaging provider: it turns the provider's webhooks into
// normalized events and sends outbound messages.
type Channel interface {
	Plugin
	// HandleWebhook verifies and parses one raw HTTP request from the
	// provider. The returned Response is what the hub answers, after it has
	// durably stored the events. A forged or malformed request gets a 4xx
	// Response and no events, not an error: errors mean "could not decide"
	// and make the hub answer 5xx so the provider retries.
	HandleWebhook(ctx context.Context, req *WebhookRequest) (*WebhookResult, error)
	// Send delivers one outbound message. It must be safe to call twice with
	// the same IdempotencyKey.
	Send(ctx context.Context, msg *Outbound) (*SendResult, error)
}

// WebhookRequest is the raw HTTP request as the hub received it.
type WebhookRequest struct {
	Method     string
	Path       string
	RawQuery   string
	Header     http.Header
	Body       []byte
	RemoteAddr string
	RequestID  string
	ReceivedAt time.Time
}

// WebhookResponse is the HTTP answer to give the provider.
type WebhookResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// WebhookResult is a response plus the events found in the request.
type WebhookResult struct {
	Response WebhookResponse
	Events   []Event
}

// EventKind says what happened.
type EventKind int

const (
	EventUnknown     EventKind = iota
	EventMessage               // a message by the customer, an agent or the bot
	EventDelivery              // a status update for a message we sent
	EventFollow                // the customer followed / opted in
	EventUnfollow              // the customer unfollowed / opted out
	EventContactSync           // contact data synced from the provider
	EventHistory               // an imported past message: history, not a new turn
	EventOther
)

var eventKindNames = []string{"unknown", "message", "delivery", "follow", "unfollow", "contact_sync", "history", "other"}

func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && k >= 0 {
		return eventKindNames[k]
	}
	return "unknown"
}

// Direction of a message relative to the business.
type Direction int

const (
	DirectionUnknown  Direction = iota
	DirectionInbound            // from the customer
	DirectionOutbound           // from the business (agent or bot); see Author
)

// Author says who wrote a message. An agent's message seen on the channel
// (an echo) makes the bot step aside.
type Author int

const (
	AuthorUnknown Author = iota
	AuthorCustomer
	AuthorAgent
	AuthorBot
	AuthorSystem
)

var authorNames = []string{"unknown", "customer", "agent", "bot", "system"}

func (a Author) String() string {
	if int(a) < len(authorNames) && a >= 0 {
		return authorNames[a]
	}
	return "unknown"
}

// Event is a normalized thing that happened on a channel.
type Event struct {
	// ID is the provider's id for the event or message: the dedupe key. The
	// same webhook delivered twice must yield the same IDs.
	ID   string
	Kind EventKind
	// ConversationKey identifies the conversation on this channel instance,
	// e.g. "zalo:<oa id>:<user id>". All events of one customer on one
	// channel share it; the hub keeps their order.
	ConversationKey string
	Contact         Identity
	Direction       Direction
	Author          Author
	AgentID         string // the provider's id of the person who wrote, for agent messages
	Message         *Message
	Delivery        *Delivery
	Timestamp       time.Time // the provider's time
	Raw             []byte    // the event's own raw payload, for audit
	Metadata        map[string]string
}

// Message is the content of a message event.
type Message struct {
	Type          string // text, image, audio, video, file, sticker, location, contacts, interactive, reaction, link, unknown
	Text          string
	Attachments   []Attachment
	Location      *Location
	ReplyTo       string // provider id of the message this one quotes
	Reaction      string
	InteractiveID string // id of the chosen button or list row
}

// Attachment is media or a file; sent by URL, never inline.
type Attachment struct {
	Type         string // image, audio, video, file, sticker, link, contact
	URL          string
	MediaID      string
	MimeType     string
	Name         string
	Size         int64
	Caption      string
	ThumbnailURL string
}

// Location is a shared place.
type Location struct {
	Latitude  float64
	Longitude float64
	Name      string
	Address   string
}

// DeliveryStatus of a message we sent.
type DeliveryStatus int

const (
	DeliveryUnknown DeliveryStatus = iota
	DeliverySent
	DeliveryDelivered
	DeliveryRead
	DeliveryFailed
)

var deliveryNames = []string{"unknown", "sent", "delivered", "read", "failed"}

func (s DeliveryStatus) String() string {
	if int(s) < len(deliveryNames) && s >= 0 {
		return deliveryNames[s]
	}
	return "unknown"
}

// Delivery is a status update for an outbound message.
type Delivery struct {
	MessageID    string
	Status       DeliveryStatus
	ErrorCode    string
	ErrorMessage string
}

// Button is a reply button or a link in an interactive message.
type Button struct {
	ID      string
	Title   string
	URL     string // a link button when set
	Payload string
}

// Template is a pre-approved message template (WhatsApp) by name.
type Template struct {
	Name     string
	Language string
	Params   []string
}

// Outbound is a message the hub asks a channel to send.
type Outbound struct {
	// IdempotencyKey is derived from the inbound message that caused the
	// send; a plugin that can must use it so a retry never sends twice.
	IdempotencyKey  string
	ConversationKey string
	To              Identity
	Type            string // text, image, file, interactive, template
	Text            string
	Attachments     []Attachment
	Buttons         []Button
	Template        *Template
	ReplyTo         string
	Metadata        map[string]string
}

// SendResult is the provider's acceptance of a message.
type SendResult struct {
	ProviderMessageID string
	AcceptedAt        time.Time
}
