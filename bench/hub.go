package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/switchboard-hub/switchboard/plugins/claude/claudefake"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// bins are the binaries the harness builds once per run.
type bins struct {
	Hub, Zalo, WhatsApp, Claude, HubSpot, PostgresCRM, TestChannel, TestCRM, TestLLM string
}

func build(root, dir string) (bins, error) {
	b := bins{}
	for _, x := range []struct {
		dst *string
		pkg string
	}{
		{&b.Hub, "./cmd/switchboard"},
		{&b.Zalo, "./plugins/zalo"},
		{&b.WhatsApp, "./plugins/whatsapp"},
		{&b.Claude, "./plugins/claude"},
		{&b.HubSpot, "./plugins/hubspot"},
		{&b.PostgresCRM, "./plugins/postgrescrm"},
		{&b.TestChannel, "./plugins/sdk/testplugins/testchannel"},
		{&b.TestCRM, "./plugins/sdk/testplugins/testcrm"},
		{&b.TestLLM, "./plugins/sdk/testplugins/testllm"},
	} {
		out := filepath.Join(dir, filepath.Base(x.pkg))
		cmd := exec.Command("go", "build", "-o", out, x.pkg)
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", x.pkg, err, o)
		}
		*x.dst = out
	}
	return b, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer keeps a process's output (the last part of it) for errors
// and for the log scan.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 8<<20 {
		s.b.Reset() // the log is kept for diagnosis, not in full
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// hubProc is one running hub.
type hubProc struct {
	cmd      *exec.Cmd
	webhooks string // host:port
	admin    string
	pprof    string // host:port of the profiler, when asked for
	out      *syncBuffer
	done     chan struct{}
}

const adminKey = "sb_bench_admin_key_0123456789abcdef0123456789"

// startHub writes config (with {{WEBHOOK}} and {{ADMIN}} filled in) and
// starts the hub, waiting for /readyz.
func startHub(b bins, dir, config string, env ...string) (*hubProc, error) {
	h := &hubProc{webhooks: freeAddr(), admin: freeAddr(), out: &syncBuffer{}, done: make(chan struct{})}
	if profileDir != "" {
		h.pprof = freeAddr()
		config = strings.Replace(config, `admin: "{{ADMIN}}" }`, `admin: "{{ADMIN}}", pprof: "`+h.pprof+`" }`, 1)
	}
	config = strings.NewReplacer("{{WEBHOOK}}", h.webhooks, "{{ADMIN}}", h.admin).Replace(config)
	path := filepath.Join(dir, fmt.Sprintf("hub-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return nil, err
	}
	h.cmd = exec.Command(b.Hub, "serve", "--config", path)
	h.cmd.Env = append(append(os.Environ(), "SB_BENCH_ADMIN_KEY="+adminKey, "SB_BENCH_CLAUDE_KEY="+claudefake.DefaultAPIKey), env...)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = h.cmd.Wait(); close(h.done) }()
	deadline := time.Now().Add(90 * time.Second)
	last := ""
	for {
		select {
		case <-h.done:
			return nil, fmt.Errorf("hub exited during start:\n%s", tail(h.out.String(), 3000))
		default:
		}
		if resp, err := http.Get("http://" + h.admin + "/readyz"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return h, nil
			}
			last = string(b)
		}
		if time.Now().After(deadline) {
			h.kill()
			return nil, fmt.Errorf("hub not ready after 90s (/readyz: %s):\n%s", last, tail(h.out.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *hubProc) pid() int { return h.cmd.Process.Pid }

// stop asks the hub to shut down (SIGTERM) and waits; SIGKILL after 30s.
func (h *hubProc) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		h.kill()
	}
}

func (h *hubProc) kill() {
	_ = h.cmd.Process.Kill()
	<-h.done
}

// metric reads one sample (summed over label sets containing labels) from
// /metrics.
func (h *hubProc) metric(ctx context.Context, name string, labels ...string) float64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	var sum float64
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && strings.Contains(line, labels[i]+`="`+labels[i+1]+`"`)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// profileDir, when set (-profile), receives a CPU profile of the hub for
// each measured load.
var profileDir string

// profile fetches a CPU profile of secs seconds into file, in the
// background; wait for the returned channel.
func (h *hubProc) profile(file string, secs int) chan struct{} {
	done := make(chan struct{})
	if h.pprof == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", h.pprof, secs))
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}()
	return done
}
