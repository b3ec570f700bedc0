package whatsapp

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Outbound wire types: the body of POST /{phone-number-id}/messages.

type outMessage struct {
	MessagingProduct      string          `json:"messaging_product"`
	RecipientType         string          `json:"recipient_type"`
	To                    string          `json:"to,omitempty"`
	Recipient             string          `json:"recipient,omitempty"`
	Type                  string          `json:"type"`
	Context               *outContext     `json:"context,omitempty"`
	Text                  *outText        `json:"text,omitempty"`
	Image                 *outMedia       `json:"image,omitempty"`
	Video                 *outMedia       `json:"video,omitempty"`
	Audio                 *outMedia       `json:"audio,omitempty"`
	Document              *outMedia       `json:"document,omitempty"`
	Sticker               *outMedia       `json:"sticker,omitempty"`
	Interactive           *outInteractive `json:"interactive,omitempty"`
	Template              *outTemplate    `json:"template,omitempty"`
	Reaction              *outReaction    `json:"reaction,omitempty"`
	BizOpaqueCallbackData string          `json:"biz_opaque_callback_data,omitempty"`
}

type outContext struct {
	MessageID string `json:"message_id"`
}

type outText struct {
	PreviewURL bool   `json:"preview_url"`
	Body       string `json:"body"`
}

type outMedia struct {
	ID       string `json:"id,omitempty"`
	Link     string `json:"link,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

type outInteractive struct {
	Type   string     `json:"type"`
	Header *outHeader `json:"header,omitempty"`
	Body   *outBody   `json:"body,omitempty"`
	Footer *outBody   `json:"footer,omitempty"`
	Action outAction  `json:"action"`
}

type outHeader struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	Image    *outMedia `json:"image,omitempty"`
	Video    *outMedia `json:"video,omitempty"`
	Document *outMedia `json:"document,omitempty"`
}

type outBody struct {
	Text string `json:"text"`
}

type outAction struct {
	Buttons    []outButton  `json:"buttons,omitempty"`
	Button     string       `json:"button,omitempty"`
	Sections   []outSection `json:"sections,omitempty"`
	Name       string       `json:"name,omitempty"`
	Parameters *outCTA      `json:"parameters,omitempty"`
}

type outButton struct {
	Type  string   `json:"type"`
	Reply outReply `json:"reply"`
}

type outReply struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

type outSection struct {
	Title string   `json:"title,omitempty"`
	Rows  []outRow `json:"rows"`
}

type outRow struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

type outCTA struct {
	DisplayText string `json:"display_text"`
	URL         string `json:"url"`
}

type outTemplate struct {
	Name       string         `json:"name"`
	Language   outLanguage    `json:"language"`
	Components []outComponent `json:"components,omitempty"`
}

type outLanguage struct {
	Code string `json:"code"`
}

type outComponent struct {
	Type       string     `json:"type"`
	Parameters []outParam `json:"parameters"`
}

type outParam struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type outReaction struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"`
}

// Meta's limits, checked before calling so a bad message fails as Invalid
// with a clear reason instead of a generic (#100) from Graph.
const (
	maxTextLen        = 4096
	maxCaptionLen     = 1024
	maxInteractiveLen = 1024
	maxHeaderLen      = 60
	maxButtonTitle    = 20
	maxButtonID       = 256
	maxReplyButtons   = 3
	maxListRows       = 10
	maxRowTitle       = 24
	maxRowID          = 200
	maxOpaqueData     = 512
	defaultListButton = "Options"
)

// Outbound.Metadata keys this plugin reads.
const (
	MetaPreviewURL = "preview_url" // "true": show a link preview for text
	MetaFooter     = "footer"      // interactive footer text
	MetaHeader     = "header"      // interactive header text
	MetaListButton = "list_button" // label of the list-opening button
)

// recipient is who a send goes to: a wa_id (digits) or a BSUID.
type recipient struct {
	to, bsuid string
}

func (r recipient) key() string { return firstNonEmpty(r.to, r.bsuid) }

// resolveRecipient finds the WhatsApp user in To, or failing that in the
// conversation key, which must belong to this phone number.
func resolveRecipient(msg *sdk.Outbound, pnid string) (recipient, error) {
	if ch := msg.To.Channel; ch != "" && ch != ChannelName && ch != "phone" {
		return recipient{}, sdk.Invalid(fmt.Errorf("whatsapp send: recipient is on channel %q", ch))
	}
	user := strings.TrimSpace(msg.To.UserID)
	if user == "" && msg.To.Phone != "" {
		user = digitsOnly(msg.To.Phone)
	}
	if user == "" && msg.ConversationKey != "" {
		parts := strings.SplitN(msg.ConversationKey, ":", 3)
		if len(parts) != 3 || parts[0] != ChannelName {
			return recipient{}, sdk.Invalid(errors.New("whatsapp send: conversation key is not a WhatsApp key"))
		}
		if parts[1] != pnid {
			return recipient{}, sdk.Invalid(errors.New("whatsapp send: conversation belongs to another phone number"))
		}
		user = parts[2]
	}
	user = normalizeWaID(user)
	switch {
	case user == "":
		return recipient{}, sdk.Invalid(errors.New("whatsapp send: no recipient (To.UserID, To.Phone or ConversationKey)"))
	case isDigits(user):
		return recipient{to: user}, nil
	case strings.Contains(user, ".") && !strings.ContainsAny(user, " /:"):
		return recipient{bsuid: user}, nil // business-scoped user id, e.g. US.1349...
	}
	return recipient{}, sdk.Invalid(errors.New("whatsapp send: recipient is neither a wa_id nor a business-scoped user id"))
}

// buildPayload turns an Outbound into the Graph request body. freeForm is
// true for everything but templates: those need an open window.
func buildPayload(msg *sdk.Outbound, to recipient, cfg *Config) (*outMessage, bool, error) {
	out := &outMessage{MessagingProduct: "whatsapp", RecipientType: "individual", To: to.to, Recipient: to.bsuid}
	if k := msg.IdempotencyKey; k != "" {
		// Comes back on every status webhook of this message.
		out.BizOpaqueCallbackData = truncateRunes(k, maxOpaqueData)
	}
	if msg.ReplyTo != "" && msg.Type != "reaction" {
		out.Context = &outContext{MessageID: msg.ReplyTo}
	}
	kind := outboundKind(msg)
	var err error
	switch kind {
	case "text":
		err = buildText(out, msg)
	case "image", "video", "audio", "sticker", "document":
		err = buildMedia(out, kind, msg)
	case "interactive":
		err = buildInteractive(out, msg)
	case "template":
		if msg.Template == nil {
			return nil, false, invalid("a template message needs Template")
		}
		err = buildTemplate(out, msg.Template.Name, msg.Template.Language, msg.Template.Params, cfg)
	case "reaction":
		if msg.ReplyTo == "" {
			return nil, false, invalid("a reaction needs ReplyTo (the message to react to)")
		}
		out.Type = "reaction"
		out.Reaction = &outReaction{MessageID: msg.ReplyTo, Emoji: msg.Text}
	default:
		return nil, false, invalid(fmt.Sprintf("outbound type %q is not supported", msg.Type))
	}
	if err != nil {
		return nil, false, err
	}
	return out, kind != "template", nil
}

func outboundKind(msg *sdk.Outbound) string {
	switch t := strings.ToLower(msg.Type); t {
	case "":
	case "file":
		return "document"
	default:
		return t
	}
	switch {
	case msg.Template != nil:
		return "template"
	case len(msg.Buttons) > 0:
		return "interactive"
	case len(msg.Attachments) > 0:
		switch t := msg.Attachments[0].Type; t {
		case "file", "":
			return "document"
		default:
			return t
		}
	}
	return "text"
}

func invalid(msg string) error {
	return sdk.Invalid(errors.New("whatsapp send: " + msg)).WithReason(ReasonInvalidParameter)
}

func tooLong(what string, s string, limit int) error {
	if n := utf8.RuneCountInString(s); n > limit {
		return invalid(fmt.Sprintf("%s is %d characters; WhatsApp allows %d", what, n, limit))
	}
	return nil
}

func buildText(out *outMessage, msg *sdk.Outbound) error {
	if strings.TrimSpace(msg.Text) == "" {
		return invalid("text is empty")
	}
	if err := tooLong("text", msg.Text, maxTextLen); err != nil {
		return err
	}
	out.Type = "text"
	out.Text = &outText{Body: msg.Text, PreviewURL: msg.Metadata[MetaPreviewURL] == "true"}
	return nil
}

func mediaOf(a sdk.Attachment) (*outMedia, error) {
	switch {
	case a.MediaID != "":
		return &outMedia{ID: a.MediaID}, nil
	case strings.HasPrefix(a.URL, "https://") || strings.HasPrefix(a.URL, "http://"):
		return &outMedia{Link: a.URL}, nil
	}
	return nil, invalid("an attachment needs a MediaID or an http(s) URL")
}

func buildMedia(out *outMessage, kind string, msg *sdk.Outbound) error {
	switch n := len(msg.Attachments); {
	case n == 0:
		return invalid(kind + " message without an attachment")
	case n > 1:
		return sdk.Invalid(errors.New("whatsapp send: one attachment per WhatsApp message; send them one by one")).
			WithReason(ReasonTooManyAttachment)
	}
	a := msg.Attachments[0]
	m, err := mediaOf(a)
	if err != nil {
		return err
	}
	caption := firstNonEmpty(a.Caption, msg.Text)
	switch kind {
	case "audio", "sticker":
		if caption != "" {
			// Dropping it would lose words the customer never sees.
			return invalid(kind + " cannot carry a caption; send the text as its own message")
		}
	default:
		if err := tooLong("caption", caption, maxCaptionLen); err != nil {
			return err
		}
		m.Caption = caption
	}
	out.Type = kind
	switch kind {
	case "image":
		out.Image = m
	case "video":
		out.Video = m
	case "audio":
		out.Audio = m
	case "sticker":
		out.Sticker = m
	case "document":
		m.Filename = a.Name
		out.Document = m
	default:
		return invalid(fmt.Sprintf("attachment type %q is not supported", kind))
	}
	return nil
}

// buildInteractive picks the interactive form from the buttons: one link
// button → cta_url; up to 3 reply buttons → button; up to 10 → list.
func buildInteractive(out *outMessage, msg *sdk.Outbound) error {
	if strings.TrimSpace(msg.Text) == "" {
		return invalid("an interactive message needs body Text")
	}
	if err := tooLong("interactive body", msg.Text, maxInteractiveLen); err != nil {
		return err
	}
	n := len(msg.Buttons)
	if n == 0 {
		return invalid("an interactive message needs Buttons")
	}
	in := &outInteractive{Body: &outBody{Text: msg.Text}}
	if f := msg.Metadata[MetaFooter]; f != "" {
		if err := tooLong("footer", f, maxHeaderLen); err != nil {
			return err
		}
		in.Footer = &outBody{Text: f}
	}
	if h, err := interactiveHeader(msg); err != nil {
		return err
	} else if h != nil {
		in.Header = h
	}
	links := 0
	for _, b := range msg.Buttons {
		if b.URL != "" {
			links++
		}
	}
	switch {
	case links > 0:
		if n != 1 {
			return invalid("a link button cannot be combined with other buttons")
		}
		b := msg.Buttons[0]
		if err := tooLong("button title", b.Title, maxButtonTitle); err != nil {
			return err
		}
		if b.Title == "" {
			return invalid("a link button needs a Title")
		}
		in.Type = "cta_url"
		in.Action = outAction{Name: "cta_url", Parameters: &outCTA{DisplayText: b.Title, URL: b.URL}}
	case n <= maxReplyButtons:
		in.Type = "button"
		for _, b := range msg.Buttons {
			id := firstNonEmpty(b.ID, b.Payload, b.Title)
			if b.Title == "" {
				return invalid("a reply button needs a Title")
			}
			if err := tooLong("button title", b.Title, maxButtonTitle); err != nil {
				return err
			}
			if err := tooLong("button id", id, maxButtonID); err != nil {
				return err
			}
			in.Action.Buttons = append(in.Action.Buttons, outButton{Type: "reply", Reply: outReply{ID: id, Title: b.Title}})
		}
	case n <= maxListRows:
		if in.Header != nil && in.Header.Type != "text" {
			return invalid("a list message can only have a text header")
		}
		in.Type = "list"
		label := firstNonEmpty(msg.Metadata[MetaListButton], defaultListButton)
		if err := tooLong("list button", label, maxButtonTitle); err != nil {
			return err
		}
		sec := outSection{}
		for _, b := range msg.Buttons {
			id := firstNonEmpty(b.ID, b.Payload, b.Title)
			if b.Title == "" {
				return invalid("a list row needs a Title")
			}
			if err := tooLong("list row title", b.Title, maxRowTitle); err != nil {
				return err
			}
			if err := tooLong("list row id", id, maxRowID); err != nil {
				return err
			}
			sec.Rows = append(sec.Rows, outRow{ID: id, Title: b.Title})
		}
		in.Action = outAction{Button: label, Sections: []outSection{sec}}
	default:
		return invalid(fmt.Sprintf("%d buttons; WhatsApp lists hold at most %d rows", n, maxListRows))
	}
	out.Type = "interactive"
	out.Interactive = in
	return nil
}

func interactiveHeader(msg *sdk.Outbound) (*outHeader, error) {
	if len(msg.Attachments) > 1 {
		return nil, invalid("an interactive message takes at most one header attachment")
	}
	if len(msg.Attachments) == 1 {
		a := msg.Attachments[0]
		m, err := mediaOf(a)
		if err != nil {
			return nil, err
		}
		switch a.Type {
		case "image":
			return &outHeader{Type: "image", Image: m}, nil
		case "video":
			return &outHeader{Type: "video", Video: m}, nil
		case "file", "document", "":
			m.Filename = a.Name
			return &outHeader{Type: "document", Document: m}, nil
		}
		return nil, invalid(fmt.Sprintf("attachment type %q cannot be an interactive header", a.Type))
	}
	if h := msg.Metadata[MetaHeader]; h != "" {
		if err := tooLong("header", h, maxHeaderLen); err != nil {
			return nil, err
		}
		return &outHeader{Type: "text", Text: h}, nil
	}
	return nil, nil
}

func buildTemplate(out *outMessage, name, lang string, params []string, cfg *Config) error {
	if name == "" {
		return invalid("a template needs a name")
	}
	out.Type = "template"
	out.Template = &outTemplate{Name: name, Language: outLanguage{Code: firstNonEmpty(lang, cfg.TemplateLanguage)}}
	if len(params) > 0 {
		c := outComponent{Type: "body"}
		for _, p := range params {
			if strings.TrimSpace(p) == "" {
				// Graph rejects an empty parameter with 132000-series errors.
				return invalid("template parameters must not be empty")
			}
			c.Parameters = append(c.Parameters, outParam{Type: "text", Text: p})
		}
		out.Template.Components = []outComponent{c}
	}
	return nil
}

// fallbackPayload replaces a free-form message with the configured template
// when the window is closed. Context and callback data are kept.
func fallbackPayload(orig *outMessage, t *TemplateConfig, cfg *Config) (*outMessage, error) {
	out := &outMessage{MessagingProduct: orig.MessagingProduct, RecipientType: orig.RecipientType, To: orig.To,
		Recipient: orig.Recipient, BizOpaqueCallbackData: orig.BizOpaqueCallbackData}
	if err := buildTemplate(out, t.Name, t.Language, t.Params, cfg); err != nil {
		return nil, err
	}
	return out, nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}
