// Package coalesce turns concurrent calls into batches, opportunistically:
// a call goes out at once when a batch slot is free, and calls that arrive
// while every slot is busy queue up and leave together in the next batch.
// Nothing waits for a batch to fill, so at light load every batch holds one
// item and the latency is that of a single call; under load the number of
// round trips falls with the number of callers.
//
// The hub uses it for the webhooks it hands a channel plugin, and the SDK
// for the host KV calls a plugin makes.
package coalesce

import (
	"context"
	"sync"
)

// Result is the outcome of one item.
type Result[R any] struct {
	Val R
	Err error
}

// Options bound a batch. Zero values take the defaults noted.
type Options[T any] struct {
	MaxItems    int // items per batch; 64
	MaxInFlight int // batches in flight at once; 4
	// MaxBytes bounds the summed Size of a batch's items (a single item
	// larger than it goes out alone); 0: no bound. Size must be set with it.
	MaxBytes int
	Size     func(T) int
}

// Batcher coalesces calls of one kind. It is safe for concurrent use; the
// zero value is not usable, use New.
type Batcher[T, R any] struct {
	send func(items []T) []Result[R]
	opts Options[T]

	mu      sync.Mutex
	queue   []*item[T, R]
	running int
}

type item[T, R any] struct {
	ctx  context.Context
	v    T
	done chan Result[R]
}

// New returns a Batcher that sends batches with send. send must return one
// result per item, in order; it runs on a goroutine of the batcher, at
// most MaxInFlight at a time. Items whose caller left before their batch
// went out are not passed to send.
func New[T, R any](send func(items []T) []Result[R], opts Options[T]) *Batcher[T, R] {
	if opts.MaxItems <= 0 {
		opts.MaxItems = 64
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4
	}
	if opts.Size == nil {
		opts.MaxBytes = 0
	}
	return &Batcher[T, R]{send: send, opts: opts}
}

// Do queues v and waits for its result. When ctx ends first, Do returns
// ctx's error at once and the item's result, if it comes, is dropped.
func (b *Batcher[T, R]) Do(ctx context.Context, v T) (R, error) {
	it := &item[T, R]{ctx: ctx, v: v, done: make(chan Result[R], 1)}
	b.mu.Lock()
	b.queue = append(b.queue, it)
	if b.running < b.opts.MaxInFlight {
		b.running++
		go b.dispatch()
	}
	b.mu.Unlock()
	select {
	case r := <-it.done:
		return r.Val, r.Err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// dispatch sends batches until the queue is empty.
func (b *Batcher[T, R]) dispatch() {
	var batch []*item[T, R]
	var vals []T
	for {
		batch, vals = batch[:0], vals[:0]
		b.mu.Lock()
		n, bytes := 0, 0
		for n < len(b.queue) && n < b.opts.MaxItems {
			if b.opts.MaxBytes > 0 {
				s := b.opts.Size(b.queue[n].v)
				if n > 0 && bytes+s > b.opts.MaxBytes {
					break
				}
				bytes += s
			}
			n++
		}
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		for _, it := range b.queue[:n] {
			if it.ctx.Err() == nil { // its caller has left
				batch = append(batch, it)
				vals = append(vals, it.v)
			}
		}
		clear(b.queue[:n])
		b.queue = b.queue[n:]
		if len(b.queue) == 0 {
			b.queue = nil // let the backing array go
		}
		b.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		res := b.send(vals)
		for i, it := range batch {
			if i < len(res) {
				it.done <- res[i]
			} else {
				it.done <- Result[R]{Err: errShortAnswer}
			}
		}
		clear(vals)
	}
}

type shortAnswerError struct{}

func (shortAnswerError) Error() string {
	return "coalesce: the batch answered fewer results than it had items"
}

var errShortAnswer error = shortAnswerError{}
