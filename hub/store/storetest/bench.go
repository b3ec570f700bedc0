package storetest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// Bench runs the store benchmarks; open returns a fresh, empty store.
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	payload := make([]byte, 512) // about one webhook event
	b.Run("Enqueue", func(b *testing.B) {
		s, ctx := open(b), context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.Enqueue(ctx, "conv-"+strconv.Itoa(i%64), payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("EnqueueParallel", func(b *testing.B) {
		s, ctx := open(b), context.Background()
		var n atomic.Int64
		b.SetParallelism(8) // webhook handlers run concurrently
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Enqueue(ctx, "conv-"+strconv.FormatInt(n.Add(1)%64, 10), payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	for _, batch := range []int{1, 10} {
		b.Run("ReadAck/batch="+strconv.Itoa(batch), func(b *testing.B) {
			s, ctx := open(b), context.Background()
			for i := 0; i < b.N; i++ {
				if _, err := s.Enqueue(ctx, "one-conv", payload); err != nil {
					b.Fatal(err)
				}
			}
			p := s.PartitionOf("one-conv")
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				got, err := s.Read(ctx, p, "bench", batch, time.Second)
				if err != nil {
					b.Fatal(err)
				}
				ids := make([]string, len(got))
				for i, e := range got {
					ids[i] = e.ID
				}
				if err := s.Ack(ctx, p, ids...); err != nil {
					b.Fatal(err)
				}
				done += len(got)
			}
		})
	}
	b.Run("MarkOnce", func(b *testing.B) {
		s, ctx := open(b), context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.MarkOnce(ctx, "wamid."+strconv.Itoa(i), 7*24*time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("MarkOnceParallel", func(b *testing.B) {
		s, ctx := open(b), context.Background()
		var n atomic.Int64
		b.SetParallelism(8)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.MarkOnce(ctx, "wamid."+strconv.FormatInt(n.Add(1), 10), 7*24*time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
