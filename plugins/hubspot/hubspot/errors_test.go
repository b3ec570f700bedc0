package hubspot_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/hubspot/hsfake"
	"github.com/switchboard-hub/switchboard/plugins/hubspot/hubspot"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// TestHTTPErrorMapping drives each HubSpot failure through a contact upsert
// and checks the typed error the hub gets, and that the plugin made exactly
// one attempt (the hub's queue owns retries).
func TestHTTPErrorMapping(t *testing.T) {
	// 20:00 UTC is 03:00 the next day in Ho Chi Minh City: the daily limit
	// resets at the account's midnight, 21 hours later.
	now := time.Date(2026, 1, 5, 20, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		fault       hsfake.Fault
		revoke      bool
		code        sdk.ErrorCode
		retryAfter  time.Duration
		reason      string
		msgContains string
	}{
		{name: "429 ten-second, interval header", fault: hsfake.Fault{Status: 429, Policy: "TEN_SECONDLY_ROLLING"},
			code: sdk.CodeRateLimited, retryAfter: 10 * time.Second, reason: "ten_secondly_rolling", msgContains: "ten_secondly_rolling limit"},
		{name: "429 with Retry-After", fault: hsfake.Fault{Status: 429, RetryAfter: 7},
			code: sdk.CodeRateLimited, retryAfter: 7 * time.Second, reason: "ten_secondly_rolling"},
		{name: "429 daily waits for the account's midnight", fault: hsfake.Fault{Status: 429, Policy: "DAILY"},
			code: sdk.CodeRateLimited, retryAfter: 21 * time.Hour, reason: "daily", msgContains: "daily limit"},
		{name: "429 on search: secondly", fault: hsfake.Fault{Status: 429, Policy: "SECONDLY", PathPrefix: "/crm/v3/objects/contacts/search"},
			code: sdk.CodeRateLimited, retryAfter: time.Second, reason: "secondly"},
		{name: "500", fault: hsfake.Fault{Status: 500}, code: sdk.CodeRetryable},
		{name: "502 with an HTML body", fault: hsfake.Fault{Status: 502}, code: sdk.CodeRetryable, msgContains: "502"},
		{name: "503 with Retry-After", fault: hsfake.Fault{Status: 503, RetryAfter: 3}, code: sdk.CodeRetryable, retryAfter: 3 * time.Second},
		{name: "401 revoked token", revoke: true, code: sdk.CodeUnauthorized, reason: "token_rejected",
			msgContains: "HubSpot rejected the private-app token: check HUBSPOT_TOKEN / its scopes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFake(t, hsfake.Options{})
			p := newPlugin(t, fake, map[string]any{"timezone": "Asia/Ho_Chi_Minh"}, hubspot.WithClock(newFakeClock(now)))
			// Warm up: properties exist, so the fault hits the contact calls.
			upsert(t, p, sdk.Contact{Identities: []sdk.Identity{zalo("warm")}})
			before := len(fake.Requests())
			if tc.revoke {
				fake.RevokeToken()
			} else {
				f := tc.fault
				if f.PathPrefix == "" {
					f.PathPrefix = "/crm/v3/objects/contacts"
				}
				fake.Inject(f)
			}
			_, err := p.UpsertContact(ctxT(t), &sdk.UpsertContactRequest{Contact: sdk.Contact{Name: "X", Identities: []sdk.Identity{zalo("z-" + tc.name)}}})
			if err == nil {
				t.Fatal("no error")
			}
			if got := sdk.CodeOf(err); got != tc.code {
				t.Errorf("code %v, want %v (%v)", got, tc.code, err)
			}
			if got := sdk.RetryAfterOf(err); got != tc.retryAfter {
				t.Errorf("retry after %v, want %v", got, tc.retryAfter)
			}
			if tc.reason != "" && sdk.ReasonOf(err) != tc.reason {
				t.Errorf("reason %q, want %q", sdk.ReasonOf(err), tc.reason)
			}
			if !strings.Contains(err.Error(), tc.msgContains) {
				t.Errorf("error %q does not say %q", err, tc.msgContains)
			}
			if strings.Contains(err.Error(), fake.Token()) {
				t.Error("the token leaked into the error")
			}
			if n := len(fake.Requests()) - before; n != 1 {
				t.Errorf("%d requests after the failure, want exactly 1 (no inline retries)", n)
			}
			if tc.code == sdk.CodeUnauthorized && sdk.IsRetryable(err) {
				t.Error("a rejected token must not be retried")
			}
		})
	}
}

func TestMissingPropertiesWithoutCreate(t *testing.T) {
	fake := startFake(t, hsfake.Options{})
	p := newPlugin(t, fake, map[string]any{"create_properties": false})
	_, err := p.UpsertContact(ctxT(t), &sdk.UpsertContactRequest{Contact: sdk.Contact{Name: "An", Identities: []sdk.Identity{zalo("1")}}})
	if sdk.CodeOf(err) != sdk.CodeInvalid || sdk.ReasonOf(err) != "missing_properties" {
		t.Fatalf("err %v, want invalid/missing_properties", err)
	}
	for _, want := range []string{"switchboard_score", "switchboard_zalo_id", "create_properties: true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if n := len(fake.RequestsTo(http.MethodPost, "/crm/v3/properties")); n != 0 {
		t.Errorf("%d properties created without create_properties", n)
	}
	if fake.ContactCount() != 0 {
		t.Error("a contact was written anyway")
	}

	// An admin creates the properties by hand (as documented): the same
	// plugin then works without restarting.
	for _, name := range []string{"switchboard_score", "switchboard_tier", "switchboard_source_channel", "switchboard_campaign",
		"switchboard_intent", "switchboard_need", "switchboard_budget", "switchboard_timeline", "switchboard_decision_maker",
		"switchboard_action", "switchboard_confidence", "switchboard_estimate", "switchboard_facts_extra", "switchboard_tags",
		"switchboard_owner_agent", "switchboard_name", "switchboard_zalo_id"} {
		typ, ft := "string", "text"
		switch name {
		case "switchboard_score", "switchboard_confidence", "switchboard_estimate":
			typ, ft = "number", "number"
		case "switchboard_decision_maker":
			typ, ft = "bool", "booleancheckbox"
		}
		fake.AddProperty("contacts", hsfake.Property{Name: name, Label: name, Type: typ, FieldType: ft, GroupName: "contactinformation"})
	}
	if _, err := p.UpsertContact(ctxT(t), &sdk.UpsertContactRequest{Contact: sdk.Contact{Name: "An", Identities: []sdk.Identity{zalo("1")}}}); err != nil {
		t.Fatalf("after the admin created the properties: %v", err)
	}
}

func TestConfigureRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{"no token", `{"base_url":"http://127.0.0.1:1"}`, "token is required"},
		{"unknown key", `{"token":"t","tokn":"x"}`, `unknown field "tokn"`},
		{"bad tier", `{"token":"t","tier":"gold"}`, `tier "gold"`},
		{"bad url", `{"token":"t","base_url":"api.hubapi.com"}`, "not an http(s) URL"},
		{"bad timezone", `{"token":"t","timezone":"Mars/Olympus"}`, "timezone"},
		{"bad duration", `{"token":"t","timeout":"soon"}`, "duration"},
		{"bad scope", `{"token":"t","rate_limit":{"scope":"galaxy"}}`, "rate_limit.scope"},
		{"bad channel property", `{"token":"t","channel_properties":{"zalo":"Zalo Id"}}`, "not a HubSpot property name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := hubspot.New().Configure(ctxT(t), sdk.ConfigureRequest{Config: []byte(tc.config), Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))})
			if sdk.CodeOf(err) != sdk.CodeInvalid || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want invalid mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("secret not echoed", func(t *testing.T) {
		err := hubspot.New().Configure(ctxT(t), sdk.ConfigureRequest{Config: []byte(`{"token":"pat-na1-secret","tier":"gold"}`),
			Host: sdk.HostFromBackend(sdk.NewMemoryHost(nil))})
		if err == nil || strings.Contains(err.Error(), "pat-na1-secret") {
			t.Errorf("err %v", err)
		}
	})
}

func TestCalledBeforeConfigure(t *testing.T) {
	_, err := hubspot.New().GetContact(ctxT(t), "1", nil)
	if !errors.Is(err, sdk.ErrPermanent) {
		t.Errorf("err %v, want permanent", err)
	}
}

// TestClientSideLimitSparesHubSpot: with the client-side limit at the
// account's, the plugin refuses the call itself (RateLimited with a
// retry-after) and HubSpot never answers 429.
func TestClientSideLimitSparesHubSpot(t *testing.T) {
	fake := startFake(t, hsfake.Options{Limits: hsfake.Limits{TenSecond: 10, Daily: 1000, Search: 5}})
	clock := newFakeClock(time.Now()) // the fake counts in real time; this clock stands still
	p := newPlugin(t, fake, map[string]any{"rate_limit": map[string]any{"ten_second": 10, "max_wait": "1ns"}}, hubspot.WithClock(clock))
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		_, err = p.GetContact(ctxT(t), "1", nil)
		if sdk.CodeOf(err) == sdk.CodeNotFound {
			err = nil
		}
	}
	if sdk.CodeOf(err) != sdk.CodeRateLimited || sdk.ReasonOf(err) != "client_ten_second" || sdk.RetryAfterOf(err) <= 0 {
		t.Fatalf("err %v (reason %q)", err, sdk.ReasonOf(err))
	}
	for _, r := range fake.Requests() {
		if r.Status == http.StatusTooManyRequests {
			t.Fatalf("HubSpot answered 429 to %s %s", r.Method, r.Path)
		}
	}
	if n := len(fake.Requests()); n != 10 {
		t.Errorf("%d requests reached HubSpot, limit 10", n)
	}
}
