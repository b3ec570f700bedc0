package assign_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/assign"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// BenchmarkAssignClose measures one assignment and its close (a
// conversation's whole life in the assigner) per op, from parallel
// goroutines, on each store and strategy.
func BenchmarkAssignClose(b *testing.B) {
	stores := map[string]func(b *testing.B) store.Store{
		"embedded": func(b *testing.B) store.Store { return openEmbedded(b) },
		"redis": func(b *testing.B) store.Store {
			requireRedis(b)
			return openRedis(b, redisPrefix(b))
		},
	}
	for _, sname := range []string{"embedded", "redis"} {
		for _, team := range []string{"rr5", "cap", "least"} {
			b.Run(sname+"/"+team, func(b *testing.B) {
				a := newAssigner(b, stores[sname](b), assign.Options{})
				ctx := context.Background()
				var n atomic.Int64
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						conv := fmt.Sprintf("b%d", n.Add(1))
						res, err := a.Submit(ctx, assign.Request{Conv: conv, Team: team})
						if err != nil {
							b.Error(err)
							return
						}
						if res.Queued {
							// Capacity full: it is assigned when another closes.
							continue
						}
						if err := a.Close(ctx, conv, ""); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "assignments/s")
			})
		}
	}
}
