package whatsapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// ChannelName is the Identity.Channel and the conversation key prefix.
const ChannelName = "whatsapp"

// Webhook fields we subscribe to. Others (template status updates, account
// updates...) are acknowledged and ignored.
const (
	fieldMessages     = "messages"
	fieldEchoes       = "smb_message_echoes"
	fieldAppState     = "smb_app_state_sync"
	fieldHistory      = "history"
	objectWhatsApp    = "whatsapp_business_account"
	sourceBusinessApp = "whatsapp_business_app"
)

// ConversationKey is the key of the conversation between one business phone
// number and one WhatsApp user (wa_id, or the business-scoped user id when
// the user hides the phone number).
func ConversationKey(phoneNumberID, user string) string {
	return ChannelName + ":" + phoneNumberID + ":" + user
}

// parseOptions say which number this instance serves and how to tag events.
type parseOptions struct {
	instance      string
	phoneNumberID string
}

// parsed is what one notification yielded.
type parsed struct {
	events []sdk.Event
	// opens: per user key, the time of their latest customer message in
	// this notification; each opens (renews) the 24-hour window.
	opens map[string]time.Time
	// ignored counts items deliberately dropped: other phone numbers, group
	// messages, unknown fields. malformed counts items we could not read.
	ignored, malformed int
	// accountErrors are value.errors[] (e.g. 130429 at account level) and
	// history errors (the user declined to share history).
	accountErrors []waError
}

// errNotNotification marks a body that is not a JSON object of Meta's
// notification shape: the request gets a 400.
var errNotNotification = errors.New("not a WhatsApp webhook notification")

// parseNotification turns a verified webhook body into events. It never
// panics on any input (FuzzParseWebhook) and skips single items it cannot
// read rather than dropping a whole batch: Meta would redeliver the batch
// for 7 days, and its good items with it.
func parseNotification(body []byte, opts parseOptions) (*parsed, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, errNotNotification
	}
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotNotification, err)
	}
	p := &parsed{opens: map[string]time.Time{}}
	if n.Object != objectWhatsApp {
		// Signed by Meta but about another product: acknowledge, ignore.
		p.ignored++
		return p, nil
	}
	for _, e := range n.Entry {
		for _, ch := range e.Changes {
			var v changeValue
			if err := json.Unmarshal(ch.Value, &v); err != nil {
				p.malformed++
				continue
			}
			if v.Metadata.PhoneNumberID != "" && v.Metadata.PhoneNumberID != opts.phoneNumberID {
				// Another number of the same app: its own instance handles it.
				p.ignored++
				continue
			}
			c := changeCtx{p: p, opts: opts, v: &v, wabaID: e.ID, field: ch.Field}
			switch ch.Field {
			case fieldMessages:
				c.messages()
				c.statuses()
				p.accountErrors = append(p.accountErrors, v.Errors...)
			case fieldEchoes:
				c.echoes()
			case fieldAppState:
				c.stateSync()
			case fieldHistory:
				c.history()
			default:
				p.ignored++
			}
		}
	}
	return p, nil
}

// changeCtx is one change value being turned into events.
type changeCtx struct {
	p      *parsed
	opts   parseOptions
	v      *changeValue
	wabaID string
	field  string
}

func (c *changeCtx) baseMeta(waType string) map[string]string {
	m := map[string]string{
		"phone_number_id": c.opts.phoneNumberID,
		"field":           c.field,
	}
	setIf(m, "display_phone_number", c.v.Metadata.DisplayPhoneNumber)
	setIf(m, "waba_id", c.wabaID)
	setIf(m, "whatsapp_type", waType)
	return m
}

func (c *changeCtx) open(user string, at time.Time) {
	if at.IsZero() {
		return
	}
	if prev, ok := c.p.opens[user]; !ok || at.After(prev) {
		c.p.opens[user] = at
	}
}

// identity builds the contact identity of a WhatsApp user. wa_id is the
// phone number in digits; users who adopted a username may only have a
// business-scoped user id (BSUID), which then becomes the UserID.
func (c *changeCtx) identity(waID, bsuid string, meta map[string]string) (sdk.Identity, string) {
	id := sdk.Identity{Channel: ChannelName, Instance: c.opts.instance}
	ct := findContact(c.v.Contacts, waID, bsuid)
	if ct != nil {
		if waID == "" {
			waID = normalizeWaID(ct.WaID)
		}
		if bsuid == "" {
			bsuid = ct.UserID
		}
		id.DisplayName = ct.Profile.Name
		setIf(meta, "username", ct.Profile.Username)
		setIf(meta, "parent_bsuid", ct.ParentUserID)
	}
	setIf(meta, "bsuid", bsuid)
	switch {
	case waID != "":
		id.UserID = waID
		if isDigits(waID) {
			id.Phone = "+" + waID
		}
	default:
		id.UserID = bsuid
	}
	return id, id.UserID
}

func (c *changeCtx) messages() {
	for _, raw := range c.v.Messages {
		var m waMessage
		if err := json.Unmarshal(raw, &m); err != nil || m.ID == "" {
			c.p.malformed++
			continue
		}
		if m.GroupID != "" {
			c.p.ignored++ // groups are out of scope
			continue
		}
		meta := c.baseMeta(m.Type)
		contact, user := c.identity(normalizeWaID(m.From), m.FromUserID, meta)
		if user == "" {
			c.p.malformed++
			continue
		}
		ev := sdk.Event{
			ID:              m.ID,
			Kind:            sdk.EventMessage,
			ConversationKey: ConversationKey(c.opts.phoneNumberID, user),
			Contact:         contact,
			Direction:       sdk.DirectionInbound,
			Author:          sdk.AuthorCustomer,
			Timestamp:       unixTime(m.Timestamp),
			Raw:             raw,
			Metadata:        meta,
		}
		if m.Type == "system" {
			// "user changed number" and the like: not a turn to answer, and
			// not a customer message that opens the window.
			ev.Kind, ev.Author = sdk.EventOther, sdk.AuthorSystem
			if m.System != nil {
				ev.Message = &sdk.Message{Type: "unknown", Text: m.System.Body}
				setIf(meta, "system_type", m.System.Type)
				setIf(meta, "new_wa_id", firstNonEmpty(m.System.WaID, m.System.NewWaID))
			}
		} else {
			ev.Message = convertContent(&m, meta)
			c.open(user, ev.Timestamp)
		}
		c.p.events = append(c.p.events, ev)
	}
}

func (c *changeCtx) statuses() {
	for _, raw := range c.v.Statuses {
		var s waStatus
		if err := json.Unmarshal(raw, &s); err != nil || s.ID == "" || s.Status == "" {
			c.p.malformed++
			continue
		}
		if s.RecipientType == "group" {
			c.p.ignored++
			continue
		}
		meta := c.baseMeta("")
		contact, user := c.identity(normalizeWaID(s.RecipientID), s.RecipientUserID, meta)
		if user == "" {
			c.p.malformed++
			continue
		}
		d := &sdk.Delivery{MessageID: s.ID, Status: deliveryStatus(s.Status)}
		meta["status"] = s.Status
		if len(s.Errors) > 0 {
			e := s.Errors[0]
			d.ErrorCode = strconv.Itoa(e.Code)
			d.ErrorMessage = e.describe()
			setIf(meta, "error_reason", classify(e.Code, 0).reason)
		}
		if s.Conversation != nil {
			setIf(meta, "conversation_id", s.Conversation.ID)
			setIf(meta, "conversation_origin", s.Conversation.Origin.Type)
		}
		if s.Pricing != nil {
			setIf(meta, "pricing_category", s.Pricing.Category)
			setIf(meta, "pricing_model", s.Pricing.PricingModel)
			meta["billable"] = strconv.FormatBool(s.Pricing.Billable)
		}
		setIf(meta, "biz_opaque_callback_data", s.BizOpaqueCallbackData)
		c.p.events = append(c.p.events, sdk.Event{
			// Meta sends one status per (message, status); both together
			// are the dedupe key.
			ID:              s.ID + ":" + s.Status,
			Kind:            sdk.EventDelivery,
			ConversationKey: ConversationKey(c.opts.phoneNumberID, user),
			Contact:         contact,
			Direction:       sdk.DirectionOutbound,
			Delivery:        d,
			Timestamp:       unixTime(s.Timestamp),
			Raw:             raw,
			Metadata:        meta,
		})
	}
}

// echoes are messages a person typed in the WhatsApp Business App on the
// same number (coexistence): an agent's message, so the bot steps aside.
// They never open the customer-service window.
func (c *changeCtx) echoes() {
	for _, raw := range c.v.MessageEchoes {
		var m waMessage
		if err := json.Unmarshal(raw, &m); err != nil || m.ID == "" {
			c.p.malformed++
			continue
		}
		if m.GroupID != "" {
			c.p.ignored++
			continue
		}
		meta := c.baseMeta(m.Type)
		meta["source"] = sourceBusinessApp
		contact, user := c.identity(normalizeWaID(m.To), m.ToUserID, meta)
		if user == "" {
			c.p.malformed++
			continue
		}
		c.p.events = append(c.p.events, sdk.Event{
			ID:              m.ID,
			Kind:            sdk.EventMessage,
			ConversationKey: ConversationKey(c.opts.phoneNumberID, user),
			Contact:         contact,
			Direction:       sdk.DirectionOutbound,
			Author:          sdk.AuthorAgent,
			Message:         convertContent(&m, meta),
			Timestamp:       unixTime(m.Timestamp),
			Raw:             raw,
			Metadata:        meta,
		})
	}
}

// stateSync carries the phone app's contact book (add, edit as add, remove).
func (c *changeCtx) stateSync() {
	for _, raw := range c.v.StateSync {
		var s waStateSync
		if err := json.Unmarshal(raw, &s); err != nil {
			c.p.malformed++
			continue
		}
		if s.Type != "contact" {
			c.p.ignored++
			continue
		}
		phone := digitsOnly(s.Contact.PhoneNumber)
		if phone == "" || s.Action == "" {
			c.p.malformed++
			continue
		}
		meta := c.baseMeta("")
		meta["action"] = s.Action
		setIf(meta, "first_name", s.Contact.FirstName)
		c.p.events = append(c.p.events, sdk.Event{
			ID:              "contact_sync:" + s.Action + ":" + phone + ":" + strconv.FormatInt(int64(s.Metadata.Timestamp), 10),
			Kind:            sdk.EventContactSync,
			ConversationKey: ConversationKey(c.opts.phoneNumberID, phone),
			Contact: sdk.Identity{Channel: ChannelName, Instance: c.opts.instance, UserID: phone,
				Phone: "+" + phone, DisplayName: s.Contact.FullName},
			Timestamp: unixTime(s.Metadata.Timestamp),
			Raw:       raw,
			Metadata:  meta,
		})
	}
}

// history holds past chats imported at coexistence onboarding. They become
// EventHistory: stored in the conversation, never answered, and they do not
// open the window (whether pre-onboarding app chats count towards the API's
// window is not documented; the conservative reading avoids a 131047).
func (c *changeCtx) history() {
	for _, chunk := range c.v.History {
		c.p.accountErrors = append(c.p.accountErrors, chunk.Errors...)
		for _, th := range chunk.Threads {
			thread := normalizeWaID(th.ID)
			for _, raw := range th.Messages {
				var m waMessage
				if err := json.Unmarshal(raw, &m); err != nil || m.ID == "" {
					c.p.malformed++
					continue
				}
				if m.GroupID != "" {
					c.p.ignored++
					continue
				}
				from := normalizeWaID(m.From)
				fromMe := m.HistoryContext != nil && m.HistoryContext.FromMe
				inbound := !fromMe && m.To == "" && (thread == "" || from == thread)
				meta := c.baseMeta(m.Type)
				meta["history_phase"] = strconv.FormatInt(int64(chunk.Metadata.Phase), 10)
				meta["history_chunk_order"] = strconv.FormatInt(int64(chunk.Metadata.ChunkOrder), 10)
				meta["history_progress"] = strconv.FormatInt(int64(chunk.Metadata.Progress), 10)
				if m.HistoryContext != nil {
					setIf(meta, "history_status", m.HistoryContext.Status)
				}
				user, bsuid := thread, ""
				if user == "" {
					if inbound {
						user, bsuid = from, m.FromUserID
					} else {
						user, bsuid = normalizeWaID(m.To), m.ToUserID
					}
				}
				contact, key := c.identity(user, bsuid, meta)
				if key == "" {
					c.p.malformed++
					continue
				}
				ev := sdk.Event{
					ID:              m.ID,
					Kind:            sdk.EventHistory,
					ConversationKey: ConversationKey(c.opts.phoneNumberID, key),
					Contact:         contact,
					Direction:       sdk.DirectionInbound,
					Author:          sdk.AuthorCustomer,
					Message:         convertContent(&m, meta),
					Timestamp:       unixTime(m.Timestamp),
					Raw:             raw,
					Metadata:        meta,
				}
				if !inbound {
					ev.Direction, ev.Author = sdk.DirectionOutbound, sdk.AuthorAgent
					meta["source"] = sourceBusinessApp
				}
				c.p.events = append(c.p.events, ev)
			}
		}
	}
}

// convertContent maps a message body of any type to the SDK's Message.
func convertContent(m *waMessage, meta map[string]string) *sdk.Message {
	out := &sdk.Message{Type: "unknown"}
	if m.Context != nil {
		out.ReplyTo = m.Context.ID
		if m.Context.Forwarded || m.Context.FrequentlyForwarded {
			meta["forwarded"] = "true"
		}
	}
	media := func(typ string, md *waMedia) {
		out.Type = typ
		if md == nil {
			return
		}
		out.Text = md.Caption
		out.Attachments = []sdk.Attachment{{Type: typ, MediaID: md.ID, MimeType: md.MimeType,
			Name: md.Filename, Caption: md.Caption, URL: md.URL}}
		if md.Voice {
			meta["voice"] = "true"
		}
		if md.Animated {
			meta["animated"] = "true"
		}
		setIf(meta, "media_sha256", md.SHA256)
	}
	switch m.Type {
	case "text":
		out.Type = "text"
		if m.Text != nil {
			out.Text = m.Text.Body
		}
	case "image":
		media("image", m.Image)
	case "video":
		media("video", m.Video)
	case "audio":
		media("audio", m.Audio)
	case "sticker":
		media("sticker", m.Sticker)
	case "document":
		media("file", m.Document)
	case "location":
		out.Type = "location"
		if l := m.Location; l != nil {
			out.Location = &sdk.Location{Latitude: l.Latitude, Longitude: l.Longitude, Name: l.Name, Address: l.Address}
		}
	case "contacts":
		out.Type = "contacts"
		for _, sc := range m.Contacts {
			a := sdk.Attachment{Type: "contact", Name: sc.Name.FormattedName}
			if len(sc.Phones) > 0 {
				ph := sc.Phones[0]
				if d := digitsOnly(firstNonEmpty(ph.WaID, ph.Phone)); d != "" {
					a.URL = "tel:+" + d
				}
			}
			out.Attachments = append(out.Attachments, a)
		}
	case "interactive":
		out.Type = "interactive"
		if in := m.Interactive; in != nil {
			setIf(meta, "interactive_type", in.Type)
			switch {
			case in.ButtonReply != nil:
				out.Text, out.InteractiveID = in.ButtonReply.Title, in.ButtonReply.ID
			case in.ListReply != nil:
				out.Text, out.InteractiveID = in.ListReply.Title, in.ListReply.ID
				setIf(meta, "interactive_description", in.ListReply.Description)
			case in.NfmReply != nil:
				out.Text, out.InteractiveID = in.NfmReply.Body, in.NfmReply.Name
				setIf(meta, "flow_response_json", in.NfmReply.ResponseJSON)
			}
		}
	case "button":
		// A tap on a template's quick-reply button (legacy type).
		out.Type = "interactive"
		meta["interactive_type"] = "template_button"
		if m.Button != nil {
			out.Text, out.InteractiveID = m.Button.Text, m.Button.Payload
		}
	case "reaction":
		out.Type = "reaction"
		if m.Reaction != nil {
			// An empty emoji means the customer removed their reaction.
			out.Reaction, out.ReplyTo = m.Reaction.Emoji, m.Reaction.MessageID
		}
	case "order":
		if m.Order != nil {
			out.Text = m.Order.Text
			setIf(meta, "order_catalog_id", m.Order.CatalogID)
			meta["order_items"] = strconv.Itoa(len(m.Order.ProductItems))
		}
	}
	if len(m.Errors) > 0 {
		meta["error_code"] = strconv.Itoa(m.Errors[0].Code)
		setIf(meta, "error_title", m.Errors[0].Title)
	}
	if r := m.Referral; r != nil {
		// Click-to-WhatsApp ads: where the lead came from.
		setIf(meta, "referral_source_url", r.SourceURL)
		setIf(meta, "referral_source_id", r.SourceID)
		setIf(meta, "referral_source_type", r.SourceType)
		setIf(meta, "referral_headline", r.Headline)
		setIf(meta, "referral_body", r.Body)
		setIf(meta, "ctwa_clid", r.CtwaClid)
	}
	return out
}

func deliveryStatus(s string) sdk.DeliveryStatus {
	switch s {
	case "sent":
		return sdk.DeliverySent
	case "delivered":
		return sdk.DeliveryDelivered
	case "read", "played":
		return sdk.DeliveryRead
	case "failed":
		return sdk.DeliveryFailed
	}
	return sdk.DeliveryUnknown
}

func (e waError) describe() string {
	parts := make([]string, 0, 2)
	if t := firstNonEmpty(e.Title, e.Message); t != "" {
		parts = append(parts, t)
	}
	if d := e.ErrorData.Details; d != "" && !strings.EqualFold(d, e.Title) {
		parts = append(parts, d)
	}
	return redactDigits(strings.Join(parts, ": "))
}

func findContact(cs []waContact, waID, bsuid string) *waContact {
	for i := range cs {
		if waID != "" && normalizeWaID(cs[i].WaID) == waID {
			return &cs[i]
		}
		if bsuid != "" && cs[i].UserID == bsuid {
			return &cs[i]
		}
	}
	if len(cs) == 1 && waID == "" && bsuid == "" {
		return &cs[0]
	}
	return nil
}

// normalizeWaID strips the "+" some payloads (groups, history) put before
// the digits, so one user has one key.
func normalizeWaID(s string) string {
	return strings.TrimPrefix(strings.TrimSpace(s), "+")
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func digitsOnly(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func setIf(m map[string]string, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
