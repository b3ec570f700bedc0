package sqlcrm

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/plugins/postgrescrm/internal/testdb"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func TestNormalizePhone(t *testing.T) {
	for _, tc := range []struct {
		in, cc, want string
		err          error
	}{
		{"+84 901 234 567", "", "+84901234567", nil},
		{"+84-(901).234.567", "", "+84901234567", nil},
		{"0084901234567", "", "+84901234567", nil},
		{"84901234567", "", "+84901234567", nil}, // WhatsApp ids spell numbers this way
		{"0901234567", "84", "+84901234567", nil},
		{"0901234567", "", "", errPhoneNation},
		{"+1 202 555 0123", "84", "+12025550123", nil},
		{"call me", "", "", errPhoneFormat},
		{"12+34567890", "", "", errPhoneFormat},
		{"+0123456789", "", "", errPhoneFormat},
		{"+1234567", "", "", errPhoneFormat},          // too short
		{"+1234567890123456", "", "", errPhoneFormat}, // 16 digits: longer than E.164
		{"+", "", "", errPhoneFormat},
	} {
		got, err := normalizePhone(tc.in, tc.cc)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("normalizePhone(%q, %q) = %q, %v; want %q, %v", tc.in, tc.cc, got, err, tc.want, tc.err)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{" An.Nguyen@Example.COM ", "an.nguyen@example.com"},
		{"a@b", "a@b"},
		{"no-at", ""},
		{"@example.com", ""},
		{"a@", ""},
		{"a@b@c", ""},
		{"a b@c.d", ""},
	} {
		got, err := normalizeEmail(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("normalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
		check    func(Config) bool
	}{
		{"empty: SQLite default", `{}`, true, func(c Config) bool { return c.SQLitePath == DefaultSQLitePath && c.MaxConns == 8 }},
		{"null", `null`, true, func(c Config) bool { return c.SQLitePath == DefaultSQLitePath }},
		{"postgres", `{"dsn":"postgres://x@h/db","schema":"crm"}`, true, func(c Config) bool { return c.SQLitePath == "" && c.Schema == "crm" }},
		{"country code with plus", `{"default_country_code":"+84"}`, true, func(c Config) bool { return c.DefaultCountryCode == "84" }},
		{"closed stages", `{"closed_stages":["done"]}`, true, func(c Config) bool { return c.stageClosed("DONE") && !c.stageClosed("won") }},
		{"unknown key", `{"dns":"postgres://x@h/db"}`, false, nil},
		{"not JSON", `{"broken":`, false, nil},
		{"both databases", `{"dsn":"postgres://x@h/db","sqlite_path":"x.db"}`, false, nil},
		{"schema without dsn", `{"schema":"crm"}`, false, nil},
		{"schema injection", `{"dsn":"postgres://x@h/db","schema":"crm; DROP TABLE x"}`, false, nil},
		{"bad country code", `{"default_country_code":"0"}`, false, nil},
		{"template without id", `{"link_template":"https://crm.example.com/contacts"}`, false, nil},
		{"relative template", `{"link_template":"/contacts/{id}"}`, false, nil},
		{"negative pool", `{"max_conns":-1}`, false, nil},
	} {
		c, err := parseConfig(json.RawMessage(tc.in))
		if (err == nil) != tc.ok || (tc.ok && !tc.check(c)) {
			t.Errorf("%s: %+v, %v", tc.name, c, err)
		}
	}
}

func TestLinks(t *testing.T) {
	c := Config{LinkTemplate: "https://crm.example.com/contacts/{id}"}
	if got := c.contactURL("a/b c"); got != "https://crm.example.com/contacts/a%2Fb%20c" {
		t.Errorf("contactURL escapes the id as one segment: %q", got)
	}
	if got := c.dealURL("d1", "c1"); got != "https://crm.example.com/contacts/c1" {
		t.Errorf("dealURL without a deal template links the contact: %q", got)
	}
	c.DealLinkTemplate = "https://crm.example.com/contacts/{contact_id}/deals/{id}"
	if got := c.dealURL("d1", "c1"); got != "https://crm.example.com/contacts/c1/deals/d1" {
		t.Errorf("dealURL: %q", got)
	}
	if got := (Config{}).contactURL("x"); got != "" {
		t.Errorf("no template: %q", got)
	}
}

func TestConfigureRefusesBrokenConfig(t *testing.T) {
	err := New().Configure(ctxT(t), sdk.ConfigureRequest{Config: json.RawMessage(`{"broken":`)})
	if err == nil || sdk.IsRetryable(err) || sdk.CodeOf(err) != sdk.CodeInvalid {
		t.Errorf("broken config: %v, want a non-retryable invalid error", err)
	}
}

// The DSN's password must not reach an error message, whatever fails.
func TestPasswordNeverInErrors(t *testing.T) {
	const pw = "Sup3r-S3cret-pw"
	for _, tc := range []struct {
		name, dsn string
		code      sdk.ErrorCode
	}{
		{"unreachable URL", "postgres://postgres:" + pw + "@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", sdk.CodeRetryable},
		{"unreachable keywords", "host=127.0.0.1 port=1 user=postgres password=" + pw + " dbname=test sslmode=disable connect_timeout=2", sdk.CodeRetryable},
		{"unparseable URL", "postgres://postgres:" + pw + "@127.0.0.1:notaport/test", sdk.CodeInvalid},
		{"unparseable keywords", "host=127.0.0.1 port=5432 password='" + pw, sdk.CodeInvalid}, // unterminated quote
	} {
		for _, schema := range []string{"", "crm"} {
			cfg, _ := json.Marshal(map[string]string{"dsn": tc.dsn, "schema": schema})
			err := New().Configure(ctxT(t), sdk.ConfigureRequest{Config: cfg})
			if err == nil {
				t.Fatalf("%s: Configure succeeded", tc.name)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("%s (schema %q): the password is in the error: %v", tc.name, schema, err)
			}
			if got := sdk.CodeOf(err); got != tc.code {
				t.Errorf("%s (schema %q): code %v, want %v (%v)", tc.name, schema, got, tc.code, err)
			}
		}
	}
}

func TestReconfigure(t *testing.T) {
	cfg := testdb.SQLiteConfig(t, nil)
	c, _ := configure(t, cfg)
	first := c.st.Load()
	if err := c.Configure(ctxT(t), sdk.ConfigureRequest{Config: cfg}); err != nil || c.st.Load() != first {
		t.Errorf("the same config again reopened the store: %v", err)
	}
	if err := c.CheckHealth(ctxT(t)); err != nil {
		t.Errorf("CheckHealth: %v", err)
	}
	other := testdb.SQLiteConfig(t, map[string]any{"link_template": link})
	if err := c.Configure(ctxT(t), sdk.ConfigureRequest{Config: other}); err != nil || c.st.Load() == first {
		t.Errorf("a new config kept the old store: %v", err)
	}
	r := mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{zalo("re")}})
	if r.Contact.URL == "" {
		t.Error("the new config's link template is not in use")
	}
}

func TestDescribe(t *testing.T) {
	m, err := New().Describe(ctxT(t))
	if err != nil || m.Kind != sdk.KindCRM || m.Name != Name || m.Version == "" {
		t.Fatalf("Describe: %+v, %v", m, err)
	}
	var schema map[string]any
	if err := json.Unmarshal(m.ConfigSchema, &schema); err != nil {
		t.Errorf("config schema is not JSON: %v", err)
	}
	props, _ := schema["properties"].(map[string]any)
	for _, key := range []string{"dsn", "schema", "sqlite_path", "max_conns", "link_template", "deal_link_template", "default_country_code", "default_pipeline", "closed_stages"} {
		if _, ok := props[key]; !ok {
			t.Errorf("config schema lacks %q", key)
		}
	}
}

// The SQLite file holds customer PII; it is created for its owner only.
func TestSQLiteFileIsPrivate(t *testing.T) {
	cfg := testdb.SQLiteConfig(t, nil)
	c, _ := configure(t, cfg)
	mustUpsert(t, c, "", sdk.Contact{Identities: []sdk.Identity{zalo("perm")}})
	path := mustParse(t, cfg).SQLitePath
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group or other access", f, fi.Mode().Perm())
		}
	}
}
