package sqlcrm

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard-hub/switchboard/plugins/postgrescrm/internal/testdb"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// BenchmarkUpsertContact measures one upsert transaction: a new person
// (contact, identities, idempotency row), an update of a known one, and new
// people from parallel callers.
func BenchmarkUpsertContact(b *testing.B) {
	for _, be := range testdb.Backends {
		b.Run(be.Name, func(b *testing.B) {
			c, _ := configure(b, be.Config(b, nil))
			ctx := ctxT(b)
			b.Run("new", func(b *testing.B) {
				for i := range b.N {
					_, err := c.UpsertContact(ctx, &sdk.UpsertContactRequest{IdempotencyKey: fmt.Sprint("new-", i), Contact: sdk.Contact{
						Identities: []sdk.Identity{zalo(fmt.Sprint("bench-new-", i))}, Phone: fmt.Sprintf("+8491%07d", i),
						Score: 40, Tier: "warm", Facts: sdk.LeadFacts{Intent: "quote", Need: "CRM"}}})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("existing", func(b *testing.B) {
				for i := range b.N {
					_, err := c.UpsertContact(ctx, &sdk.UpsertContactRequest{IdempotencyKey: fmt.Sprint("ex-", i), Contact: sdk.Contact{
						Identities: []sdk.Identity{zalo("bench-existing")}, Score: i % 100, Tags: []string{"t"}}})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			var n atomic.Int64
			b.Run("parallel-new", func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						_, err := c.UpsertContact(ctx, &sdk.UpsertContactRequest{Contact: sdk.Contact{
							Identities: []sdk.Identity{wa(fmt.Sprint("bench-par-", i))}, Score: 10}})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}
