package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// A WhatsApp conversation id ends with the customer's phone number (their
// wa_id): logged under "conv" or inside an idempotency key, it is masked.
func TestConversationIDsMasked(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, Options{}).Warn("task failed; retrying", "conv", "wa:whatsapp:106540352242922:84901234567",
		"key", "reply:wa:whatsapp:106540352242922:84901234567:wamid.HBgL:send:0", "entry", "1764500000000-0")
	out := buf.String()
	if strings.Contains(out, "84901234567") {
		t.Errorf("phone number in a conversation id logged raw: %s", out)
	}
	if !strings.Contains(out, `"conv":"wa:whatsapp:`) || !strings.Contains(out, "1764500000000-0") {
		t.Errorf("ids mangled beyond the phone number: %s", out)
	}
}

func TestMasking(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{Level: slog.LevelDebug})
	l.With("phone", "+84901234567").Info("customer nguyen.an@example.com called from +84 901 234 567",
		"text", "Anh An, số 0901234567, email an@congty.vn",
		"err", errors.New("upsert an@congty.vn failed"),
		"request_id", "12345678901234", "listen", "127.0.0.1:8080",
		"grp", slog.GroupValue(slog.String("email", "x@y.vn")))
	out := buf.String()
	for _, canary := range []string{"0901234567", "+84901234567", "an@congty.vn", "nguyen.an@example.com", "901 234 567", "x@y.vn", "Anh An"} {
		if strings.Contains(out, canary) {
			t.Errorf("log line holds %q: %s", canary, out)
		}
	}
	if !strings.Contains(out, "12345678901234") || !strings.Contains(out, "127.0.0.1:8080") {
		t.Errorf("request id masked: %s", out)
	}
	buf.Reset()
	New(&buf, Options{Content: true}).Info("x", "text", "Anh An 0901234567")
	if !strings.Contains(buf.String(), "Anh An 0901234567") {
		t.Errorf("content logging on, but masked: %s", buf.String())
	}
}

func BenchmarkMaskedLogLine(b *testing.B) {
	var buf bytes.Buffer
	l := New(&buf, Options{})
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		l.Info("message processed", "conv", "zalo:1:2", "text", "xin chào", "phone", "+84901234567", "ms", 12)
	}
}
