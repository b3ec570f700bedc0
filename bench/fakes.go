package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/claude/claudefake"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
	"github.com/switchboard-hub/switchboard/plugins/whatsapp/wafake"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

// tokenRe finds the message number the harness puts in every customer
// message ("#123"); the fake LLM echoes it in the reply, so a reply
// arriving at a channel fake is matched to the webhook it answers.
var tokenRe = regexp.MustCompile(`#(\d+)`)

// replies records, per message number, when its first reply reached a
// channel fake, and counts duplicates.
type replies struct {
	mu    sync.Mutex
	at    map[int]time.Time
	dups  int
	other int // sends without a token
	ch    chan struct{}
}

func newReplies() *replies { return &replies{at: map[int]time.Time{}, ch: make(chan struct{}, 1)} }

func (r *replies) record(body []byte) {
	now := time.Now()
	m := tokenRe.FindSubmatch(body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if m == nil {
		r.other++
		return
	}
	n, _ := strconv.Atoi(string(m[1]))
	if _, seen := r.at[n]; seen {
		r.dups++
		return
	}
	r.at[n] = now
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *replies) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.at)
}

func (r *replies) reset() {
	r.mu.Lock()
	r.at, r.dups, r.other = map[int]time.Time{}, 0, 0
	r.mu.Unlock()
}

// waitFor waits until n distinct replies arrived or the deadline passed.
func (r *replies) waitFor(n int, deadline time.Time) bool {
	for r.count() < n {
		d := time.Until(deadline)
		if d <= 0 {
			return false
		}
		select {
		case <-r.ch:
		case <-time.After(min(d, 200*time.Millisecond)):
		}
	}
	return true
}

// fakes are the providers the hub talks to, on loopback in this process:
// Zalo and WhatsApp (which the channel plugins send replies to) and
// Claude (the LLM plugin's API). A thin recording proxy in front of each
// channel fake sees every send the fake accepted.
type fakes struct {
	zalo    *zalofake.Server
	wa      *wafake.Fake
	claude  *claudefake.Server
	zaloURL string
	waURL   string
	sinkURL string // where the SDK's test channel sends
	replies *replies
	servers []*http.Server
}

func startFakes(llmLatency time.Duration) (*fakes, error) {
	f := &fakes{replies: newReplies()}
	f.zalo = zalofake.New(zalofake.Config{})
	f.wa = wafake.New(wafake.Options{IgnoreWindow: true})
	opts := []claudefake.Option{claudefake.WithResponder(echoToken)}
	if llmLatency > 0 {
		opts = append(opts, claudefake.WithLatency(llmLatency))
	}
	f.claude = claudefake.New(opts...)
	f.claude.Start()
	var err error
	if f.zaloURL, err = f.proxy(f.zalo.Handler(), func(status int, reqBody, respBody []byte) bool {
		return status == 200 && bytes.Contains(respBody, []byte(`"error":0`))
	}); err != nil {
		return nil, err
	}
	if f.sinkURL, err = f.proxy(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }),
		func(int, []byte, []byte) bool { return true }); err != nil {
		return nil, err
	}
	if f.waURL, err = f.proxy(f.wa.Handler(), func(status int, reqBody, respBody []byte) bool {
		return status == 200 && bytes.Contains(respBody, []byte(`"messages"`))
	}); err != nil {
		return nil, err
	}
	return f, nil
}

// echoToken is the fake model: Claude's rule-of-thumb answer with the
// message number appended to the reply.
func echoToken(req *claudefake.Request) claudefake.Reply {
	r := claudefake.RuleOfThumb(req)
	if m := tokenRe.FindString(req.LastUserText()); m != "" {
		if facts, ok := r.Facts.(map[string]any); ok {
			s, _ := facts["reply"].(string)
			facts["reply"] = s + " (" + m + ")"
		}
	}
	return r
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(s int) { r.status = s; r.ResponseWriter.WriteHeader(s) }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// proxy serves h on a new loopback port, recording accepted sends.
func (f *fakes) proxy(h http.Handler, accepted func(status int, reqBody, respBody []byte) bool) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/messages") || strings.HasSuffix(r.URL.Path, zalofake.PathSendCS) || r.URL.Path == "/sink") &&
			accepted(rec.status, body, rec.body.Bytes()) {
			f.replies.record(body)
		}
	})}
	f.servers = append(f.servers, srv)
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

func (f *fakes) close() {
	for _, s := range f.servers {
		_ = s.Close()
	}
	f.zalo.Close()
	f.wa.Close()
	f.claude.Close()
}

// zaloConfig and waConfig are the channel plugins' config blocks pointing
// at the recording proxies.
func (f *fakes) zaloConfig() string {
	return string(f.zalo.PluginConfig(map[string]any{"base_url": f.zaloURL}))
}

func (f *fakes) waConfig() string {
	// A Cloud API number with upgraded throughput (Meta: up to 1,000
	// messages/s); the default, 20/s, is for coexistence numbers.
	return string(f.wa.ChannelConfig(map[string]any{"base_url": f.waURL, "send_rate_per_second": 1000, "send_burst": 100}))
}

func (f *fakes) claudeConfig() string {
	b, _ := json.Marshal(map[string]any{"api_key": "${SB_BENCH_CLAUDE_KEY}", "base_url": f.claude.URL()})
	return string(b)
}

// buildRequests makes n signed webhook deliveries, alternating Zalo and
// WhatsApp, spread over convs conversations (users), numbered from first.
func (f *fakes) buildRequests(n, convs, first int) []request {
	out := make([]request, n)
	for i := range out {
		num := first + i
		conv := i % convs
		text := "Chào shop, cho mình hỏi thông tin sản phẩm? #" + strconv.Itoa(num)
		if conv%2 == 0 {
			user := strconv.Itoa(1_000_000_000 + conv)
			body := f.zalo.Body(f.zalo.Text(user, text))
			out[i] = request{path: "/webhooks/zalo", body: body, token: num, header: [][2]string{
				{"Content-Type", "application/json"}, {"X-ZEvent-Signature", f.zalo.SignBody(body)}}}
		} else {
			user := strconv.Itoa(84_900_000_000 + conv)
			body := f.wa.Inbound(wafake.Text(user, text))
			out[i] = request{path: "/webhooks/wa", body: body, token: num, header: [][2]string{
				{"Content-Type", "application/json"}, {"X-Hub-Signature-256", f.wa.Sign(body)}}}
		}
	}
	return out
}

// testSecret signs the SDK test channel's webhooks.
const testSecret = "bench-secret"

// buildTestRequests makes n signed webhooks of the SDK's test channel.
func buildTestRequests(n, convs, first int) []request {
	out := make([]request, n)
	for i := range out {
		num := first + i
		body, _ := json.Marshal(testplugins.WebhookBody{Messages: []testplugins.WebhookMessage{{
			ID: "t" + strconv.Itoa(num), User: "u" + strconv.Itoa(i%convs), Text: "Chào shop, cho mình hỏi thông tin sản phẩm? #" + strconv.Itoa(num)}}})
		out[i] = request{path: "/webhooks/test", body: body, token: num, header: [][2]string{
			{"Content-Type", "application/json"}, {testplugins.SignatureHeader, testplugins.Sign(testSecret, body)}}}
	}
	return out
}
