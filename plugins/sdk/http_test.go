package sdk_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Concurrent calls reuse their connections on the next round instead of
// opening new ones (Go's default transport keeps 2 idle per host).
func TestHTTPClientKeepsConnectionsForConcurrentCalls(t *testing.T) {
	var opened atomic.Int64
	var mu sync.Mutex
	release := make(chan struct{})
	current := func() chan struct{} { mu.Lock(); defer mu.Unlock(); return release }
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch := current()
		arrived.Done()
		<-ch // hold every request until all are in flight, so each needs its own connection
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := sdk.NewHTTPClient(0)
	const n = 16
	round := func() {
		arrived.Add(n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := c.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
		arrived.Wait()
		close(current())
		wg.Wait()
		mu.Lock()
		release = make(chan struct{})
		mu.Unlock()
	}
	round()
	first := opened.Load()
	round()
	if again := opened.Load() - first; again != 0 {
		t.Errorf("second round of %d concurrent calls opened %d new connections, want 0 (first round opened %d)", n, again, first)
	}
}
