package zalo

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

// FuzzParseWebhook feeds arbitrary bodies to the webhook path. The parser
// runs before the signature check (the signed fields are in the body), so
// it must survive anything: no panic, a 4xx or a 2xx, and events that are
// well formed. Each input is tried unsigned, with a garbage signature and
// correctly signed, so the normalizer behind the check is reached too.
// Seeds: the golden payloads in testdata/webhooks and the cases below.
func FuzzParseWebhook(f *testing.F) {
	files, _ := filepath.Glob("testdata/webhooks/*.json")
	for _, p := range files {
		if strings.HasSuffix(p, ".events.json") {
			continue
		}
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, "")
		}
	}
	f.Add([]byte(`{"app_id":1e400,"event_name":"user_send_location","timestamp":-1,"message":{"attachments":[{"type":"location","payload":{"coordinates":{"latitude":"NaN","longitude":"1e999"}}}]}}`), "mac=")
	f.Add([]byte(`{"app_id":"1","event_name":"user_seen_message","timestamp":"9223372036854775807","message":{"msg_ids":[null,"",1,"1"]}}`), "mac=00")
	f.Add([]byte(`{"app_id":"1","event_name":"oa_send_text","sender":{"id":"1","admin_id":{}},"timestamp":"1"}`), "")

	clk := goldenTime.Add(time.Minute)
	fake := zalofake.New(zalofake.Config{AppID: goldenAppID, OAID: goldenOAID, OASecretKey: goldenSecret})
	defer fake.Close()
	c := New(WithClock(func() time.Time { return clk }))
	if err := c.Configure(f.Context(), sdk.ConfigureRequest{Config: fake.PluginConfig(nil), Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		// The pure parser.
		if _, evs, err := ParseWebhook(body, goldenOAID, "fuzz"); err == nil {
			checkEvents(t, evs)
		}
		for _, h := range []string{sig, fake.SignBody(body)} {
			req := &sdk.WebhookRequest{Method: http.MethodPost, Header: http.Header{SignatureHeader: {h}}, Body: body}
			res, err := c.HandleWebhook(t.Context(), req)
			if err != nil {
				t.Fatalf("HandleWebhook errored (want a status): %v", err)
			}
			st := res.Response.Status
			if st != http.StatusOK && (st < 400 || st > 499) {
				t.Fatalf("status %d", st)
			}
			if st != http.StatusOK && len(res.Events) > 0 {
				t.Fatalf("status %d with %d events", st, len(res.Events))
			}
			checkEvents(t, res.Events)
		}
	})
}

func checkEvents(t *testing.T, evs []sdk.Event) {
	t.Helper()
	for _, e := range evs {
		if e.ID == "" || e.Contact.UserID == "" || !strings.HasPrefix(e.ConversationKey, "zalo:"+goldenOAID+":") {
			t.Fatalf("malformed event %+v", e)
		}
		if e.Kind == sdk.EventMessage && e.Message == nil {
			t.Fatalf("message event without message")
		}
		if _, err := json.Marshal(e.Message); err != nil {
			t.Fatalf("event does not encode: %v", err)
		}
	}
}
