package zalo

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// SignatureHeader carries Zalo's webhook signature.
const SignatureHeader = "X-ZEvent-Signature"

// flexString decodes a JSON string, or a number kept as its literal text.
// Zalo's ids are decimal strings above 2^53 and some senders write them (or
// the timestamp) as bare numbers: going through float64 would corrupt them.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*f = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*f = flexString(b)
	default:
		return fmt.Errorf("expected a string or a number, got %.20s", b)
	}
	return nil
}

// Webhook is a decoded Zalo webhook envelope.
type Webhook struct {
	AppID       flexString `json:"app_id"`
	OAID        flexString `json:"oa_id"`
	UserIDByApp flexString `json:"user_id_by_app"`
	EventName   string     `json:"event_name"`
	Timestamp   flexString `json:"timestamp"`
	Sender      party      `json:"sender"`
	Recipient   party      `json:"recipient"`
	Follower    party      `json:"follower"`
	Source      string     `json:"source"`
	Message     *wMessage  `json:"message"`
	Info        *wInfo     `json:"info"`
}

type party struct {
	ID      flexString `json:"id"`
	AdminID flexString `json:"admin_id"`
}

type wMessage struct {
	MsgID          flexString    `json:"msg_id"`
	MsgIDs         []flexString  `json:"msg_ids"`
	Text           string        `json:"text"`
	QuoteMsgID     flexString    `json:"quote_msg_id"`
	ConversationID flexString    `json:"conversation_id"`
	ReactIcon      string        `json:"react_icon"`
	Attachments    []wAttachment `json:"attachments"`
}

type wAttachment struct {
	Type    string   `json:"type"`
	Payload wPayload `json:"payload"`
}

type wPayload struct {
	URL         string       `json:"url"`
	Thumbnail   string       `json:"thumbnail"`
	Description string       `json:"description"`
	ID          flexString   `json:"id"`
	Name        string       `json:"name"`
	Size        flexString   `json:"size"`
	Checksum    string       `json:"checksum"`
	Type        string       `json:"type"`
	Coordinates *coordinates `json:"coordinates"`
}

type coordinates struct {
	Latitude  flexString `json:"latitude"`
	Longitude flexString `json:"longitude"`
}

type wInfo struct {
	Name     string `json:"name"`
	Phone    string `json:"phone"`
	Address  string `json:"address"`
	City     string `json:"city"`
	District string `json:"district"`
	Ward     string `json:"ward"`
}

// DecodeWebhook decodes a raw webhook body. It runs before the signature is
// checked (the signed fields live in the body), so it must hold up to any
// input; FuzzParseWebhook keeps it honest.
func DecodeWebhook(body []byte) (*Webhook, error) {
	var w Webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("decode zalo webhook: %w", err)
	}
	if w.EventName == "" {
		return nil, errors.New("decode zalo webhook: no event_name")
	}
	if w.AppID == "" || w.Timestamp == "" {
		return nil, errors.New("decode zalo webhook: app_id and timestamp are required")
	}
	return &w, nil
}

// Time is the event's provider time (Zalo sends epoch milliseconds).
func (w *Webhook) Time() (time.Time, bool) {
	ms, err := strconv.ParseInt(string(w.Timestamp), 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// mac is sha256(appID + body + timestamp + secret), written piecewise so no
// concatenated copy of the body is made.
func mac(appID string, body []byte, timestamp, secret string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(appID))
	h.Write(body)
	h.Write([]byte(timestamp))
	h.Write([]byte(secret))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// VerifySignature checks an X-ZEvent-Signature value ("mac=<hex>") against
// the plain SHA-256 Zalo computes over app id + raw body + timestamp + OA
// secret key. The prefix is optional and the hex case-insensitive, as seen
// from Zalo's own senders; the comparison is constant-time.
func VerifySignature(header, appID string, body []byte, timestamp, oaSecretKey string) bool {
	got := strings.TrimSpace(header)
	if len(got) >= 4 && strings.EqualFold(got[:4], "mac=") {
		got = strings.TrimSpace(got[4:])
	}
	if len(got) != 2*sha256.Size {
		return false
	}
	var gotSum [sha256.Size]byte
	if _, err := hex.Decode(gotSum[:], []byte(got)); err != nil {
		return false
	}
	want := mac(appID, body, timestamp, oaSecretKey)
	return subtle.ConstantTimeCompare(gotSum[:], want[:]) == 1
}

// headerValue looks a header up case-insensitively: requests that did not
// cross the gRPC boundary may carry non-canonical keys.
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// ParseWebhook decodes body and normalizes it into events for the OA oaID,
// without checking the signature and without any state: the pure part of
// HandleWebhook.
func ParseWebhook(body []byte, oaID, instance string) (*Webhook, []sdk.Event, error) {
	w, err := DecodeWebhook(body)
	if err != nil {
		return nil, nil, err
	}
	return w, w.Events(oaID, instance, body), nil
}

// messageTypes maps the suffix of user_send_*/oa_send_*/anonymous_send_*
// to the SDK's message type.
var messageTypes = map[string]string{
	"text": "text", "image": "image", "gif": "image", "audio": "audio", "video": "video",
	"sticker": "sticker", "location": "location", "link": "link", "file": "file",
	"business_card": "contacts", "list": "interactive",
}

// Events normalizes the webhook into SDK events. raw is the request body,
// kept on each event for audit. Events of another OA, of groups and of
// kinds the hub has no use for yield none.
func (w *Webhook) Events(oaID, instance string, raw []byte) []sdk.Event {
	ts, _ := w.Time()
	name := w.EventName
	if strings.Contains(name, "group") {
		return nil // group chats are not conversations the hub handles
	}
	base := func(kind sdk.EventKind, user string) sdk.Event {
		md := map[string]string{"event_name": name, "app_id": string(w.AppID)}
		if w.UserIDByApp != "" {
			md["user_id_by_app"] = string(w.UserIDByApp)
		}
		return sdk.Event{
			Kind:            kind,
			ConversationKey: ConversationKey(oaID, user),
			Contact:         sdk.Identity{Channel: "zalo", UserID: user, Instance: instance},
			Timestamp:       ts,
			Raw:             raw,
			Metadata:        md,
		}
	}
	sameOA := func(id flexString) bool { return id == "" || string(id) == oaID }
	msg := w.Message
	if msg == nil {
		msg = &wMessage{}
	}

	var prefix string
	switch {
	case strings.HasPrefix(name, "user_send_"):
		prefix = "user_send_"
	case strings.HasPrefix(name, "anonymous_send_"):
		prefix = "anonymous_send_"
	case strings.HasPrefix(name, "oa_send_"):
		prefix = "oa_send_"
	}
	switch {
	case prefix != "":
		user, oa := w.Sender.ID, w.Recipient.ID
		if prefix == "oa_send_" {
			user, oa = w.Recipient.ID, w.Sender.ID
		}
		if user == "" || !sameOA(oa) {
			return nil
		}
		ev := base(sdk.EventMessage, string(user))
		ev.ID = messageID(msg.MsgID, raw)
		ev.Message = convertMessage(strings.TrimPrefix(name, prefix), msg)
		if prefix == "oa_send_" {
			// Sent from the OA: by a person in Zalo's OA manager (admin_id
			// set) or by another API client. Either way not our bot, so
			// the hub must let the human take over. Our own sends are
			// filtered out by the connector before this reaches the hub.
			ev.Direction, ev.Author = sdk.DirectionOutbound, sdk.AuthorAgent
			ev.AgentID = string(w.Sender.AdminID)
			if ev.AgentID != "" {
				ev.Metadata["admin_id"] = ev.AgentID
			}
		} else {
			ev.Direction, ev.Author = sdk.DirectionInbound, sdk.AuthorCustomer
		}
		if prefix == "anonymous_send_" {
			ev.Metadata["anonymous"] = "true"
		}
		if msg.ConversationID != "" {
			ev.Metadata["conversation_id"] = string(msg.ConversationID)
		}
		return []sdk.Event{ev}

	case name == "user_received_message" || name == "user_seen_message":
		// The OA is the sender and the user the recipient (Chatwoot); take
		// whichever side is not the OA so either reading works.
		user := w.Recipient.ID
		if user == "" || string(user) == oaID {
			user = w.Sender.ID
		}
		if user == "" || string(user) == oaID {
			return nil
		}
		status, idPrefix := sdk.DeliveryDelivered, "received:"
		if name == "user_seen_message" {
			status, idPrefix = sdk.DeliveryRead, "seen:"
		}
		ids := msg.MsgIDs
		if len(ids) == 0 && msg.MsgID != "" {
			ids = []flexString{msg.MsgID}
		}
		var out []sdk.Event
		seen := map[flexString]bool{}
		for _, id := range ids {
			if id == "" || seen[id] {
				continue
			}
			seen[id] = true
			ev := base(sdk.EventDelivery, string(user))
			ev.ID = idPrefix + string(id)
			ev.Direction = sdk.DirectionOutbound
			ev.Delivery = &sdk.Delivery{MessageID: string(id), Status: status}
			out = append(out, ev)
		}
		return out

	case name == "follow" || name == "unfollow":
		user := w.Follower.ID
		if user == "" {
			user = w.Sender.ID
		}
		if user == "" || !sameOA(w.OAID) {
			return nil
		}
		kind := sdk.EventFollow
		if name == "unfollow" {
			kind = sdk.EventUnfollow
		}
		ev := base(kind, string(user))
		ev.ID = name + ":" + string(user) + ":" + string(w.Timestamp)
		ev.Direction = sdk.DirectionInbound
		if w.Source != "" {
			ev.Metadata["source"] = w.Source
		}
		return []sdk.Event{ev}

	case name == "user_reacted_message" || name == "oa_reacted_message":
		user, oa := w.Sender.ID, w.Recipient.ID
		author, dir := sdk.AuthorCustomer, sdk.DirectionInbound
		if name == "oa_reacted_message" {
			user, oa = w.Recipient.ID, w.Sender.ID
			author, dir = sdk.AuthorAgent, sdk.DirectionOutbound
		}
		if user == "" || !sameOA(oa) {
			return nil
		}
		ev := base(sdk.EventMessage, string(user))
		ev.ID = "reaction:" + string(msg.MsgID) + ":" + string(user) + ":" + string(w.Timestamp)
		ev.Direction, ev.Author = dir, author
		ev.AgentID = string(w.Sender.AdminID)
		ev.Message = &sdk.Message{Type: "reaction", Reaction: msg.ReactIcon, ReplyTo: string(msg.MsgID)}
		return []sdk.Event{ev}

	case name == "user_submit_info":
		user := w.Sender.ID
		if user == "" || w.Info == nil || !sameOA(w.Recipient.ID) {
			return nil
		}
		ev := base(sdk.EventContactSync, string(user))
		ev.ID = "submit_info:" + string(user) + ":" + string(w.Timestamp)
		ev.Direction = sdk.DirectionInbound
		ev.Contact.DisplayName = w.Info.Name
		ev.Contact.Phone = normalizePhone(w.Info.Phone)
		for k, v := range map[string]string{"address": w.Info.Address, "city": w.Info.City, "district": w.Info.District, "ward": w.Info.Ward} {
			if v != "" {
				ev.Metadata[k] = v
			}
		}
		return []sdk.Event{ev}
	}
	// Group, tag, consent, call and other events: nothing for the hub.
	return nil
}

// ConversationKey is the hub's key for one user's conversation with an OA.
func ConversationKey(oaID, userID string) string { return "zalo:" + oaID + ":" + userID }

// messageID is Zalo's msg_id, or, for a message without one, a digest of
// the body so that a redelivery still dedupes.
func messageID(id flexString, raw []byte) string {
	if id != "" {
		return string(id)
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:16])
}

func convertMessage(kind string, m *wMessage) *sdk.Message {
	typ, ok := messageTypes[kind]
	if !ok {
		typ = "unknown"
	}
	out := &sdk.Message{Type: typ, Text: m.Text, ReplyTo: string(m.QuoteMsgID)}
	for _, a := range m.Attachments {
		p := a.Payload
		switch a.Type {
		case "location":
			if p.Coordinates != nil {
				lat, err1 := strconv.ParseFloat(string(p.Coordinates.Latitude), 64)
				lon, err2 := strconv.ParseFloat(string(p.Coordinates.Longitude), 64)
				if err1 == nil && err2 == nil && finite(lat) && finite(lon) && math.Abs(lat) <= 90 && math.Abs(lon) <= 180 {
					out.Location = &sdk.Location{Latitude: lat, Longitude: lon}
				}
			}
			continue
		case "image", "gif":
			att := sdk.Attachment{Type: "image", URL: p.URL, ThumbnailURL: p.Thumbnail}
			if a.Type == "gif" {
				att.MimeType = "image/gif"
			}
			out.Attachments = append(out.Attachments, att)
		case "audio":
			out.Attachments = append(out.Attachments, sdk.Attachment{Type: "audio", URL: p.URL})
		case "video":
			out.Attachments = append(out.Attachments, sdk.Attachment{Type: "video", URL: p.URL, ThumbnailURL: p.Thumbnail, Caption: p.Description})
		case "sticker":
			out.Attachments = append(out.Attachments, sdk.Attachment{Type: "sticker", URL: p.URL, MediaID: string(p.ID)})
		case "link":
			out.Attachments = append(out.Attachments, sdk.Attachment{Type: "link", URL: p.URL, ThumbnailURL: p.Thumbnail, Caption: p.Description})
		case "file":
			size, _ := strconv.ParseInt(string(p.Size), 10, 64)
			if size < 0 {
				size = 0
			}
			out.Attachments = append(out.Attachments, sdk.Attachment{Type: "file", URL: p.URL, Name: p.Name, Size: size, MimeType: mimeOf(p.Type)})
		case "business_card", "contact":
			out.Attachments = append(out.Attachments, sdk.Attachment{Type: "contact", URL: p.URL, ThumbnailURL: p.Thumbnail, Caption: p.Description})
		default:
			if p.URL != "" {
				out.Attachments = append(out.Attachments, sdk.Attachment{Type: a.Type, URL: p.URL, ThumbnailURL: p.Thumbnail, Caption: p.Description})
			}
		}
	}
	return out
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// fileTypes maps Zalo's file "type" (an extension) to a MIME type. A fixed
// table rather than mime.TypeByExtension, whose answers depend on the
// machine's mime.types.
var fileTypes = map[string]string{
	"pdf": "application/pdf", "doc": "application/msword", "xls": "application/vnd.ms-excel",
	"ppt":  "application/vnd.ms-powerpoint",
	"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	"pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
	"txt":  "text/plain", "csv": "text/csv", "zip": "application/zip", "rar": "application/vnd.rar",
	"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "mp4": "video/mp4", "mp3": "audio/mpeg",
}

func mimeOf(ext string) string { return fileTypes[strings.ToLower(ext)] }

// normalizePhone writes a Vietnamese number as E.164 ("0912..." or
// "84912..." → "+84912..."); anything else is returned as given.
func normalizePhone(p string) string {
	p = strings.Map(func(r rune) rune {
		if r == ' ' || r == '.' || r == '-' || r == '(' || r == ')' {
			return -1
		}
		return r
	}, p)
	switch {
	case p == "" || strings.HasPrefix(p, "+"):
		return p
	case !isDecimal(p):
		return p
	case strings.HasPrefix(p, "84") && len(p) >= 11:
		return "+" + p
	case strings.HasPrefix(p, "0") && len(p) >= 10:
		return "+84" + p[1:]
	}
	return p
}
