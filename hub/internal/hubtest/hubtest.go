// Package hubtest runs the real hub binary with real plugin subprocesses
// on loopback for end-to-end tests: it builds the binaries, writes a
// config, starts and kills hub processes, collects what channel plugins
// send in a sink, and signs test-channel webhooks.
package hubtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

const mod = "github.com/switchboard-hub/switchboard/"

// Bins are the built binaries.
type Bins struct{ Hub, Channel, CRM, LLM string }

// Build builds the hub and the test plugins once per test process.
func Build(t testing.TB) Bins {
	return Bins{
		Hub:     testkit.BuildPlugin(t, mod+"cmd/switchboard"),
		Channel: testkit.BuildPlugin(t, mod+"plugins/sdk/testplugins/testchannel"),
		CRM:     testkit.BuildPlugin(t, mod+"plugins/sdk/testplugins/testcrm"),
		LLM:     testkit.BuildPlugin(t, mod+"plugins/sdk/testplugins/testllm"),
	}
}

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Eventually polls cond every 20ms until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Sink records what test channels send.
type Sink struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []testplugins.SentMessage
	keys map[string]int
	fail int // answer 503 to the next fail requests
}

// NewSink starts a sink on loopback.
func NewSink(t testing.TB) *Sink {
	s := &Sink{keys: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m testplugins.SentMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail > 0 {
			s.fail--
			w.WriteHeader(503)
			return
		}
		s.msgs = append(s.msgs, m)
		s.keys[m.IdempotencyKey]++
		w.WriteHeader(200)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is where channels send.
func (s *Sink) URL() string { return s.srv.URL }

// FailNext makes the next n sends fail with 503.
func (s *Sink) FailNext(n int) { s.mu.Lock(); s.fail = n; s.mu.Unlock() }

// Messages returns what was sent, in arrival order.
func (s *Sink) Messages() []testplugins.SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]testplugins.SentMessage(nil), s.msgs...)
}

// Count is the number of sends; Distinct the number of idempotency keys.
func (s *Sink) Count() (total, distinct int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs), len(s.keys)
}

// Hub is one running hub process.
type Hub struct {
	t          testing.TB
	Cmd        *exec.Cmd
	ConfigPath string
	Webhooks   string // base URL
	Admin      string // base URL
	AdminKey   string // bearer token for admin routes, when the test set one
	out        *syncBuffer
	done       chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Start writes config (YAML, with {{WEBHOOK}} and {{ADMIN}} replaced by
// fresh loopback addresses) into dir and starts the hub on it, waiting
// until /readyz says ready. env adds to the hub's environment.
func Start(t testing.TB, bins Bins, dir, config string, env ...string) *Hub {
	t.Helper()
	web, adm := FreeAddr(t), FreeAddr(t)
	config = withAdminKey(replaceAll(config, map[string]string{"{{WEBHOOK}}": web, "{{ADMIN}}": adm}))
	path := filepath.Join(dir, fmt.Sprintf("hub-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return StartFile(t, bins, path, "http://"+web, "http://"+adm, env...)
}

// StartFile starts the hub on an existing config file and waits until
// /readyz says ready.
func StartFile(t testing.TB, bins Bins, path, webhooks, admin string, env ...string) *Hub {
	t.Helper()
	return startFile(t, bins, path, webhooks, admin, "/readyz", env)
}

// StartLive is Start for a hub that is expected not to be ready (a plugin
// whose provider rejects it): it waits for /healthz only.
func StartLive(t testing.TB, bins Bins, dir, config string, env ...string) *Hub {
	t.Helper()
	web, adm := FreeAddr(t), FreeAddr(t)
	config = withAdminKey(replaceAll(config, map[string]string{"{{WEBHOOK}}": web, "{{ADMIN}}": adm}))
	path := filepath.Join(dir, fmt.Sprintf("hub-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return startFile(t, bins, path, "http://"+web, "http://"+adm, "/healthz", env)
}

// AdminKeyEnv names the variable through which test hubs get an admin key.
const AdminKeyEnv = "HUBTEST_ADMIN_KEY"

// TestAdminKey is the bootstrap admin key of every test hub whose config
// does not set an admin section itself.
const TestAdminKey = "sb_hubtest_bootstrap_admin_key_0123456789abcdef"

// withAdminKey gives the config a bootstrap admin key from the environment
// unless it configures admin itself.
func withAdminKey(config string) string {
	for _, line := range bytes.Split([]byte(config), []byte("\n")) {
		if bytes.HasPrefix(line, []byte("admin:")) {
			return config
		}
	}
	return config + "\nadmin: { bootstrap_key_env: " + AdminKeyEnv + " }\n"
}

func startFile(t testing.TB, bins Bins, path, webhooks, admin, probe string, env []string) *Hub {
	t.Helper()
	h := &Hub{t: t, ConfigPath: path, Webhooks: webhooks, Admin: admin, AdminKey: TestAdminKey, out: &syncBuffer{}, done: make(chan struct{})}
	h.Cmd = exec.Command(bins.Hub, "serve", "--config", path)
	h.Cmd.Env = append(append(os.Environ(), AdminKeyEnv+"="+TestAdminKey), env...)
	h.Cmd.Stdout, h.Cmd.Stderr = h.out, h.out
	if err := h.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.Cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		h.Kill()
		if t.Failed() {
			t.Logf("hub log (%s):\n%s", path, tail(h.out.String(), 4000))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-h.done:
			t.Fatalf("hub exited during start:\n%s", h.out.String())
		default:
		}
		if resp, err := http.Get(admin + probe); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub not answering %s after 60s:\n%s", probe, h.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func replaceAll(s string, m map[string]string) string {
	for k, v := range m {
		s = string(bytes.ReplaceAll([]byte(s), []byte(k), []byte(v)))
	}
	return s
}

// Log returns what the hub wrote so far.
func (h *Hub) Log() string { return h.out.String() }

// Kill SIGKILLs the hub and waits for it.
func (h *Hub) Kill() {
	if h.Cmd.Process != nil {
		_ = h.Cmd.Process.Signal(syscall.SIGKILL)
	}
	<-h.done
}

// Stop sends SIGTERM and waits up to d for a clean exit.
func (h *Hub) Stop(d time.Duration) error {
	_ = h.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
		if !h.Cmd.ProcessState.Success() {
			return fmt.Errorf("hub exited with %s", h.Cmd.ProcessState)
		}
		return nil
	case <-time.After(d):
		return fmt.Errorf("hub did not stop within %s", d)
	}
}

// Exited reports whether the process has ended.
func (h *Hub) Exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

// PostTest sends a signed test-channel webhook to instance and returns the
// status code (0 with an error when the hub did not answer).
func PostTest(ctx context.Context, base, instance, secret string, msgs ...testplugins.WebhookMessage) (int, error) {
	body, _ := json.Marshal(testplugins.WebhookBody{Messages: msgs})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhooks/"+instance, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(testplugins.SignatureHeader, testplugins.Sign(secret, body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// GetJSON fetches url into v.
func GetJSON(url string, v any, header ...string) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil && err != io.EOF {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

// RedisURL is the Redis the tests use.
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// RequireRedis skips (locally) or fails (in CI) when Redis is unreachable.
func RequireRedis(t testing.TB) {
	t.Helper()
	addr := "127.0.0.1:6379"
	if u := os.Getenv("REDIS_URL"); u != "" {
		if p, err := parseHostPort(u); err == nil {
			addr = p
		}
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis at %s is required in CI: %v", addr, err)
		}
		t.Skipf("Redis at %s unreachable: %v", addr, err)
	}
	c.Close()
}

func parseHostPort(u string) (string, error) {
	var host string
	_, err := fmt.Sscanf(u, "redis://%s", &host)
	if err != nil {
		return "", err
	}
	if i := bytes.IndexByte([]byte(host), '/'); i >= 0 {
		host = host[:i]
	}
	if i := bytes.LastIndexByte([]byte(host), '@'); i >= 0 {
		host = host[i+1:]
	}
	return host, nil
}

// Metric reads one sample from the hub's /metrics: name with the given
// label pairs ("kind", "event"); 0 when absent. AdminKey, when set, is sent
// as a bearer token.
func (h *Hub) Metric(name string, labels ...string) float64 {
	req, _ := http.NewRequest(http.MethodGet, h.Admin+"/metrics", nil)
	if h.AdminKey != "" {
		req.Header.Set("Authorization", "Bearer "+h.AdminKey)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range bytes.Split(b, []byte("\n")) {
		l := string(line)
		if len(l) == 0 || l[0] == '#' || !hasPrefixName(l, name) {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !bytes.Contains(line, []byte(labels[i]+`="`+labels[i+1]+`"`)) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(l[bytes.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum
}

func hasPrefixName(line, name string) bool {
	return len(line) > len(name) && line[:len(name)] == name && (line[len(name)] == '{' || line[len(name)] == ' ')
}
