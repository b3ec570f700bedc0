package sqlcrm

import (
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The CRM logic is written once against querier, in SQL both databases
// accept: $n placeholders (modernc's SQLite binds "$3" to the third
// argument), INSERT ... ON CONFLICT, CASE, COALESCE and CAST. What differs is
// in dialect: GREATEST versus SQLite's scalar MAX, row-lock clauses (SQLite
// has none: BEGIN IMMEDIATE holds the only write lock there is), and the
// DDL, which lives in one migration directory per database.

// querier runs statements inside one transaction.
type querier interface {
	exec(ctx context.Context, sql string, args ...any) (int64, error)
	query(ctx context.Context, sql string, args ...any) (rowsIter, error)
	queryRow(ctx context.Context, sql string, args ...any) rowScanner
}

type rowScanner interface{ Scan(dest ...any) error }

type rowsIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// errNoRows is what both adapters turn their driver's no-rows error into.
var errNoRows = errors.New("no rows")

type dialect struct {
	name string
	// greatest is the scalar maximum of two values.
	greatest string
	// forUpdate locks contact rows about to be merged or rewritten.
	forUpdate string
	// forNoKeyUpdate serialises deal upserts of one contact without
	// blocking notes and tasks being added to it.
	forNoKeyUpdate string
	// forKeyShare keeps a contact from being merged away (deleted) while a
	// note, deal or task is attached to it.
	forKeyShare string
	// migrationsTable is the DDL of the schema_migrations table.
	migrationsTable string
}

var (
	postgresDialect = &dialect{
		name:           "postgres",
		greatest:       "GREATEST",
		forUpdate:      " FOR UPDATE",
		forNoKeyUpdate: " FOR NO KEY UPDATE",
		forKeyShare:    " FOR KEY SHARE",
		migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	checksum TEXT NOT NULL,
	applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`,
	}
	sqliteDialect = &dialect{
		name:     "sqlite",
		greatest: "MAX",
		migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	checksum TEXT NOT NULL,
	applied_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
)`,
	}
)

// database is one of the two drivers behind the CRM logic.
type database interface {
	dialect() *dialect
	// write runs fn in a read-write transaction. fn may run more than once
	// when the database asks for a retry (serialization failure, deadlock),
	// so it must only touch the database and its own results.
	write(ctx context.Context, fn func(q querier) error) error
	// read runs fn in a read-only transaction with one consistent snapshot.
	read(ctx context.Context, fn func(q querier) error) error
	// lockKeys takes transaction-scoped locks on the given keys, in order,
	// so upserts that share an identity run one after the other.
	lockKeys(ctx context.Context, q querier, keys []int64) error
	// migrate applies pending migrations under the database's migration
	// lock and returns how many it applied.
	migrate(ctx context.Context, ms []migration) (int, error)
	ping(ctx context.Context) error
	close()
	// classify turns a driver error into a typed SDK error with op as
	// context, and with any secret removed from its text.
	classify(op string, err error) error
}

// maxTxAttempts bounds the in-plugin retries of one transaction on a
// serialization failure or deadlock; after that the hub's queue retries.
const maxTxAttempts = 8

// txBackoff waits before retry n, with jitter so colliding transactions
// do not collide again in lockstep.
func txBackoff(ctx context.Context, n int) error {
	d := time.Duration(1<<min(n, 6)) * time.Millisecond
	d += time.Duration(rand.Int64N(int64(d)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lockKey hashes a namespaced name to the 64-bit key of an advisory lock.
// A collision only makes two unrelated upserts wait for each other.
func lockKey(parts ...string) int64 {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// sortedUnique orders lock keys so that two transactions never take the
// same locks in opposite orders.
func sortedUnique(keys []int64) []int64 {
	out := append([]int64(nil), keys...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	w := 0
	for i, k := range out {
		if i == 0 || k != out[w-1] {
			out[w] = k
			w++
		}
	}
	return out[:w]
}

// placeholders returns "$from, $from+1, ..." for n arguments.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}
