package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/app"
	"github.com/switchboard-hub/switchboard/hub/config"
)

type openapiDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

type operation struct {
	OperationID string   `json:"operationId"`
	Roles       []string `json:"x-roles"`
	Security    *[]any   `json:"security"`
	Parameters  []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
}

// bareApp builds an App with the API mounted and runs nothing: enough to
// list routes and to serve requests through fiber's Test.
func bareApp(t *testing.T) *app.App {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "hub.yaml"), []byte("store: {embedded: {path: sb.db, no_sync: true}}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, io.Discard, admin.Mount(admin.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Store.Close() })
	return a
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPICoversRoutes fails when a route is missing from openapi.json
// or a documented operation is missing from the server, and checks that
// each operation's x-roles is what the authorization policy enforces.
func TestOpenAPICoversRoutes(t *testing.T) {
	var doc openapiDoc
	if err := json.Unmarshal(admin.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi version %q, want 3.1.0", doc.OpenAPI)
	}
	documented := map[string]operation{}
	for p, ops := range doc.Paths {
		for method, raw := range ops {
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, p, err)
			}
			key := strings.ToUpper(method) + " " + pathParam.ReplaceAllString(p, ":$1")
			documented[key] = op
			// Every path parameter is declared.
			for _, m := range pathParam.FindAllStringSubmatch(p, -1) {
				if !slices.ContainsFunc(op.Parameters, func(x struct {
					Name string `json:"name"`
					In   string `json:"in"`
				}) bool {
					return x.Name == m[1] && x.In == "path"
				}) {
					t.Errorf("%s: path parameter %s is not declared", key, m[1])
				}
			}
		}
	}
	a := bareApp(t)
	served := map[string]bool{}
	for _, r := range a.AdminRouter().GetRoutes(true) {
		p, ok := strings.CutPrefix(r.Path, admin.Prefix)
		if !ok || r.Method == http.MethodHead {
			continue
		}
		key := r.Method + " " + p
		served[key] = true
		if _, ok := documented[key]; !ok {
			t.Errorf("route %s is served but not in openapi.json", key)
		}
	}
	for key, op := range documented {
		if !served[key] {
			t.Errorf("openapi.json documents %s, which the server does not serve", key)
		}
		acc, ok := policy[key]
		if !ok {
			continue // reported by the authorization test
		}
		if acc.roles == nil {
			if op.Security == nil || len(*op.Security) != 0 {
				t.Errorf("%s is public but openapi.json does not say security: []", key)
			}
			continue
		}
		got, want := slices.Clone(op.Roles), slices.Clone(acc.roles)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: openapi.json x-roles %v, the server allows %v", key, got, want)
		}
	}

	// Every $ref points at something.
	var whole map[string]any
	_ = json.Unmarshal(admin.OpenAPI, &whole)
	for _, ref := range regexp.MustCompile(`"\$ref":\s*"#/([^"]+)"`).FindAllStringSubmatch(string(admin.OpenAPI), -1) {
		var cur any = whole
		for _, part := range strings.Split(ref[1], "/") {
			m, _ := cur.(map[string]any)
			cur = m[part]
		}
		if cur == nil {
			t.Errorf("dangling $ref #/%s", ref[1])
		}
	}

	// The file in the repo is what the server serves.
	disk, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.AdminRouter().Test(httptest.NewRequest("GET", admin.Prefix+"/openapi.json", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !bytes.Equal(body, disk) || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("served openapi.json: %d %s, %d bytes (disk %d)", res.StatusCode, res.Header.Get("Content-Type"), len(body), len(disk))
	}
}
