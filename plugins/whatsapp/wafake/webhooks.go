package wafake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// WebhookPath is the path the request helpers put on sdk.WebhookRequest.
const WebhookPath = "/webhooks/whatsapp"

// Message is one message inside a webhook: a customer's message (Inbound),
// a business-app echo (Echoes) or a history item (History). Start from a
// constructor (Text, Image, ...) and set fields as needed.
type Message struct {
	From      string    // the customer's wa_id (digits); for echoes, see To
	To        string    // echoes: the customer; defaults to From
	Name      string    // contacts[].profile.name; "" leaves profile.name out
	BSUID     string    // business-scoped user id (contacts[].user_id, from_user_id)
	NoWaID    bool      // a username user: no from / wa_id, only the BSUID
	ID        string    // wamid; generated when empty
	Timestamp time.Time // the fake's now when zero
	Type      string
	Content   any    // the object under the type's key, e.g. {"body": "hi"}
	ReplyTo   string // context.id
	GroupID   string // a group message (the plugin ignores these)
	// FromBusiness marks a history item the business sent.
	FromBusiness bool
	// HistoryStatus is history_context.status (read, delivered...).
	HistoryStatus string
	// Extra adds top-level fields (referral, errors...).
	Extra map[string]any
}

// Text is a customer's text message.
func Text(from, body string) Message {
	return Message{From: from, Type: "text", Content: map[string]any{"body": body}}
}

// Image is an image by media id with an optional caption.
func Image(from, mediaID, caption string) Message {
	return media(from, "image", mediaID, "image/jpeg", map[string]any{"caption": caption})
}

// Video is a video by media id.
func Video(from, mediaID, caption string) Message {
	return media(from, "video", mediaID, "video/mp4", map[string]any{"caption": caption})
}

// Audio is an audio clip; voice marks a voice note (ogg/opus).
func Audio(from, mediaID string, voice bool) Message {
	return media(from, "audio", mediaID, "audio/ogg; codecs=opus", map[string]any{"voice": voice})
}

// Document is a file with its name.
func Document(from, mediaID, filename, caption string) Message {
	return media(from, "document", mediaID, "application/pdf", map[string]any{"filename": filename, "caption": caption})
}

// Sticker is a (static) sticker.
func Sticker(from, mediaID string) Message {
	return media(from, "sticker", mediaID, "image/webp", map[string]any{"animated": false})
}

func media(from, typ, id, mime string, extra map[string]any) Message {
	c := map[string]any{"id": id, "mime_type": mime, "sha256": "eRyh3N4q9pcxt0bnCXJoc5TEffz3t2vDqCTCNh+3d7c="}
	for k, v := range extra {
		if v != "" {
			c[k] = v
		}
	}
	return Message{From: from, Type: typ, Content: c}
}

// Location is a shared place.
func Location(from string, lat, lng float64, name, address string) Message {
	c := map[string]any{"latitude": lat, "longitude": lng}
	if name != "" {
		c["name"] = name
	}
	if address != "" {
		c["address"] = address
	}
	return Message{From: from, Type: "location", Content: c}
}

// Contacts is a shared contact card.
func Contacts(from, formattedName, phone string) Message {
	card := map[string]any{
		"name":   map[string]any{"formatted_name": formattedName, "first_name": formattedName},
		"phones": []any{map[string]any{"phone": phone, "type": "CELL"}},
	}
	return Message{From: from, Type: "contacts", Content: []any{card}}
}

// ButtonReply is a tap on a reply button of our interactive message.
func ButtonReply(from, replyTo, id, title string) Message {
	return Message{From: from, Type: "interactive", ReplyTo: replyTo, Content: map[string]any{
		"type": "button_reply", "button_reply": map[string]any{"id": id, "title": title}}}
}

// ListReply is a choice from our list message.
func ListReply(from, replyTo, id, title, description string) Message {
	return Message{From: from, Type: "interactive", ReplyTo: replyTo, Content: map[string]any{
		"type": "list_reply", "list_reply": map[string]any{"id": id, "title": title, "description": description}}}
}

// TemplateButton is a tap on a template's quick-reply button (type button).
func TemplateButton(from, replyTo, payload, text string) Message {
	return Message{From: from, Type: "button", ReplyTo: replyTo, Content: map[string]any{"payload": payload, "text": text}}
}

// Reaction is an emoji reaction to messageID ("" removes it).
func Reaction(from, messageID, emoji string) Message {
	return Message{From: from, Type: "reaction", Content: map[string]any{"message_id": messageID, "emoji": emoji}}
}

// Unsupported is a message type the Cloud API does not pass on.
func Unsupported(from string) Message {
	return Message{From: from, Type: "unsupported", Extra: map[string]any{"errors": []any{map[string]any{
		"code": 131051, "title": "Message type unknown", "message": "Message type unknown",
		"error_data": map[string]any{"details": "Message type is currently not supported."}}}}}
}

// Status is a status update for a message we sent.
type Status struct {
	MessageID string
	Status    string // sent, delivered, read, failed, played
	Recipient string
	Timestamp time.Time
	Error     *GraphError // for failed
	Opaque    string      // biz_opaque_callback_data
	Group     bool        // recipient_type "group"
}

// StatusOf is the status Meta would send for a message the fake accepted;
// a failed status carries the message's async error, or 131026.
func StatusOf(s SentMessage, status string) Status {
	st := Status{MessageID: s.ID, Status: status, Recipient: s.To, Opaque: s.Opaque}
	if status == "failed" {
		st.Error = s.AsyncFail
		if st.Error == nil {
			st.Error = ErrUndeliverable()
		}
	}
	return st
}

// ContactSync is one smb_app_state_sync item (the phone app's contacts).
type ContactSync struct {
	Phone     string
	FullName  string
	FirstName string
	Action    string // add (also edits) or remove
	Timestamp time.Time
}

// HistoryChunk is one item of a history webhook.
type HistoryChunk struct {
	Phase, ChunkOrder, Progress int
	Threads                     []HistoryThread
}

// HistoryThread is one imported chat.
type HistoryThread struct {
	User     string
	Messages []Message
}

// ---------------------------------------------------------------- bodies

type envelope struct {
	Object string  `json:"object"`
	Entry  []entry `json:"entry"`
}

type entry struct {
	ID      string   `json:"id"`
	Changes []change `json:"changes"`
}

type change struct {
	Value map[string]any `json:"value"`
	Field string         `json:"field"`
}

func (f *Fake) notification(field string, value map[string]any) []byte {
	value["messaging_product"] = "whatsapp"
	value["metadata"] = map[string]any{"display_phone_number": f.opts.DisplayPhoneNumber, "phone_number_id": f.opts.PhoneNumberID}
	b, _ := json.Marshal(envelope{Object: "whatsapp_business_account",
		Entry: []entry{{ID: f.opts.WABAID, Changes: []change{{Value: value, Field: field}}}}})
	return b
}

func unixStr(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// NewMessageID returns a fresh wamid for user.
func (f *Fake) NewMessageID(user string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	return wamid(user, f.seq)
}

func (f *Fake) fill(m *Message) {
	if m.ID == "" {
		m.ID = f.NewMessageID(firstOf(m.From, m.To, m.BSUID))
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = f.now()
	}
}

func (f *Fake) messageObject(m Message) map[string]any {
	o := map[string]any{"id": m.ID, "timestamp": unixStr(m.Timestamp), "type": m.Type}
	if !m.NoWaID && m.From != "" {
		o["from"] = m.From
	}
	if m.BSUID != "" {
		o["from_user_id"] = m.BSUID
	}
	if m.Content != nil {
		o[m.Type] = m.Content
	}
	if m.ReplyTo != "" {
		o["context"] = map[string]any{"from": f.opts.DisplayPhoneNumber, "id": m.ReplyTo}
	}
	if m.GroupID != "" {
		o["group_id"] = m.GroupID
	}
	for k, v := range m.Extra {
		o[k] = v
	}
	return o
}

// Inbound is a "messages" notification with the customers' messages and
// their contacts[]. Building it counts as the customers writing: each
// sender's 24-hour window opens on the fake's side.
func (f *Fake) Inbound(msgs ...Message) []byte {
	var objs, contacts []any
	seen := map[string]bool{}
	for _, m := range msgs {
		f.fill(&m)
		objs = append(objs, f.messageObject(m))
		user := m.From
		if m.NoWaID || user == "" {
			user = m.BSUID
		}
		if !seen[user] {
			seen[user] = true
			c := map[string]any{"profile": map[string]any{}}
			if m.Name != "" {
				c["profile"] = map[string]any{"name": m.Name}
			}
			if !m.NoWaID && m.From != "" {
				c["wa_id"] = m.From
			}
			if m.BSUID != "" {
				c["user_id"] = m.BSUID
			}
			contacts = append(contacts, c)
		}
		if m.Type != "system" && m.GroupID == "" {
			f.OpenWindow(user, m.Timestamp)
		}
	}
	return f.notification("messages", map[string]any{"contacts": contacts, "messages": objs})
}

// Statuses is a "messages" notification carrying statuses[].
func (f *Fake) Statuses(sts ...Status) []byte {
	var objs []any
	for _, s := range sts {
		if s.Timestamp.IsZero() {
			s.Timestamp = f.now()
		}
		o := map[string]any{"id": s.MessageID, "status": s.Status, "timestamp": unixStr(s.Timestamp), "recipient_id": s.Recipient}
		if s.Group {
			o["recipient_type"] = "group"
		}
		if s.Status == "sent" || s.Status == "delivered" {
			o["conversation"] = map[string]any{"id": "7270b5f1e5f0d6d1c26e8bb7c47f3a4b",
				"expiration_timestamp": unixStr(s.Timestamp.Add(24 * time.Hour)), "origin": map[string]any{"type": "service"}}
			o["pricing"] = map[string]any{"billable": true, "pricing_model": "CBP", "category": "service"}
		}
		if s.Error != nil {
			o["errors"] = []any{s.Error.webhookError()}
		}
		if s.Opaque != "" {
			o["biz_opaque_callback_data"] = s.Opaque
		}
		objs = append(objs, o)
	}
	return f.notification("messages", map[string]any{"statuses": objs})
}

// AccountError is a "messages" notification with value.errors[] (an
// account-level problem such as 130429).
func (f *Fake) AccountError(e *GraphError) []byte {
	return f.notification("messages", map[string]any{"errors": []any{e.webhookError()}})
}

// Echoes is an smb_message_echoes notification: messages a person sent from
// the WhatsApp Business App on the same number (coexistence). Each
// message's To (or From) is the customer. Echoes open no window.
func (f *Fake) Echoes(msgs ...Message) []byte {
	var objs []any
	for _, m := range msgs {
		customer := firstOf(m.To, m.From)
		m.To, m.From = customer, ""
		f.fill(&m)
		o := f.messageObject(m)
		o["from"] = f.opts.DisplayPhoneNumber
		o["to"] = customer
		delete(o, "from_user_id")
		if m.BSUID != "" {
			o["to_user_id"] = m.BSUID
		}
		objs = append(objs, o)
	}
	return f.notification("smb_message_echoes", map[string]any{"message_echoes": objs})
}

// AppStateSync is an smb_app_state_sync notification (contact add/remove).
func (f *Fake) AppStateSync(items ...ContactSync) []byte {
	var objs []any
	for _, c := range items {
		if c.Timestamp.IsZero() {
			c.Timestamp = f.now()
		}
		contact := map[string]any{"phone_number": c.Phone}
		if c.Action != "remove" {
			contact["full_name"] = c.FullName
			contact["first_name"] = c.FirstName
		}
		objs = append(objs, map[string]any{"type": "contact", "contact": contact, "action": c.Action,
			"metadata": map[string]any{"timestamp": unixStr(c.Timestamp)}})
	}
	return f.notification("smb_app_state_sync", map[string]any{"state_sync": objs})
}

// History is a history notification (past chats shared at onboarding).
func (f *Fake) History(chunks ...HistoryChunk) []byte {
	var objs []any
	for _, ch := range chunks {
		var threads []any
		for _, th := range ch.Threads {
			var msgs []any
			for _, m := range th.Messages {
				if m.From == "" && !m.FromBusiness {
					m.From = th.User
				}
				f.fill(&m)
				o := f.messageObject(m)
				if m.FromBusiness {
					o["from"] = f.opts.DisplayPhoneNumber
					o["to"] = th.User
				}
				if m.HistoryStatus != "" {
					o["history_context"] = map[string]any{"status": m.HistoryStatus}
				}
				msgs = append(msgs, o)
			}
			threads = append(threads, map[string]any{"id": th.User, "messages": msgs})
		}
		objs = append(objs, map[string]any{
			"metadata": map[string]any{"phase": ch.Phase, "chunk_order": ch.ChunkOrder, "progress": ch.Progress},
			"threads":  threads,
		})
	}
	return f.notification("history", map[string]any{"history": objs})
}

// HistoryDeclined is the history notification sent when the business
// declined to share its chat history.
func (f *Fake) HistoryDeclined() []byte {
	return f.notification("history", map[string]any{"history": []any{map[string]any{"errors": []any{map[string]any{
		"code": 2593109, "title": "History sharing is turned off by the business",
		"message":    "History sharing is turned off by the business",
		"error_data": map[string]any{"details": "The business declined to share chat history."}}}}}})
}

// Merge joins notifications into one with several entries, as Meta batches.
func Merge(bodies ...[]byte) []byte {
	var out envelope
	out.Object = "whatsapp_business_account"
	for _, b := range bodies {
		var e envelope
		if err := json.Unmarshal(b, &e); err == nil {
			out.Entry = append(out.Entry, e.Entry...)
		}
	}
	b, _ := json.Marshal(out)
	return b
}

// ---------------------------------------------------------------- signing

// Sign returns the X-Hub-Signature-256 value for body: "sha256=" + hex of
// HMAC-SHA256 keyed with the app secret over the exact bytes.
func Sign(appSecret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// signSHA1 is the legacy X-Hub-Signature Meta still sends alongside.
func signSHA1(appSecret string, body []byte) string {
	m := hmac.New(sha1.New, []byte(appSecret))
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

// Sign signs body with the fake's app secret.
func (f *Fake) Sign(body []byte) string { return Sign(f.opts.AppSecret, body) }

// WebhookHeader is the header set Meta sends with a notification.
func (f *Fake) WebhookHeader(body []byte) http.Header {
	return webhookHeader(f.opts.AppSecret, body)
}

func webhookHeader(secret string, body []byte) http.Header {
	return http.Header{
		"Content-Type":        {"application/json"},
		"User-Agent":          {"facebookexternalua"},
		"X-Hub-Signature":     {signSHA1(secret, body)},
		"X-Hub-Signature-256": {Sign(secret, body)},
	}
}

func (f *Fake) webhookRequest(body []byte, h http.Header) *sdk.WebhookRequest {
	return &sdk.WebhookRequest{Method: http.MethodPost, Path: WebhookPath, Header: h, Body: bytes.Clone(body),
		RemoteAddr: "127.0.0.1:0", RequestID: f.newID("req"), ReceivedAt: f.now()}
}

// WebhookRequest is body as the hub would hand it to the plugin, signed.
func (f *Fake) WebhookRequest(body []byte) *sdk.WebhookRequest {
	return f.webhookRequest(body, f.WebhookHeader(body))
}

// ForgedWebhookRequest is body signed with the wrong secret.
func (f *Fake) ForgedWebhookRequest(body []byte) *sdk.WebhookRequest {
	return f.webhookRequest(body, webhookHeader("not-"+f.opts.AppSecret, body))
}

// UnsignedWebhookRequest is body without any signature header.
func (f *Fake) UnsignedWebhookRequest(body []byte) *sdk.WebhookRequest {
	h := f.WebhookHeader(body)
	h.Del("X-Hub-Signature")
	h.Del("X-Hub-Signature-256")
	return f.webhookRequest(body, h)
}

// VerificationRequest is Meta's GET handshake with these parameters.
func (f *Fake) VerificationRequest(mode, token, challenge string) *sdk.WebhookRequest {
	q := url.Values{"hub.mode": {mode}, "hub.verify_token": {token}, "hub.challenge": {challenge}}
	return &sdk.WebhookRequest{Method: http.MethodGet, Path: WebhookPath, RawQuery: q.Encode(),
		Header:     http.Header{"User-Agent": {"facebookplatform/1.0 (+http://developers.facebook.com)"}},
		RemoteAddr: "127.0.0.1:0", RequestID: f.newID("req"), ReceivedAt: f.now()}
}

// NewWebhookHTTPRequest is a signed POST of body to target (the hub's
// webhook URL), for end-to-end tests through real HTTP.
func (f *Fake) NewWebhookHTTPRequest(ctx context.Context, target string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("wafake: webhook request: %w", err)
	}
	req.Header = f.WebhookHeader(body)
	return req, nil
}

// PostWebhook signs and POSTs body to target. Like Meta, only a 200 counts
// as delivered; the caller reads the response.
func (f *Fake) PostWebhook(ctx context.Context, target string, body []byte) (*http.Response, error) {
	req, err := f.NewWebhookHTTPRequest(ctx, target, body)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("wafake: post webhook: %w", err)
	}
	return resp, nil
}

// VerifyWebhook performs Meta's GET handshake against target with the
// fake's verify token and returns the response.
func (f *Fake) VerifyWebhook(ctx context.Context, target, challenge string) (*http.Response, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("wafake: verify webhook: %w", err)
	}
	u.RawQuery = url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {f.opts.VerifyToken}, "hub.challenge": {challenge}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("wafake: verify webhook: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("wafake: verify webhook: %w", err)
	}
	return resp, nil
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
