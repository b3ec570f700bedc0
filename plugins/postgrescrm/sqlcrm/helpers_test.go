package sqlcrm

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/postgrescrm/internal/testdb"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// configure returns a configured CRM on cfg, closed at cleanup, and the
// in-memory host it logs into.
func configure(t testing.TB, cfg json.RawMessage) (*CRM, *sdk.MemoryHost) {
	t.Helper()
	c := New()
	host := sdk.NewMemoryHost(nil)
	if err := c.Configure(ctxT(t), sdk.ConfigureRequest{Instance: "test", Config: cfg, Host: sdk.HostFromBackend(host)}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, host
}

// eachBackend runs f on PostgreSQL and on SQLite, each on a fresh database.
func eachBackend(t *testing.T, extra map[string]any, f func(t *testing.T, c *CRM)) {
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			c, _ := configure(t, b.Config(t, extra))
			f(t, c)
		})
	}
}

// count runs SELECT COUNT(*) FROM table WHERE where.
func count(t testing.TB, c *CRM, table, where string, args ...any) int {
	t.Helper()
	st, err := c.store()
	if err != nil {
		t.Fatal(err)
	}
	if where == "" {
		where = "1 = 1"
	}
	var n int
	err = st.db.read(ctxT(t), func(q querier) error {
		return q.queryRow(ctxT(t), fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE %s`, table, where), args...).Scan(&n)
	})
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func mustUpsert(t testing.TB, c *CRM, key string, ct sdk.Contact) *sdk.UpsertContactResult {
	t.Helper()
	r, err := c.UpsertContact(ctxT(t), &sdk.UpsertContactRequest{IdempotencyKey: key, Contact: ct})
	if err != nil {
		t.Fatalf("UpsertContact(%s): %v", key, err)
	}
	return r
}

func zalo(id string) sdk.Identity { return sdk.Identity{Channel: "zalo", UserID: id} }
func wa(id string) sdk.Identity   { return sdk.Identity{Channel: "whatsapp", UserID: id} }

// parallel runs f(0..n-1) at once and returns the errors.
func parallel(n int, f func(i int) error) []error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		start = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start // release them together, to make the collisions likely
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return errs
}
