package whatsapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256(app secret, raw body)>".
const SignatureHeader = "X-Hub-Signature-256"

const signaturePrefix = "sha256="

var (
	errNoSignature  = errors.New("no " + SignatureHeader + " header")
	errBadSignature = errors.New("signature does not match the body")
	errSigFormat    = errors.New(SignatureHeader + " is not sha256=<64 hex digits>")
)

// Sign returns the X-Hub-Signature-256 value Meta would send for body.
func Sign(appSecret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return signaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// verifySignature checks header against the raw body in constant time.
func verifySignature(appSecret, header string, body []byte) error {
	header = strings.TrimSpace(header)
	if header == "" {
		return errNoSignature
	}
	if len(header) != len(signaturePrefix)+2*sha256.Size || !strings.EqualFold(header[:len(signaturePrefix)], signaturePrefix) {
		return errSigFormat
	}
	got, err := hex.DecodeString(header[len(signaturePrefix):])
	if err != nil {
		return errSigFormat
	}
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return errBadSignature
	}
	return nil
}

// headerValue reads a header whatever the case of its name: the hub copies
// headers from fasthttp, which may not canonicalise keys.
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

// handshake answers Meta's GET verification: echo hub.challenge as plain
// text when hub.mode is "subscribe" and hub.verify_token matches; else 403.
func (rt *runtime) handshake(req *sdk.WebhookRequest) *sdk.WebhookResult {
	q, err := url.ParseQuery(req.RawQuery)
	if err != nil {
		return reply(http.StatusBadRequest, "bad query")
	}
	mode, token, challenge := q.Get("hub.mode"), q.Get("hub.verify_token"), q.Get("hub.challenge")
	if mode != "subscribe" || challenge == "" || rt.cfg.VerifyToken == "" || !equalSecret(token, rt.cfg.VerifyToken) {
		rt.log.Warn("webhook verification refused", "mode", mode, "remote_addr", req.RemoteAddr)
		return reply(http.StatusForbidden, "verification failed")
	}
	rt.log.Info("webhook verification handshake accepted")
	return &sdk.WebhookResult{Response: sdk.WebhookResponse{
		Status: http.StatusOK,
		Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:   []byte(challenge),
	}}
}

// equalSecret compares in constant time, also in length (hashing first).
func equalSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
