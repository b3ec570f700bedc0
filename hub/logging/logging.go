// Package logging builds the hub's slog logger: JSON lines in which phone
// numbers, email addresses, names and message text are masked unless
// content logging was switched on explicitly for debugging.
package logging

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

// Options configure New.
type Options struct {
	Level slog.Level
	// Content disables masking. Never in production: logs travel further
	// than the CRM does.
	Content bool
}

// New returns a JSON logger writing to w.
func New(w io.Writer, o Options) *slog.Logger {
	h := slog.Handler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: o.Level}))
	if !o.Content {
		h = &maskHandler{next: h}
	}
	return slog.New(h)
}

// ParseLevel maps the config's level names.
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// sensitiveKeys hold personal content whatever their value looks like.
var sensitiveKeys = map[string]bool{
	"text": true, "body": true, "message_text": true, "reply": true, "name": true, "display_name": true,
	"phone": true, "email": true, "customer_message": true, "content": true, "address": true,
}

var (
	emailRe = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	// Phone-like runs: 8+ digits with optional +, spaces, dots or dashes.
	// Long provider ids (Zalo's 18-digit user ids) look the same; masking
	// them costs little, and ids are logged under keys matched below.
	phoneRe = regexp.MustCompile(`\+?\d[\d .\-]{7,}\d`)
	// An IPv4 address looks like a dotted phone number; addresses are not
	// personal data here and logs need them.
	ipv4Re = regexp.MustCompile(`^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$`)
)

// idKeys carry opaque identifiers that must stay readable for debugging.
// Conversation ids and idempotency keys ("conv", "key") are not among
// them: they hold the provider's user id, and a WhatsApp user id is the
// customer's phone number, so phone-like runs in them are masked like
// anywhere else ("wa:whatsapp:106*********22:849******67").
var idKeys = map[string]bool{"request_id": true, "event_id": true, "msg_id": true, "entry": true,
	"partition": true, "pid": true, "id": true, "contact_id": true}

// Mask hides personal data in s: emails and phone numbers become a short
// hint ("a***@x.com", "+84*****78").
func Mask(s string) string {
	s = emailRe.ReplaceAllStringFunc(s, func(m string) string {
		at := strings.IndexByte(m, '@')
		return m[:1] + "***" + m[at:]
	})
	return phoneRe.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) <= 4 || ipv4Re.MatchString(m) {
			return m
		}
		return m[:3] + strings.Repeat("*", len(m)-5) + m[len(m)-2:]
	})
}

// MaskText hides a whole free text, keeping only its length.
func MaskText(s string) string {
	if s == "" {
		return ""
	}
	return "[" + itoa(len([]rune(s))) + " chars]"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

type maskHandler struct {
	next slog.Handler
}

func (h *maskHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *maskHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, Mask(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(maskAttr(a))
		return true
	})
	return h.next.Handle(ctx, nr)
}

func (h *maskHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = maskAttr(a)
	}
	return &maskHandler{next: h.next.WithAttrs(out)}
}

func (h *maskHandler) WithGroup(name string) slog.Handler {
	return &maskHandler{next: h.next.WithGroup(name)}
}

func maskAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, x := range g {
			out[i] = maskAttr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindString:
		s := v.String()
		switch {
		case sensitiveKeys[strings.ToLower(a.Key)]:
			return slog.String(a.Key, MaskText(s))
		case idKeys[strings.ToLower(a.Key)]:
			return a
		}
		return slog.String(a.Key, Mask(s))
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, Mask(err.Error()))
		}
		return slog.String(a.Key, Mask(v.String()))
	}
	return a
}
