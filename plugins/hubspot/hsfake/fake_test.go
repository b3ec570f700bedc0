package hsfake_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/hubspot/hsfake"
)

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func call(t *testing.T, f *hsfake.Server, token, method, path, body string) resp {
	t.Helper()
	req, err := http.NewRequest(method, f.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	raw, _ := io.ReadAll(r.Body)
	out := resp{status: r.StatusCode, header: r.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func checkErrorBody(t *testing.T, r resp, status int, category string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if r.body["status"] != "error" || r.body["category"] != category || r.body["message"] == "" {
		t.Errorf("error body %s", r.raw)
	}
	if id, _ := r.body["correlationId"].(string); !uuidRe.MatchString(id) {
		t.Errorf("correlationId %q is not a UUID", id)
	}
}

func TestWireFormat(t *testing.T) {
	f := hsfake.Start(t, hsfake.Options{NoRateLimit: true})
	tok := f.Token()

	t.Run("401 without or with a wrong token", func(t *testing.T) {
		for _, tk := range []string{"", "pat-na1-wrong"} {
			r := call(t, f, tk, http.MethodGet, "/crm/v3/objects/contacts/1", "")
			checkErrorBody(t, r, 401, "INVALID_AUTHENTICATION")
		}
	})
	t.Run("create: string values, ms timestamps, numeric id", func(t *testing.T) {
		r := call(t, f, tok, http.MethodPost, "/crm/v3/objects/contacts", `{"properties":{"email":"Lee@xyz.co.uk","firstname":"Lee"}}`)
		if r.status != 201 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		props := r.body["properties"].(map[string]any)
		if props["hs_object_id"] != r.body["id"] || props["email"] != "Lee@xyz.co.uk" {
			t.Errorf("%s", r.raw)
		}
		if !regexp.MustCompile(`^\d+$`).MatchString(r.body["id"].(string)) {
			t.Errorf("id %v", r.body["id"])
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", r.body["createdAt"].(string)); err != nil {
			t.Errorf("createdAt: %v", err)
		}
	})
	t.Run("409 duplicate email, any case", func(t *testing.T) {
		r := call(t, f, tok, http.MethodPost, "/crm/v3/objects/contacts", `{"properties":{"email":"lee@XYZ.co.uk"}}`)
		checkErrorBody(t, r, 409, "OBJECT_ALREADY_EXISTS")
		if !regexp.MustCompile(`^Contact already exists\. Existing ID: \d+$`).MatchString(r.body["message"].(string)) || r.body["error"] != "CONTACT_EXISTS" {
			t.Errorf("409 body %s", r.raw)
		}
	})
	t.Run("400 unknown property", func(t *testing.T) {
		r := call(t, f, tok, http.MethodPost, "/crm/v3/objects/contacts", `{"properties":{"firstname":"A","switchboard_zalo_id":"1"}}`)
		checkErrorBody(t, r, 400, "VALIDATION_ERROR")
		if !strings.HasPrefix(r.body["message"].(string), "Property values were not valid: [") || !strings.Contains(r.raw, "PROPERTY_DOESNT_EXIST") {
			t.Errorf("%s", r.raw)
		}
	})
	t.Run("404 unknown id", func(t *testing.T) {
		if r := call(t, f, tok, http.MethodGet, "/crm/v3/objects/contacts/999999", ""); r.status != 404 {
			t.Errorf("%d", r.status)
		}
	})
	t.Run("GET by idProperty=email", func(t *testing.T) {
		r := call(t, f, tok, http.MethodGet, "/crm/v3/objects/contacts/LEE@xyz.co.uk?idProperty=email&properties=phone", "")
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if props := r.body["properties"].(map[string]any); props["phone"] != nil || props["firstname"] != "Lee" {
			t.Errorf("requested property with no value must be null: %s", r.raw)
		}
	})
	t.Run("note needs hs_timestamp, known association ids", func(t *testing.T) {
		r := call(t, f, tok, http.MethodPost, "/crm/v3/objects/notes", `{"properties":{"hs_note_body":"x"}}`)
		checkErrorBody(t, r, 400, "VALIDATION_ERROR")
		r = call(t, f, tok, http.MethodPost, "/crm/v3/objects/notes",
			`{"properties":{"hs_note_body":"x","hs_timestamp":"2026-01-05T10:00:00Z"},"associations":[{"to":{"id":"1001"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":204}]}]}`)
		checkErrorBody(t, r, 400, "VALIDATION_ERROR") // 204 is task→contact
		r = call(t, f, tok, http.MethodPost, "/crm/v3/objects/notes",
			`{"properties":{"hs_note_body":"x","hs_timestamp":"1767607200000"},"associations":[{"to":{"id":"1001"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":202}]}]}`)
		if r.status != 201 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if a := f.Associations("notes", r.body["id"].(string)); len(a) != 1 || a[0].TypeID != 202 || a[0].ToType != "contacts" {
			t.Errorf("%+v", a)
		}
	})
}

func TestSearch(t *testing.T) {
	f := hsfake.Start(t, hsfake.Options{NoRateLimit: true})
	f.AddProperty("contacts", hsfake.Property{Name: "zalo_user_id", Label: "Zalo", Type: "string", FieldType: "text", GroupName: "contactinformation"})
	f.AddProperty("contacts", hsfake.Property{Name: "score", Label: "Score", Type: "number", FieldType: "number", GroupName: "contactinformation"})
	a := f.CreateContact(map[string]string{"firstname": "An", "email": "an@x.vn", "phone": "+84901", "zalo_user_id": "2468458835296197922", "score": "70"})
	b := f.CreateContact(map[string]string{"firstname": "Binh", "email": "binh@x.vn", "zalo_user_id": "2468458835296197923", "score": "9"})
	c := f.CreateContact(map[string]string{"lastname": "Chi", "phone": "+84903", "score": "40"})
	tests := []struct {
		name string
		body string
		want []string
		code int
	}{
		{"EQ email any case", `{"filterGroups":[{"filters":[{"propertyName":"email","operator":"EQ","value":"AN@x.vn"}]}]}`, []string{a}, 200},
		{"EQ long id exactly", `{"filterGroups":[{"filters":[{"propertyName":"zalo_user_id","operator":"EQ","value":"2468458835296197923"}]}]}`, []string{b}, 200},
		{"groups are OR'ed", `{"filterGroups":[{"filters":[{"propertyName":"email","operator":"EQ","value":"binh@x.vn"}]},{"filters":[{"propertyName":"phone","operator":"EQ","value":"+84903"}]}]}`, []string{b, c}, 200},
		{"filters are AND'ed", `{"filterGroups":[{"filters":[{"propertyName":"phone","operator":"HAS_PROPERTY"},{"propertyName":"score","operator":"GT","value":"50"}]}]}`, []string{a}, 200},
		{"IN", `{"filterGroups":[{"filters":[{"propertyName":"phone","operator":"IN","values":["+84903","+84901"]}]}]}`, []string{a, c}, 200},
		{"NOT_HAS_PROPERTY", `{"filterGroups":[{"filters":[{"propertyName":"email","operator":"NOT_HAS_PROPERTY"}]}]}`, []string{c}, 200},
		{"BETWEEN numbers", `{"filterGroups":[{"filters":[{"propertyName":"score","operator":"BETWEEN","value":"9","highValue":"40"}]}]}`, []string{b, c}, 200},
		{"sort desc by number", `{"sorts":[{"propertyName":"score","direction":"DESCENDING"}]}`, []string{a, c, b}, 200},
		{"sort, string form", `{"sorts":["score"]}`, []string{b, c, a}, 200},
		{"unknown property", `{"filterGroups":[{"filters":[{"propertyName":"nope","operator":"EQ","value":"1"}]}]}`, nil, 400},
		{"bad operator", `{"filterGroups":[{"filters":[{"propertyName":"email","operator":"LIKE","value":"1"}]}]}`, nil, 400},
		{"limit over 200", `{"limit":201}`, nil, 400},
		{"six groups", `{"filterGroups":[` + strings.Repeat(`{"filters":[{"propertyName":"email","operator":"HAS_PROPERTY"}]},`, 5) + `{"filters":[]}]}`, nil, 400},
		{"past 10,000 results", `{"after":"9990","limit":20}`, nil, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, f, f.Token(), http.MethodPost, "/crm/v3/objects/contacts/search", tc.body)
			if r.status != tc.code {
				t.Fatalf("status %d, want %d: %s", r.status, tc.code, r.raw)
			}
			if tc.code != 200 {
				checkErrorBody(t, r, tc.code, "VALIDATION_ERROR")
				return
			}
			var got []string
			for _, x := range r.body["results"].([]any) {
				got = append(got, x.(map[string]any)["id"].(string))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || int(r.body["total"].(float64)) != len(tc.want) {
				t.Errorf("got %v (total %v), want %v", got, r.body["total"], tc.want)
			}
		})
	}
	t.Run("paging", func(t *testing.T) {
		r := call(t, f, f.Token(), http.MethodPost, "/crm/v3/objects/contacts/search", `{"limit":2}`)
		next := r.body["paging"].(map[string]any)["next"].(map[string]any)["after"]
		r = call(t, f, f.Token(), http.MethodPost, "/crm/v3/objects/contacts/search", `{"limit":2,"after":"`+next.(string)+`"}`)
		if len(r.body["results"].([]any)) != 1 || r.body["paging"] != nil {
			t.Errorf("last page %s", r.raw)
		}
	})
	t.Run("search lag", func(t *testing.T) {
		f.SetSearchLag(time.Hour)
		defer f.SetSearchLag(0)
		f.CreateContact(map[string]string{"firstname": "New", "email": "new@x.vn"})
		r := call(t, f, f.Token(), http.MethodPost, "/crm/v3/objects/contacts/search", `{"filterGroups":[{"filters":[{"propertyName":"email","operator":"EQ","value":"new@x.vn"}]}]}`)
		if r.body["total"].(float64) != 0 {
			t.Errorf("a fresh contact is visible to search: %s", r.raw)
		}
	})
}

func TestRateLimitsAndFaults(t *testing.T) {
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := hsfake.Start(t, hsfake.Options{Now: clock, Limits: hsfake.Limits{TenSecond: 3, Daily: 5, Search: 1}})
	tok := f.Token()
	get := func() resp { return call(t, f, tok, http.MethodGet, "/crm/v3/objects/contacts?limit=1", "") }

	r := get()
	if r.header.Get("X-HubSpot-RateLimit-Max") != "3" || r.header.Get("X-HubSpot-RateLimit-Remaining") != "2" ||
		r.header.Get("X-HubSpot-RateLimit-Interval-Milliseconds") != "10000" || r.header.Get("X-HubSpot-RateLimit-Daily") != "5" ||
		r.header.Get("X-HubSpot-RateLimit-Daily-Remaining") != "4" {
		t.Errorf("headers %v", r.header)
	}
	get()
	get()
	r = get()
	if r.status != 429 || r.body["policyName"] != "TEN_SECONDLY_ROLLING" || r.body["errorType"] != "RATE_LIMIT" ||
		r.header.Get("X-HubSpot-RateLimit-Remaining") != "0" || !uuidRe.MatchString(fmt.Sprint(r.body["requestId"])) {
		t.Errorf("4th call in 10 s: %d %s %v", r.status, r.raw, r.header)
	}
	advance(10 * time.Second)
	if r = get(); r.status != 200 {
		t.Errorf("after the window: %d", r.status)
	}
	get()
	if r = get(); r.status != 429 || r.body["policyName"] != "DAILY" || r.body["message"] != "You have reached your daily limit." {
		t.Errorf("6th call of the day: %d %s", r.status, r.raw)
	}
	advance(24 * time.Hour)

	s := call(t, f, tok, http.MethodPost, "/crm/v3/objects/contacts/search", `{}`)
	if s.status != 200 || s.header.Get("X-HubSpot-RateLimit-Max") != "" {
		t.Errorf("search: %d, headers %v (search answers carry none)", s.status, s.header)
	}
	if s = call(t, f, tok, http.MethodPost, "/crm/v3/objects/contacts/search", `{}`); s.status != 429 || s.body["message"] != "You have reached your secondly limit." {
		t.Errorf("2nd search in a second: %d %s", s.status, s.raw)
	}

	advance(time.Minute)
	f.Inject(hsfake.Fault{Status: 429, RetryAfter: 4, Count: 2})
	for range 2 {
		if r = get(); r.status != 429 || r.header.Get("Retry-After") != "4" {
			t.Errorf("injected 429: %d %v", r.status, r.header)
		}
	}
	f.FailNext(1, 502)
	if r = get(); r.status != 502 || !strings.Contains(r.raw, "<html>") {
		t.Errorf("injected 502: %d %s", r.status, r.raw)
	}
	f.FailNext(1, 500)
	checkErrorBody(t, get(), 500, "INTERNAL_ERROR")
	if r = get(); r.status != 200 {
		t.Errorf("faults did not run out: %d", r.status)
	}
	f.RevokeToken()
	checkErrorBody(t, get(), 401, "INVALID_AUTHENTICATION")
	f.SetToken("pat-na1-new")
	tok = "pat-na1-new"
	if r = get(); r.status != 200 {
		t.Errorf("new token: %d", r.status)
	}
}

func TestOwnersAndProperties(t *testing.T) {
	f := hsfake.Start(t, hsfake.Options{NoRateLimit: true})
	for i := range 3 {
		f.AddOwner(hsfake.Owner{ID: fmt.Sprint(100 + i), Email: fmt.Sprintf("a%d@x.vn", i), UserID: i})
	}
	r := call(t, f, f.Token(), http.MethodGet, "/crm/v3/owners/?email=A1@x.vn", "")
	if res := r.body["results"].([]any); len(res) != 1 || res[0].(map[string]any)["id"] != "101" {
		t.Errorf("by email: %s", r.raw)
	}
	r = call(t, f, f.Token(), http.MethodGet, "/crm/v3/owners/?limit=2", "")
	if len(r.body["results"].([]any)) != 2 || r.body["paging"] == nil {
		t.Errorf("paging: %s", r.raw)
	}
	if r = call(t, f, f.Token(), http.MethodPatch, "/crm/v3/objects/contacts/"+f.CreateContact(map[string]string{"firstname": "x"}),
		`{"properties":{"hubspot_owner_id":"999"}}`); r.status != 400 || !strings.Contains(r.raw, "INVALID_OWNER_ID") {
		t.Errorf("unknown owner: %d %s", r.status, r.raw)
	}

	body := `{"name":"switchboard_score","label":"Score","type":"number","fieldType":"number","groupName":"contactinformation"}`
	if r = call(t, f, f.Token(), http.MethodPost, "/crm/v3/properties/contacts", body); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	checkErrorBody(t, call(t, f, f.Token(), http.MethodPost, "/crm/v3/properties/contacts", body), 409, "OBJECT_ALREADY_EXISTS")
	checkErrorBody(t, call(t, f, f.Token(), http.MethodPost, "/crm/v3/properties/contacts",
		`{"name":"x","label":"X","type":"number","fieldType":"text","groupName":"g"}`), 400, "VALIDATION_ERROR")
	checkErrorBody(t, call(t, f, f.Token(), http.MethodGet, "/crm/v3/properties/contacts/nope", ""), 404, "OBJECT_NOT_FOUND")
	id := f.CreateContact(map[string]string{"firstname": "x"})
	if r = call(t, f, f.Token(), http.MethodPatch, "/crm/v3/objects/contacts/"+id, `{"properties":{"switchboard_score":"high"}}`); r.status != 400 {
		t.Errorf("non-number in a number property: %d", r.status)
	}
}

func TestConcurrentUse(t *testing.T) {
	f := hsfake.Start(t, hsfake.Options{NoRateLimit: true})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(t, f, f.Token(), http.MethodPost, "/crm/v3/objects/contacts", fmt.Sprintf(`{"properties":{"email":"same%d@x.vn"}}`, i%4))
			call(t, f, f.Token(), http.MethodPost, "/crm/v3/objects/contacts/search", `{}`)
			_ = f.Contacts()
		}()
	}
	wg.Wait()
	if n := f.ContactCount(); n != 4 {
		t.Errorf("%d contacts, want 4 (one per email)", n)
	}
	f.Reset()
	if f.ContactCount() != 0 || len(f.Requests()) != 0 {
		t.Error("Reset kept state")
	}
}
