package zalo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/zalo/zalofake"
)

func readToken(t testing.TB, host *sdk.MemoryHost) tokenRecord {
	t.Helper()
	var rec tokenRecord
	if _, err := getJSON(ctxT(t), host, tokenKey(goldenOAID), &rec); err != nil {
		t.Fatalf("token record: %v", err)
	}
	return rec
}

// checkSingleUse fails if any refresh token reached Zalo twice or Zalo
// refused one.
func checkSingleUse(t testing.TB, fake *zalofake.Server) {
	t.Helper()
	for tok, n := range fake.RefreshUses() {
		if n != 1 {
			t.Errorf("a refresh token was presented %d times (…%s)", n, tok[len(tok)-4:])
		}
	}
	for _, r := range fake.TokenRequests() {
		if r.ErrorCode != 0 {
			t.Errorf("token endpoint refused a request with %d", r.ErrorCode)
		}
	}
}

func sendOne(t testing.TB, c *Connector, user, text string) (*sdk.SendResult, error) {
	return c.Send(ctxT(t), &sdk.Outbound{To: sdk.Identity{Channel: "zalo", UserID: user}, Type: "text", Text: text})
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	clk := newClock(time.Now())
	fake := newFake(t, zalofake.Config{Now: clk.Now})
	for _, tt := range []struct {
		name      string
		expiresIn time.Duration
		refreshes int
	}{
		{"5 min left: refresh first", 5 * time.Minute, 1},
		{"1 h left: use it", time.Hour, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake.Reset()
			access, _ := fake.IssueTokens()
			host := sdk.NewMemoryHost(nil)
			c := configure(t, fake, host, clk.Now, map[string]any{"access_token_expires_at": clk.Now().Add(tt.expiresIn)})
			if _, err := sendOne(t, c, goldenUser, "hi"); err != nil {
				t.Fatal(err)
			}
			if n := len(fake.TokenRequests()); n != tt.refreshes {
				t.Fatalf("%d token requests, want %d", n, tt.refreshes)
			}
			sent := fake.Sends()
			if len(sent) != 1 {
				t.Fatalf("%d sends", len(sent))
			}
			newAccess, newRefresh := fake.Tokens()
			if tt.refreshes == 0 {
				if sent[0].AccessToken != access {
					t.Error("a token with an hour left was not used")
				}
				return
			}
			if sent[0].AccessToken != newAccess {
				t.Error("the send did not use the refreshed token")
			}
			rec := readToken(t, host)
			if rec.RefreshToken != newRefresh || rec.AccessToken != newAccess || rec.Generation != 1 {
				t.Errorf("KV holds generation %d, not the rotated pair", rec.Generation)
			}
			if want := clk.Now().Add(90000 * time.Second); !rec.ExpiresAt.Equal(want) {
				t.Errorf("expires_at %s, want %s (expires_in \"90000\")", rec.ExpiresAt, want)
			}
			if rec.LeaseOwner != "" {
				t.Error("lease not cleared after the refresh")
			}
			checkSingleUse(t, fake)
		})
	}
}

// TestTokenExpiredRefreshAndRetryOnce: Zalo rejects the token (-216); the
// connector refreshes and retries the send once.
func TestTokenExpiredRefreshAndRetryOnce(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	host := sdk.NewMemoryHost(nil)
	spentConfig := fake.PluginConfig(nil)
	c := configure(t, fake, host, nil, nil)
	fake.ExpireAccessTokens()
	res, err := sendOne(t, c, goldenUser, "hi")
	if err != nil {
		t.Fatal(err)
	}
	sends := fake.Sends()
	if len(sends) != 2 || sends[0].ErrorCode != zalofake.CodeTokenInvalid || sends[1].MessageID != res.ProviderMessageID {
		t.Fatalf("sends: %+v", sends)
	}
	if n := len(fake.TokenRequests()); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	checkSingleUse(t, fake)

	// A restarted plugin with the same (now spent) config tokens keeps the
	// rotated pair from the KV rather than re-seeding the spent one.
	c2 := New()
	if err := c2.Configure(ctxT(t), sdk.ConfigureRequest{Config: spentConfig, Host: sdk.HostFromBackend(host)}); err != nil {
		t.Fatal(err)
	}
	fake.ExpireAccessTokens()
	if _, err := sendOne(t, c2, goldenUser, "after restart"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if n := len(fake.TokenRequests()); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	checkSingleUse(t, fake)
	if g := readToken(t, host).Generation; g != 2 {
		t.Errorf("generation %d, want 2", g)
	}
}

// TestTokenReseededByNewConfig: new tokens in the config (the OA was
// authorised again) replace the stored lineage.
func TestTokenReseededByNewConfig(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	host := sdk.NewMemoryHost(nil)
	configure(t, fake, host, nil, nil)
	fake.ExpireAccessTokens()
	access, refresh := fake.IssueTokens()
	c := configure(t, fake, host, nil, nil) // PluginConfig carries the new pair
	rec := readToken(t, host)
	if rec.AccessToken != access || rec.RefreshToken != refresh || rec.Generation != 0 {
		t.Fatal("new config tokens did not replace the stored ones")
	}
	if _, err := sendOne(t, c, goldenUser, "x"); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.TokenRequests()); n != 0 {
		t.Errorf("%d refreshes with a fresh token", n)
	}
}

// TestOldConfigDoesNotReseed: during a rolling deploy a replica restarts
// with the old config; its spent tokens must not replace the new ones.
func TestOldConfigDoesNotReseed(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	host := sdk.NewMemoryHost(nil)
	oldConfig := fake.PluginConfig(nil)
	configure(t, fake, host, nil, nil)
	access, _ := fake.IssueTokens()
	configure(t, fake, host, nil, nil) // new tokens replace the old lineage
	old := New()
	if err := old.Configure(ctxT(t), sdk.ConfigureRequest{Config: oldConfig, Host: sdk.HostFromBackend(host)}); err != nil {
		t.Fatal(err)
	}
	if rec := readToken(t, host); rec.AccessToken != access {
		t.Fatal("an old config re-seeded its tokens over newer ones")
	}
}

// TestConcurrentRefreshTwoReplicas: two plugin instances on one store (two
// hub replicas) find the token expired at the same time; the refresh token
// is spent exactly once and every send succeeds.
func TestConcurrentRefreshTwoReplicas(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			fake := newFake(t, zalofake.Config{})
			host := sdk.NewMemoryHost(nil)
			replicas := []*Connector{configure(t, fake, host, nil, nil), configure(t, fake, host, nil, nil)}
			fake.ExpireAccessTokens()
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					if _, err := sendOne(t, replicas[i%2], goldenUser, fmt.Sprint("m", i)); err != nil {
						t.Errorf("send %d: %v", i, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if n := len(fake.TokenRequests()); n != 1 {
				t.Errorf("%d token requests, want exactly 1", n)
			}
			checkSingleUse(t, fake)
			if n := len(fake.Accepted()); n != 16 {
				t.Errorf("%d messages accepted, want 16", n)
			}
		})
	}
}

// TestRefreshLeaseTakeover: a replica that died holding the refresh lease
// delays the others only until the lease runs out.
func TestRefreshLeaseTakeover(t *testing.T) {
	clk := newClock(time.Now())
	fake := newFake(t, zalofake.Config{Now: clk.Now})
	host := sdk.NewMemoryHost(nil)
	c := configure(t, fake, host, clk.Now, nil)
	_, err := updateJSON(ctxT(t), host, tokenKey(goldenOAID), 0, func(r *tokenRecord, _ bool) (bool, error) {
		r.LeaseOwner, r.LeaseUntil = "a-replica-that-died", clk.Now().Add(30*time.Second)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fake.ExpireAccessTokens()
	done := make(chan error, 1)
	go func() {
		_, err := sendOne(t, c, goldenUser, "x")
		done <- err
	}()
	// The send hit -216 and now waits for the dead replica's refresh.
	if err := fake.WaitFor(ctxT(t), func(f *zalofake.Server) bool { return len(f.Sends()) == 1 }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("send finished while another replica held the lease: %v", err)
	default:
	}
	clk.Add(31 * time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctxT(t).Done():
		t.Fatal("send still waiting after the lease ran out")
	}
	if n := len(fake.TokenRequests()); n != 1 {
		t.Errorf("%d token requests", n)
	}
}

// TestWaitingForLeaseHonoursContext: a send waiting on another replica's
// refresh gives up with its context.
func TestWaitingForLeaseHonoursContext(t *testing.T) {
	clk := newClock(time.Now())
	fake := newFake(t, zalofake.Config{Now: clk.Now})
	host := sdk.NewMemoryHost(nil)
	c := configure(t, fake, host, clk.Now, nil)
	_, _ = updateJSON(ctxT(t), host, tokenKey(goldenOAID), 0, func(r *tokenRecord, _ bool) (bool, error) {
		r.LeaseOwner, r.LeaseUntil = "busy-replica", clk.Now().Add(time.Minute)
		return true, nil
	})
	fake.ExpireAccessTokens()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Send(ctx, &sdk.Outbound{To: sdk.Identity{UserID: goldenUser}, Text: "x"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline", err)
	}
}

func TestRefreshTokenRejected(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	host := sdk.NewMemoryHost(nil)
	c := configure(t, fake, host, nil, nil)
	fake.ExpireAccessTokens()
	fake.RevokeRefreshTokens()
	_, err := sendOne(t, c, goldenUser, "x")
	if sdk.CodeOf(err) != sdk.CodeUnauthorized || sdk.ReasonOf(err) != "refresh_token_invalid" {
		t.Fatalf("got %v, want unauthorized refresh_token_invalid", err)
	}
	_, refresh := fake.Tokens()
	if strings.Contains(err.Error(), refresh) || strings.Contains(err.Error(), fake.Config().AppSecret) {
		t.Fatal("error leaks a secret")
	}
	if rec := readToken(t, host); rec.LeaseOwner != "" {
		t.Error("lease kept after a failed refresh")
	}
	for _, l := range host.Logs() {
		for _, v := range l.Attrs {
			if strings.Contains(v, refresh) {
				t.Fatalf("log %q leaks the refresh token", l.Message)
			}
		}
	}
}

func TestRefreshNetworkFailure(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	dead := httptest.NewServer(nil)
	dead.Close()
	host := sdk.NewMemoryHost(nil)
	c := configure(t, fake, host, nil, map[string]any{"base_url": map[string]string{"openapi": fake.URL(), "oauth": dead.URL}})
	fake.ExpireAccessTokens()
	_, err := sendOne(t, c, goldenUser, "x")
	if sdk.CodeOf(err) != sdk.CodeRetryable || sdk.ReasonOf(err) != "network" {
		t.Fatalf("got %v, want retryable network", err)
	}
	if rec := readToken(t, host); rec.LeaseOwner != "" {
		t.Error("lease kept after a failed refresh")
	}
}

// flakyKV fails the compare-and-swap that would store a rotated token pair
// while fail is set: the host store went away mid-refresh.
type flakyKV struct {
	*sdk.MemoryHost
	fail atomic.Bool
}

func (f *flakyKV) CompareAndSwap(ctx context.Context, key string, expect int64, value []byte, ttl time.Duration) (int64, error) {
	if f.fail.Load() && bytes.Contains(value, []byte(`"generation":1`)) {
		return 0, sdk.Retryable(errors.New("store unavailable"), 0)
	}
	return f.MemoryHost.CompareAndSwap(ctx, key, expect, value, ttl)
}

// TestRotatedTokenKeptWhenStoreFails: the refresh token was spent but the
// KV refused the new pair; the plugin keeps the pair and stores it on the
// next call rather than losing the OA's authorisation.
func TestRotatedTokenKeptWhenStoreFails(t *testing.T) {
	fake := newFake(t, zalofake.Config{})
	kv := &flakyKV{MemoryHost: sdk.NewMemoryHost(nil)}
	c := New()
	if err := c.Configure(ctxT(t), sdk.ConfigureRequest{Config: fake.PluginConfig(nil), Host: sdk.HostFromBackend(kv)}); err != nil {
		t.Fatal(err)
	}
	fake.ExpireAccessTokens()
	kv.fail.Store(true)
	if _, err := sendOne(t, c, goldenUser, "x"); !sdk.IsRetryable(err) {
		t.Fatalf("got %v, want retryable", err)
	}
	kv.fail.Store(false)
	if _, err := sendOne(t, c, goldenUser, "y"); err != nil {
		t.Fatal(err)
	}
	_, refresh := fake.Tokens()
	if rec := readToken(t, kv.MemoryHost); rec.RefreshToken != refresh || rec.Generation != 1 {
		t.Errorf("KV holds generation %d, not the rotated pair", rec.Generation)
	}
	checkSingleUse(t, fake)
}
