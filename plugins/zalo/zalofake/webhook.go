package zalofake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Event is a webhook event as Zalo sends it. Ids are decimal strings (they
// exceed 2^53) and the timestamp is epoch milliseconds as a string.
type Event struct {
	AppID       string   `json:"app_id"`
	OAID        string   `json:"oa_id,omitempty"`
	UserIDByApp string   `json:"user_id_by_app,omitempty"`
	EventName   string   `json:"event_name"`
	Sender      *Party   `json:"sender,omitempty"`
	Recipient   *Party   `json:"recipient,omitempty"`
	Follower    *Party   `json:"follower,omitempty"`
	Source      string   `json:"source,omitempty"`
	Message     *Message `json:"message,omitempty"`
	Info        *Info    `json:"info,omitempty"`
	Timestamp   string   `json:"timestamp"`
}

// Party is a sender, recipient or follower.
type Party struct {
	ID      string `json:"id"`
	AdminID string `json:"admin_id,omitempty"` // set on oa_send_* typed in the OA chat tool
}

// Message is the "message" object of an event.
type Message struct {
	MsgID          string       `json:"msg_id,omitempty"`
	MsgIDs         []string     `json:"msg_ids,omitempty"`
	Text           string       `json:"text,omitempty"`
	QuoteMsgID     string       `json:"quote_msg_id,omitempty"`
	ConversationID string       `json:"conversation_id,omitempty"`
	ReactIcon      string       `json:"react_icon,omitempty"`
	Attachments    []Attachment `json:"attachments,omitempty"`
}

// Attachment is one element of message.attachments.
type Attachment struct {
	Type    string         `json:"type"`
	Payload map[string]any `json:"payload"`
}

// Info is the form a user submitted (user_submit_info).
type Info struct {
	Name     string `json:"name,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Address  string `json:"address,omitempty"`
	City     string `json:"city,omitempty"`
	District string `json:"district,omitempty"`
}

// MsgID returns the event's message id, or "".
func (e Event) MsgID() string {
	if e.Message == nil {
		return ""
	}
	return e.Message.MsgID
}

func (s *Server) ts() string { return strconv.FormatInt(s.cfg.Now().UnixMilli(), 10) }

// appUserID derives a stable app-scoped id for a user, as Zalo gives each
// app its own id for the same person.
func appUserID(userID string) string {
	h := sha256.Sum256([]byte("app:" + userID))
	return strconv.FormatUint(binary.BigEndian.Uint64(h[:8])>>1|1<<60, 10)
}

// UserSend builds a user_send_<kind> event from userID to the OA. An empty
// msg.MsgID gets a fresh one.
func (s *Server) UserSend(kind, userID string, msg Message) Event {
	if msg.MsgID == "" {
		msg.MsgID = NewMessageID()
	}
	return Event{AppID: s.cfg.AppID, UserIDByApp: appUserID(userID), EventName: "user_send_" + kind,
		Sender: &Party{ID: userID}, Recipient: &Party{ID: s.cfg.OAID}, Message: &msg, Timestamp: s.ts()}
}

// Text is a user_send_text event.
func (s *Server) Text(userID, text string) Event {
	return s.UserSend("text", userID, Message{Text: text})
}

// Image is a user_send_image event.
func (s *Server) Image(userID, url, caption string) Event {
	return s.UserSend("image", userID, Message{Text: caption, Attachments: []Attachment{{Type: "image",
		Payload: map[string]any{"thumbnail": url + "?thumb=1", "url": url}}}})
}

// GIF is a user_send_gif event.
func (s *Server) GIF(userID, url string) Event {
	return s.UserSend("gif", userID, Message{Attachments: []Attachment{{Type: "gif",
		Payload: map[string]any{"thumbnail": url + "?thumb=1", "url": url}}}})
}

// Audio is a user_send_audio event (Zalo voice notes are .amr).
func (s *Server) Audio(userID, url string) Event {
	return s.UserSend("audio", userID, Message{Attachments: []Attachment{{Type: "audio",
		Payload: map[string]any{"url": url}}}})
}

// Video is a user_send_video event.
func (s *Server) Video(userID, url, description string) Event {
	return s.UserSend("video", userID, Message{Attachments: []Attachment{{Type: "video",
		Payload: map[string]any{"url": url, "thumbnail": url + ".jpg", "description": description}}}})
}

// Sticker is a user_send_sticker event.
func (s *Server) Sticker(userID, stickerID, url string) Event {
	return s.UserSend("sticker", userID, Message{Attachments: []Attachment{{Type: "sticker",
		Payload: map[string]any{"id": stickerID, "url": url}}}})
}

// Location is a user_send_location event. Zalo sends the coordinates as
// strings.
func (s *Server) Location(userID string, lat, lon float64) Event {
	return s.UserSend("location", userID, Message{Attachments: []Attachment{{Type: "location",
		Payload: map[string]any{"coordinates": map[string]any{
			"latitude":  strconv.FormatFloat(lat, 'f', -1, 64),
			"longitude": strconv.FormatFloat(lon, 'f', -1, 64)}}}}})
}

// Link is a user_send_link event.
func (s *Server) Link(userID, url, description string) Event {
	return s.UserSend("link", userID, Message{Text: url, Attachments: []Attachment{{Type: "link",
		Payload: map[string]any{"url": url, "description": description, "thumbnail": url + "/thumb.jpg"}}}})
}

// File is a user_send_file event.
func (s *Server) File(userID, name, url string, size int64) Event {
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		ext = name[i+1:]
	}
	return s.UserSend("file", userID, Message{Attachments: []Attachment{{Type: "file",
		Payload: map[string]any{"name": name, "url": url, "size": strconv.FormatInt(size, 10),
			"checksum": fmt.Sprintf("%x", sha256.Sum256([]byte(url)))[:32], "type": ext}}}})
}

// AnonymousText is an anonymous_send_text event (a visitor without a Zalo
// follow), which carries a conversation id.
func (s *Server) AnonymousText(anonID, conversationID, text string) Event {
	ev := s.UserSend("text", anonID, Message{Text: text, ConversationID: conversationID})
	ev.EventName = "anonymous_send_text"
	ev.UserIDByApp = ""
	return ev
}

// OAText is an oa_send_text echo: a message the OA sent to the user.
// adminID is set when a person typed it in the OA chat tool.
func (s *Server) OAText(userID, text, adminID string) Event {
	return Event{AppID: s.cfg.AppID, UserIDByApp: appUserID(userID), EventName: "oa_send_text",
		Sender: &Party{ID: s.cfg.OAID, AdminID: adminID}, Recipient: &Party{ID: userID},
		Message: &Message{MsgID: NewMessageID(), Text: text}, Timestamp: s.ts()}
}

// OAEcho is the echo of a message the fake accepted through the API.
func (s *Server) OAEcho(sent Send) Event {
	ev := s.OAText(sent.UserID, sent.Text, "")
	ev.Message.MsgID = sent.MessageID
	return ev
}

// Follow is a follow event; source is oa_profile, message_invite or
// social_plugin.
func (s *Server) Follow(userID, source string) Event {
	return Event{AppID: s.cfg.AppID, OAID: s.cfg.OAID, UserIDByApp: appUserID(userID), EventName: "follow",
		Follower: &Party{ID: userID}, Source: source, Timestamp: s.ts()}
}

// Unfollow is an unfollow event.
func (s *Server) Unfollow(userID string) Event {
	ev := s.Follow(userID, "oa_profile")
	ev.EventName = "unfollow"
	return ev
}

// Received is user_received_message for a message the OA sent. As in
// Chatwoot's reading of it, the OA is the sender and the user the recipient.
func (s *Server) Received(userID, msgID string) Event {
	return Event{AppID: s.cfg.AppID, UserIDByApp: appUserID(userID), EventName: "user_received_message",
		Sender: &Party{ID: s.cfg.OAID}, Recipient: &Party{ID: userID}, Message: &Message{MsgID: msgID}, Timestamp: s.ts()}
}

// Seen is user_seen_message for messages the OA sent.
func (s *Server) Seen(userID string, msgIDs ...string) Event {
	return Event{AppID: s.cfg.AppID, UserIDByApp: appUserID(userID), EventName: "user_seen_message",
		Sender: &Party{ID: s.cfg.OAID}, Recipient: &Party{ID: userID}, Message: &Message{MsgIDs: msgIDs}, Timestamp: s.ts()}
}

// Reacted is user_reacted_message: the user reacted to msgID.
func (s *Server) Reacted(userID, msgID, icon string) Event {
	return Event{AppID: s.cfg.AppID, UserIDByApp: appUserID(userID), EventName: "user_reacted_message",
		Sender: &Party{ID: userID}, Recipient: &Party{ID: s.cfg.OAID}, Message: &Message{MsgID: msgID, ReactIcon: icon}, Timestamp: s.ts()}
}

// SubmitInfo is user_submit_info: the user filled in the OA's info form.
func (s *Server) SubmitInfo(userID string, info Info) Event {
	return Event{AppID: s.cfg.AppID, UserIDByApp: appUserID(userID), EventName: "user_submit_info",
		Sender: &Party{ID: userID}, Recipient: &Party{ID: s.cfg.OAID}, Info: &info, Timestamp: s.ts()}
}

// ---------------------------------------------------------------- signing

// SignOption changes how a webhook is signed, to produce bad requests.
type SignOption func(*signOpts)

type signOpts struct {
	unsigned bool
	secret   string
	numRetry int
	header   string
}

// Unsigned leaves out the X-ZEvent-Signature header.
func Unsigned() SignOption { return func(o *signOpts) { o.unsigned = true } }

// WrongSecret signs with another secret, as a forger would.
func WrongSecret() SignOption { return func(o *signOpts) { o.secret = "not-the-oa-secret-key" } }

// SignatureHeader sends the given header value instead of the signature.
func SignatureHeader(v string) SignOption { return func(o *signOpts) { o.header = v } }

// Retry marks the delivery as Zalo's n-th retry (header num_retry).
func Retry(n int) SignOption { return func(o *signOpts) { o.numRetry = n } }

// Body is the exact bytes the fake sends for ev.
func (s *Server) Body(ev Event) []byte {
	b, err := json.Marshal(ev)
	if err != nil {
		panic(fmt.Sprintf("zalofake: marshal event: %v", err))
	}
	return b
}

// SignBody returns the X-ZEvent-Signature value for body, taking app_id and
// timestamp from the body as Zalo's receivers do.
func (s *Server) SignBody(body []byte) string {
	return s.signBody(body, s.cfg.OASecretKey)
}

func (s *Server) signBody(body []byte, secret string) string {
	var env struct {
		AppID     json.RawMessage `json:"app_id"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	_ = json.Unmarshal(body, &env)
	return Signature(rawText(env.AppID), body, rawText(env.Timestamp), secret)
}

// rawText is a JSON string's content or a number's literal text.
func rawText(r json.RawMessage) string {
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	return string(bytes.TrimSpace(r))
}

// Header returns the headers Zalo sends with body.
func (s *Server) Header(body []byte, opts ...SignOption) http.Header {
	o := signOpts{secret: s.cfg.OASecretKey}
	for _, f := range opts {
		f(&o)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "ZaloWebhook/zalofake")
	switch {
	case o.header != "":
		h.Set("X-ZEvent-Signature", o.header)
	case !o.unsigned:
		h.Set("X-ZEvent-Signature", s.signBody(body, o.secret))
	}
	if o.numRetry > 0 {
		h.Set("num_retry", strconv.Itoa(o.numRetry))
	}
	return h
}

// noteDelivered opens the user's free-reply allowance for user messages.
func (s *Server) noteDelivered(body []byte) {
	var ev Event
	if json.Unmarshal(body, &ev) != nil || ev.Sender == nil {
		return
	}
	if strings.HasPrefix(ev.EventName, "user_send_") || strings.HasPrefix(ev.EventName, "anonymous_send_") {
		ms, err := strconv.ParseInt(ev.Timestamp, 10, 64)
		if err == nil {
			s.UserMessaged(ev.Sender.ID, time.UnixMilli(ms))
		}
	}
}

// WebhookRequest is ev as the hub's ingress would hand it to the plugin,
// signed like Zalo signs it.
func (s *Server) WebhookRequest(ev Event, opts ...SignOption) *sdk.WebhookRequest {
	return s.WebhookRequestBody(s.Body(ev), opts...)
}

// WebhookRequestBody wraps arbitrary body bytes (golden files, malformed
// payloads) the same way.
func (s *Server) WebhookRequestBody(body []byte, opts ...SignOption) *sdk.WebhookRequest {
	s.noteDelivered(body)
	return &sdk.WebhookRequest{Method: http.MethodPost, Path: "/webhooks/zalo", Header: s.Header(body, opts...),
		Body: body, RemoteAddr: "127.0.0.1:0", ReceivedAt: s.cfg.Now()}
}

// HTTPRequest builds the signed POST Zalo would send to url.
func (s *Server) HTTPRequest(ctx context.Context, url string, ev Event, opts ...SignOption) (*http.Request, error) {
	body := s.Body(ev)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("zalofake: build webhook request: %w", err)
	}
	req.Header = s.Header(body, opts...)
	s.noteDelivered(body)
	return req, nil
}

// PostWebhook sends ev to url as Zalo would. The caller closes the body.
func (s *Server) PostWebhook(ctx context.Context, url string, ev Event, opts ...SignOption) (*http.Response, error) {
	req, err := s.HTTPRequest(ctx, url, ev, opts...)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("zalofake: post webhook: %w", err)
	}
	return res, nil
}
