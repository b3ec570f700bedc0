package embedded

import (
	"bytes"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Kinds of expiring records in the expiry index.
const (
	kindKV    byte = 'k' // ref: namespace, 0x00, key
	kindOnce  byte = 'o'
	kindCtr   byte = 'c'
	kindHist  byte = 'h'
	kindLease byte = 'l'
)

// sweepChunk bounds one sweep transaction so a large backlog of expired
// records never holds the single writer lock for long.
const sweepChunk = 1000

// setExpiry moves the expiry index entry of a record from old to exp.
func setExpiry(tx *bolt.Tx, kind byte, ref []byte, old, exp int64) error {
	if old == exp {
		return nil
	}
	b := tx.Bucket(bExp)
	if old != 0 {
		if err := b.Delete(expKey(old, kind, ref)); err != nil {
			return err
		}
	}
	if exp != 0 {
		return b.Put(expKey(exp, kind, ref), nil)
	}
	return nil
}

func expKey(exp int64, kind byte, ref []byte) []byte {
	k := append(make([]byte, 0, 9+len(ref)), u64key(uint64(exp))...)
	k = append(k, kind)
	return append(k, ref...)
}

func kvRef(ns, key string) []byte {
	return append(append([]byte(ns), 0), key...)
}

// resolve finds the bucket and key an expiry index entry points at.
func resolve(tx *bolt.Tx, kind byte, ref []byte) (*bolt.Bucket, []byte) {
	switch kind {
	case kindKV:
		i := bytes.IndexByte(ref, 0)
		if i < 0 {
			return nil, nil
		}
		return tx.Bucket(bKV).Bucket(ref[:i]), ref[i+1:]
	case kindOnce:
		return tx.Bucket(bOnce), ref
	case kindCtr:
		return tx.Bucket(bCtr), ref
	case kindHist:
		return tx.Bucket(bHist), ref
	case kindLease:
		return tx.Bucket(bLease), ref
	}
	return nil, nil
}

func (s *Store) sweeper() {
	defer s.sweeperWG.Done()
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			// A failed sweep is retried on the next tick; reads ignore
			// expired records meanwhile, so nothing is lost by waiting.
			_ = s.Sweep()
		}
	}
}

// Sweep deletes expired records and log records past their retention now.
// It runs in the background; tests call it directly.
func (s *Store) Sweep() error {
	now := s.nowNanos()
	for {
		n := 0
		err := s.update("sweep", func(tx *bolt.Tx) error {
			n = 0
			var due [][]byte
			c := tx.Bucket(bExp).Cursor()
			for k, _ := c.First(); k != nil && len(due) < sweepChunk; k, _ = c.Next() {
				if len(k) < 9 || int64(u64of(k[:8])) > now {
					break
				}
				due = append(due, bytes.Clone(k))
			}
			for _, k := range due {
				exp := int64(u64of(k[:8]))
				if b, key := resolve(tx, k[8], k[9:]); b != nil {
					if v := b.Get(key); v != nil && expiryOf(v) == exp {
						if err := b.Delete(key); err != nil {
							return err
						}
					}
				}
				if err := tx.Bucket(bExp).Delete(k); err != nil {
					return err
				}
			}
			n = len(due)
			return nil
		})
		if err != nil {
			return err
		}
		if n < sweepChunk {
			break
		}
	}
	return s.update("sweep logs", func(tx *bolt.Tx) error {
		return tx.Bucket(bLogRet).ForEach(func(log, ret []byte) error {
			return trimLog(tx, log, now-int64(u64of(ret)), -1)
		})
	})
}
