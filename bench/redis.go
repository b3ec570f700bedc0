package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// redisProc is a private redis-server on a free loopback port, with the
// persistence the harness documents: AOF on, fsync every second.
type redisProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startRedis(dir string, extra ...string) (*redisProc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found: %w", err)
	}
	addr := freeAddr()
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", dir, "--save", "",
		"--appendonly", "yes", "--appendfsync", "everysec", "--protected-mode", "yes"}, extra...)
	r := &redisProc{cmd: exec.Command(bin, args...), addr: addr, done: make(chan struct{})}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("redis-server did not answer on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *redisProc) pid() int { return r.cmd.Process.Pid }
func (r *redisProc) url() string {
	return "redis://" + r.addr + "/0"
}

func (r *redisProc) stop() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

// commandCalls returns the calls per command from INFO commandstats.
func (r *redisProc) commandCalls() map[string]int64 {
	c, err := net.DialTimeout("tcp", r.addr, time.Second)
	if err != nil {
		return nil
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("INFO commandstats\r\n")); err != nil {
		return nil
	}
	// A bulk string: $<len>\r\n<payload>\r\n.
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 {
		return nil
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(buf), "\r\n") {
		// cmdstat_get:calls=12,usec=34,...
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || len(name) == len(line) {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		if v, err := strconv.ParseInt(calls, 10, 64); err == nil {
			out[name] = v
		}
	}
	return out
}
