package zalo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// PathSendCS is Zalo's v3 customer-service message endpoint.
const PathSendCS = "/v3.0/oa/message/cs"

// csRequest is the body of a v3 customer-service message.
type csRequest struct {
	Recipient struct {
		UserID string `json:"user_id"`
	} `json:"recipient"`
	Message csMessage `json:"message"`
}

type csMessage struct {
	Text           string        `json:"text,omitempty"`
	QuoteMessageID string        `json:"quote_message_id,omitempty"`
	Attachment     *csAttachment `json:"attachment,omitempty"`
}

type csAttachment struct {
	Type    string `json:"type"`
	Payload any    `json:"payload"`
}

type csTemplate struct {
	TemplateType string      `json:"template_type,omitempty"`
	Elements     []csElement `json:"elements,omitempty"`
	Buttons      []csButton  `json:"buttons,omitempty"`
}

type csElement struct {
	MediaType     string    `json:"media_type,omitempty"`
	AttachmentID  string    `json:"attachment_id,omitempty"`
	URL           string    `json:"url,omitempty"`
	Title         string    `json:"title,omitempty"`
	Subtitle      string    `json:"subtitle,omitempty"`
	ImageURL      string    `json:"image_url,omitempty"`
	DefaultAction *csAction `json:"default_action,omitempty"`
}

type csAction struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

type csButton struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Payload any    `json:"payload"`
}

// buildPayload turns an outbound message into the v3 request body.
//   - text: message.text (ReplyTo becomes quote_message_id)
//   - image: a media template with the image's attachment_id (MediaID, from
//     Zalo's upload) or url, the text as caption
//   - file: a file attachment by upload token (MediaID)
//   - interactive (or any message with Buttons): link attachments become a
//     list template, Buttons become oa.open.url / oa.open.phone /
//     oa.query.show buttons
func buildPayload(user string, m *sdk.Outbound) ([]byte, error) {
	var req csRequest
	req.Recipient.UserID = user
	req.Message.Text = m.Text
	req.Message.QuoteMessageID = m.ReplyTo
	typ := m.Type
	if typ == "" || (typ == "text" && len(m.Buttons) > 0) {
		typ = "text"
		if len(m.Buttons) > 0 {
			typ = "interactive"
		}
	}
	switch typ {
	case "text":
		if strings.TrimSpace(m.Text) == "" {
			return nil, sdk.Invalid(errors.New("zalo: a text message needs text"))
		}
	case "image":
		a, ok := firstAttachment(m.Attachments, "image", "")
		if !ok || (a.MediaID == "" && a.URL == "") {
			return nil, sdk.Invalid(errors.New("zalo: an image message needs an image attachment with a URL or an uploaded attachment id (MediaID)"))
		}
		el := csElement{MediaType: "image", AttachmentID: a.MediaID}
		if a.MediaID == "" {
			el.URL = a.URL
		}
		if req.Message.Text == "" {
			req.Message.Text = a.Caption
		}
		req.Message.Attachment = &csAttachment{Type: "template", Payload: csTemplate{TemplateType: "media", Elements: []csElement{el}, Buttons: buttons(m.Buttons)}}
	case "file":
		a, ok := firstAttachment(m.Attachments, "file", "")
		if !ok || a.MediaID == "" {
			return nil, sdk.Invalid(errors.New("zalo: files are sent by the token of a file uploaded to Zalo (Attachment.MediaID); a URL alone cannot be sent"))
		}
		req.Message.Attachment = &csAttachment{Type: "file", Payload: map[string]string{"token": a.MediaID}}
	case "interactive":
		var els []csElement
		for _, a := range m.Attachments {
			if a.Type != "link" && a.Type != "" {
				continue
			}
			if a.URL == "" {
				return nil, sdk.Invalid(errors.New("zalo: a link element needs a URL"))
			}
			title := firstNonEmpty(a.Name, a.Caption, a.URL)
			sub := ""
			if a.Name != "" {
				sub = a.Caption
			}
			els = append(els, csElement{Title: title, Subtitle: sub, ImageURL: a.ThumbnailURL, DefaultAction: &csAction{Type: "oa.open.url", URL: a.URL}})
		}
		if len(els) == 0 && len(m.Buttons) == 0 {
			return nil, sdk.Invalid(errors.New("zalo: an interactive message needs buttons or link attachments"))
		}
		if len(els) == 0 && strings.TrimSpace(m.Text) == "" {
			return nil, sdk.Invalid(errors.New("zalo: a button message needs text"))
		}
		t := csTemplate{Buttons: buttons(m.Buttons)}
		if len(els) > 0 {
			t.TemplateType, t.Elements = "list", els
		}
		req.Message.Attachment = &csAttachment{Type: "template", Payload: t}
	case "template":
		return nil, sdk.Invalid(errors.New("zalo: template (ZNS) messages are not supported by this plugin; send text, image, file or interactive")).WithReason("unsupported_type")
	default:
		return nil, sdk.Invalid(fmt.Errorf("zalo: unsupported message type %q", m.Type)).WithReason("unsupported_type")
	}
	b, err := json.Marshal(&req)
	if err != nil {
		return nil, sdk.Invalid(fmt.Errorf("zalo: encode message: %w", err))
	}
	return b, nil
}

func firstAttachment(as []sdk.Attachment, typ, alt string) (sdk.Attachment, bool) {
	for _, a := range as {
		if a.Type == typ || a.Type == alt || a.Type == "" {
			return a, true
		}
	}
	return sdk.Attachment{}, false
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func buttons(bs []sdk.Button) []csButton {
	var out []csButton
	for _, b := range bs {
		switch {
		case strings.HasPrefix(b.URL, "tel:"):
			out = append(out, csButton{Title: b.Title, Type: "oa.open.phone", Payload: map[string]string{"phone_code": strings.TrimPrefix(b.URL, "tel:")}})
		case b.URL != "":
			out = append(out, csButton{Title: b.Title, Type: "oa.open.url", Payload: map[string]string{"url": b.URL}})
		default:
			// oa.query.show: the user's tap comes back as a text message
			// carrying this payload.
			out = append(out, csButton{Title: b.Title, Type: "oa.query.show", Payload: firstNonEmpty(b.Payload, b.ID, b.Title)})
		}
	}
	return out
}

// recipient finds the Zalo user id of an outbound message.
func (st *state) recipient(m *sdk.Outbound) (string, error) {
	if m.To.Channel != "" && m.To.Channel != "zalo" {
		return "", sdk.Invalid(fmt.Errorf("zalo: recipient is on channel %q", m.To.Channel))
	}
	user := m.To.UserID
	if user == "" && m.ConversationKey != "" {
		prefix := "zalo:" + st.cfg.OAID + ":"
		if !strings.HasPrefix(m.ConversationKey, prefix) {
			return "", sdk.Invalid(errors.New("zalo: conversation key belongs to another channel or OA"))
		}
		user = strings.TrimPrefix(m.ConversationKey, prefix)
	}
	if !isDecimal(user) {
		return "", sdk.Invalid(errors.New("zalo: the recipient needs Zalo's decimal user id (To.UserID)"))
	}
	return user, nil
}

// sendRecord makes Send idempotent per IdempotencyKey across replicas.
type sendRecord struct {
	State      string    `json:"state"` // pending, sent, or "" (free)
	Owner      string    `json:"owner,omitempty"`
	Until      time.Time `json:"until,omitzero"` // a pending claim's lease
	MessageID  string    `json:"message_id,omitempty"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
}

// sendRecordTTL matches the hub's dedupe window: a retry later than this
// is a new message anyway.
const sendRecordTTL = 7 * 24 * time.Hour

func idemHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// claimSend returns the earlier result for key, or claims key for this
// call. A claim in flight elsewhere makes the hub retry shortly.
func (st *state) claimSend(ctx context.Context, key string) (*sdk.SendResult, error) {
	now := st.now()
	var done *sdk.SendResult
	_, err := updateJSON(ctx, st.kv, sendKey(st.cfg.OAID, idemHash(key)), sendRecordTTL, func(r *sendRecord, exists bool) (bool, error) {
		switch {
		case exists && r.State == "sent":
			done = &sdk.SendResult{ProviderMessageID: r.MessageID, AcceptedAt: r.AcceptedAt}
			return false, nil
		case exists && r.State == "pending" && now.Before(r.Until):
			return false, sdk.Retryable(errors.New("zalo: a send with this idempotency key is in flight"), time.Second).WithReason("in_flight")
		}
		*r = sendRecord{State: "pending", Owner: st.owner, Until: now.Add(2*st.cfg.HTTPTimeout.D() + st.cfg.TokenLease.D())}
		return true, nil
	})
	return done, err
}

func (st *state) finishSend(ctx context.Context, key string, res *sdk.SendResult) error {
	_, err := updateJSON(ctx, st.kv, sendKey(st.cfg.OAID, idemHash(key)), sendRecordTTL, func(r *sendRecord, _ bool) (bool, error) {
		*r = sendRecord{State: "sent", MessageID: res.ProviderMessageID, AcceptedAt: res.AcceptedAt}
		return true, nil
	})
	return err
}

// abandonSend frees our claim after a failed send so a retry may go ahead.
func (st *state) abandonSend(ctx context.Context, key string) error {
	_, err := updateJSON(ctx, st.kv, sendKey(st.cfg.OAID, idemHash(key)), time.Hour, func(r *sendRecord, exists bool) (bool, error) {
		if !exists || r.State != "pending" || r.Owner != st.owner {
			return false, nil
		}
		*r = sendRecord{}
		return true, nil
	})
	return err
}

// Send delivers one customer-service message through Zalo's v3 API.
func (c *Connector) Send(ctx context.Context, msg *sdk.Outbound) (*sdk.SendResult, error) {
	st, err := c.configured()
	if err != nil {
		return nil, err
	}
	if msg == nil {
		return nil, sdk.Invalid(errors.New("zalo: no message"))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	user, err := st.recipient(msg)
	if err != nil {
		return nil, err
	}
	body, err := buildPayload(user, msg)
	if err != nil {
		return nil, err
	}
	key := msg.IdempotencyKey
	slot := key
	if key != "" {
		done, err := st.claimSend(ctx, key)
		if err != nil || done != nil {
			return done, err
		}
	} else {
		slot = randomID()
	}
	// Bookkeeping after Zalo answered must happen even if the caller
	// gives up, or a sent message would be forgotten.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	sent := false
	defer func() {
		if !sent && key != "" {
			if err := st.abandonSend(bg, key); err != nil {
				st.log.Warn("zalo: could not free the idempotency claim", "error", err.Error())
			}
		}
	}()

	if err := st.window.reserve(ctx, user, slot, msg.Text); err != nil {
		return nil, err
	}
	mid, err := st.postCS(ctx, body)
	if err != nil {
		var pe *providerError
		refused, code := "", ""
		if errors.As(err, &pe) {
			err = st.api.mapProviderError(pe)
			if r := sdk.ReasonOf(err); r == "window_closed" || r == "quota_exhausted" {
				refused, code = r, fmt.Sprint(pe.Code)
			}
		}
		if rerr := st.window.release(bg, user, slot, refused, code); rerr != nil {
			st.log.Warn("zalo: could not release the reply slot", "error", rerr.Error())
		}
		return nil, err
	}
	sent = true
	res := &sdk.SendResult{ProviderMessageID: mid, AcceptedAt: st.now()}
	if mid != "" {
		if _, err := st.kv.Put(bg, sentKey(st.cfg.OAID, mid), []byte("1"), st.cfg.EchoMemory.D()); err != nil {
			st.log.Warn("zalo: could not remember a sent message id; its echo may pause the bot", "error", err.Error())
		}
	}
	if err := st.window.commit(bg, user, slot, mid); err != nil {
		st.log.Warn("zalo: could not count a reply against the free-reply allowance", "error", err.Error())
	}
	if key != "" {
		if err := st.finishSend(bg, key, res); err != nil {
			st.log.Warn("zalo: could not record the send for idempotency", "error", err.Error())
		}
	}
	return res, nil
}

// postCS sends the body with a valid access token; a rejected token is
// refreshed (or the one another replica refreshed is picked up) and the
// send tried once more.
func (st *state) postCS(ctx context.Context, body []byte) (string, error) {
	tok, err := st.tokens.Access(ctx)
	if err != nil {
		return "", err
	}
	data, err := st.api.openAPI(ctx, http.MethodPost, PathSendCS, tok, nil, body)
	if isTokenError(err) {
		st.log.Info("zalo: access token rejected; refreshing and retrying once")
		if tok, err = st.tokens.Invalidate(ctx, tok); err != nil {
			return "", err
		}
		data, err = st.api.openAPI(ctx, http.MethodPost, PathSendCS, tok, nil, body)
	}
	if err != nil {
		return "", err
	}
	var d struct {
		MessageID flexString `json:"message_id"`
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &d); err != nil {
			st.log.Warn("zalo: accepted message without a readable message_id")
		}
	}
	return string(d.MessageID), nil
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
