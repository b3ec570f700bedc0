package sqlcrm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// pgDB is the production driver: a pgx pool on PostgreSQL.
//
// Concurrency: transactions run at READ COMMITTED. Upserts that share an
// identity serialise on transaction-scoped advisory locks keyed by the
// identity; contacts about to be rewritten or merged are locked with
// SELECT ... FOR UPDATE. A deadlock or serialization failure that still
// happens is retried here, a few times, as a database-level retry.
type pgDB struct {
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig
	schema  string
	// ns namespaces advisory lock keys: locks are database-wide, schemas
	// are not.
	ns string
	// secret is the DSN's password, scrubbed from every error text.
	secret string
}

func openPostgres(ctx context.Context, c Config) (*pgDB, error) {
	pc, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		// The parser's message can quote the connection string, password
		// included, so none of it is passed on.
		return nil, sdk.Invalid(errors.New("dsn: cannot parse the PostgreSQL connection string (its text is not shown because it may hold a password)"))
	}
	pc.MaxConns = int32(c.MaxConns)
	pc.ConnConfig.RuntimeParams["application_name"] = "switchboard-postgrescrm"
	if c.Schema != "" {
		// Sanitize quotes the identifier; the config check already limits
		// it to [a-z0-9_].
		pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{c.Schema}.Sanitize()
	}
	p := &pgDB{connCfg: pc.ConnConfig.Copy(), schema: c.Schema, secret: pc.ConnConfig.Password}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, p.classify("open pool", err)
	}
	p.pool = pool
	p.ns = c.Schema
	if p.ns == "" {
		var ns *string
		if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&ns); err != nil {
			pool.Close()
			return nil, p.classify("connect", err)
		}
		if ns != nil {
			p.ns = *ns
		}
	}
	return p, nil
}

func (p *pgDB) dialect() *dialect { return postgresDialect }

func (p *pgDB) ping(ctx context.Context) error {
	return p.classify("ping", p.pool.Ping(ctx))
}

func (p *pgDB) close() { p.pool.Close() }

func (p *pgDB) write(ctx context.Context, fn func(querier) error) error {
	for attempt := 0; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted},
			func(tx pgx.Tx) error { return fn(pgQuerier{tx}) })
		if err == nil || !pgRetryInTx(err) || attempt+1 >= maxTxAttempts {
			return err
		}
		if err := txBackoff(ctx, attempt); err != nil {
			return err
		}
	}
}

func (p *pgDB) read(ctx context.Context, fn func(querier) error) error {
	return pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error { return fn(pgQuerier{tx}) })
}

func (p *pgDB) lockKeys(ctx context.Context, q querier, keys []int64) error {
	for _, k := range sortedUnique(keys) {
		if _, err := q.exec(ctx, `SELECT pg_advisory_xact_lock($1)`, k); err != nil {
			return fmt.Errorf("lock identity: %w", err)
		}
	}
	return nil
}

// migrate holds a session advisory lock on a connection of its own, so a
// second process starting at the same time waits and then finds nothing
// left to do. Closing that connection releases the lock even if unlocking
// fails.
func (p *pgDB) migrate(ctx context.Context, ms []migration) (int, error) {
	conn, err := pgx.ConnectConfig(ctx, p.connCfg.Copy())
	if err != nil {
		return 0, p.classify("migrate: connect", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	key := lockKey("switchboard-postgrescrm", "migrate", p.ns)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return 0, p.classify("migrate: lock", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key) }()
	if p.schema != "" {
		// Look first: CREATE SCHEMA IF NOT EXISTS still needs the CREATE
		// privilege on the database, which a locked-down CRM role whose
		// schema was made by an admin does not have.
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, p.schema).Scan(&exists); err != nil {
			return 0, p.classify("migrate: look up schema", err)
		}
		if !exists {
			if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{p.schema}.Sanitize()); err != nil {
				return 0, p.classify("migrate: create schema", err)
			}
		}
	}
	n, err := runMigrations(ctx, postgresDialect, func(ctx context.Context, fn func(querier) error) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return fn(pgQuerier{tx}) })
	}, ms)
	return n, p.classify("migrate", err)
}

// pgRetryInTx: serialization_failure and deadlock_detected ask the client
// to run the transaction again.
func pgRetryInTx(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func (p *pgDB) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return se
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	wrapped := redactedError{op: op, err: err, secret: p.secret}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "55P03" || pe.Code == "57014":
			return sdk.Retryable(wrapped, 0).WithProviderCode(pe.Code)
		case pe.Code == "23505":
			return sdk.Conflict(wrapped).WithProviderCode(pe.Code)
		case strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"):
			return sdk.Invalid(wrapped).WithProviderCode(pe.Code)
		case strings.HasPrefix(pe.Code, "28"):
			return sdk.Unauthorized(wrapped).WithProviderCode(pe.Code)
		case strings.HasPrefix(pe.Code, "42") || strings.HasPrefix(pe.Code, "3D") || strings.HasPrefix(pe.Code, "3F"):
			// Missing table, schema or database, syntax: a person must act.
			return sdk.Permanent(wrapped).WithProviderCode(pe.Code)
		}
		// 08 connection, 53 resources, 57 shutdown, and the rest.
		return sdk.Retryable(wrapped, 0).WithProviderCode(pe.Code)
	}
	// Connection refused or reset, timeouts, a closed pool: transient.
	return sdk.Retryable(wrapped, 0)
}

// redactedError keeps the cause for errors.Is/As but never prints the
// password, which some driver messages could echo.
type redactedError struct {
	op, secret string
	err        error
}

func (e redactedError) Error() string {
	msg := e.op + ": " + e.err.Error()
	if e.secret != "" {
		msg = strings.ReplaceAll(msg, e.secret, "xxxxx")
	}
	return msg
}

func (e redactedError) Unwrap() error { return e.err }

type pgQuerier struct{ tx pgx.Tx }

func (q pgQuerier) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := q.tx.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

func (q pgQuerier) query(ctx context.Context, sql string, args ...any) (rowsIter, error) {
	return q.tx.Query(ctx, sql, args...)
}

func (q pgQuerier) queryRow(ctx context.Context, sql string, args ...any) rowScanner {
	return pgRow{q.tx.QueryRow(ctx, sql, args...)}
}

type pgRow struct{ r pgx.Row }

func (r pgRow) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return errNoRows
	}
	return err
}
