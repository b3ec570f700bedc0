package embedded

import (
	"encoding/binary"
	"errors"
	"time"
)

// Records are stored in a small hand-rolled binary layout rather than JSON or
// gob: the queue is the hot path and the layout is private to this package.
// Every record that can expire starts with its expiry (unix nanoseconds, 0 =
// never) so the sweeper can check any kind of record the same way.

var errCorrupt = errors.New("embedded: corrupt record")

type enc []byte

func (e enc) u64(v uint64) enc { return binary.BigEndian.AppendUint64(e, v) }
func (e enc) i64(v int64) enc  { return e.u64(uint64(v)) }
func (e enc) bytes(b []byte) enc {
	e = binary.AppendUvarint(e, uint64(len(b)))
	return append(e, b...)
}
func (e enc) str(s string) enc {
	e = binary.AppendUvarint(e, uint64(len(s)))
	return append(e, s...)
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errCorrupt
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *dec) i64() int64 { return int64(d.u64()) }

// bytes returns a copy: values read inside a bolt transaction are only valid
// until it ends.
func (d *dec) bytes() []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || uint64(len(d.b)-k) < n {
		d.err = errCorrupt
		return nil
	}
	out := make([]byte, n)
	copy(out, d.b[k:k+int(n)])
	d.b = d.b[k+int(n):]
	return out
}

func (d *dec) str() string { return string(d.bytes()) }

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// expiryOf is the expiry at the head of an expiring record.
func expiryOf(v []byte) int64 {
	if len(v) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// live reports whether an expiring record is still valid at now.
func live(v []byte, now int64) bool {
	if v == nil {
		return false
	}
	exp := expiryOf(v)
	return exp == 0 || exp > now
}
