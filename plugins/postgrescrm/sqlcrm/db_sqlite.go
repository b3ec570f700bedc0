package sqlcrm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// sqliteDB is the zero-setup driver: an embedded SQLite file (pure Go).
//
// Concurrency: every write transaction starts with BEGIN IMMEDIATE, which
// takes the database's single write lock up front, so writers, in this
// process or another, run one at a time and a read-then-write never races.
// Within the process writers also queue on writeSlot, so they wait in Go
// instead of polling the file lock in SQLite's busy handler. WAL mode lets
// readers run alongside the writer.
type sqliteDB struct {
	db        *sql.DB
	writeSlot chan struct{}
}

// busyTimeoutMS bounds how long a writer waits for another process's write
// lock before the call fails as retryable.
const busyTimeoutMS = 10000

func openSQLite(ctx context.Context, c Config) (*sqliteDB, error) {
	if strings.ContainsAny(c.SQLitePath, "?#") {
		return nil, sdk.Invalid(errors.New("sqlite_path must not contain '?' or '#'"))
	}
	if dir := filepath.Dir(c.SQLitePath); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, sdk.Permanent(fmt.Errorf("sqlite: create directory: %w", err))
		}
	}
	// The file holds customer PII: create it readable by this user only.
	// SQLite gives its -wal and -shm files the database file's mode.
	f, err := os.OpenFile(c.SQLitePath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, sdk.Permanent(fmt.Errorf("sqlite: create database file: %w", err))
	}
	_ = f.Close()
	dsn := c.SQLitePath + "?" + strings.Join([]string{
		"_txlock=immediate", // BeginTx issues BEGIN IMMEDIATE; read-only ones a plain BEGIN
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS),
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(NORMAL)", // durable across a process crash; WAL keeps it consistent
		"_time_format=sqlite",
	}, "&")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, sdk.Permanent(fmt.Errorf("sqlite: open: %w", err))
	}
	db.SetMaxOpenConns(c.MaxConns)
	db.SetMaxIdleConns(c.MaxConns)
	s := &sqliteDB{db: db, writeSlot: make(chan struct{}, 1)}
	if err := s.useWAL(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// useWAL switches the file to write-ahead logging, once: the mode is a
// property of the file. Switching takes the file's exclusive lock, and when
// another process is switching at the same moment SQLite answers BUSY at
// once rather than waiting (waiting could deadlock), so this retries.
func (s *sqliteDB) useWAL(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		var mode string
		err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil {
			if !strings.EqualFold(mode, "wal") {
				return sdk.Permanent(fmt.Errorf("sqlite: journal mode is %q, WAL unavailable", mode))
			}
			return nil
		}
		var le *sqlite.Error
		if !errors.As(err, &le) || le.Code()&0xff != sqlite3.SQLITE_BUSY || attempt+1 >= maxTxAttempts*2 {
			return s.classify("sqlite: enable WAL", err)
		}
		if err := txBackoff(ctx, attempt); err != nil {
			return err
		}
	}
}

func (s *sqliteDB) dialect() *dialect { return sqliteDialect }

func (s *sqliteDB) ping(ctx context.Context) error {
	return s.classify("ping", s.db.PingContext(ctx))
}

func (s *sqliteDB) close() { _ = s.db.Close() }

func (s *sqliteDB) write(ctx context.Context, fn func(querier) error) error {
	select {
	case s.writeSlot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writeSlot }()
	return s.inTx(ctx, nil, fn)
}

func (s *sqliteDB) read(ctx context.Context, fn func(querier) error) error {
	return s.inTx(ctx, &sql.TxOptions{ReadOnly: true}, fn)
}

func (s *sqliteDB) inTx(ctx context.Context, opts *sql.TxOptions, fn func(querier) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(sqlQuerier{tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// lockKeys has nothing to do: BEGIN IMMEDIATE already excludes every other
// writer.
func (s *sqliteDB) lockKeys(context.Context, querier, []int64) error { return nil }

// migrate runs each migration in a BEGIN IMMEDIATE transaction: the file's
// write lock is the migration lock, across processes too.
func (s *sqliteDB) migrate(ctx context.Context, ms []migration) (int, error) {
	n, err := runMigrations(ctx, sqliteDialect, func(ctx context.Context, fn func(querier) error) error {
		return s.write(ctx, fn)
	}, ms)
	return n, s.classify("migrate", err)
}

func (s *sqliteDB) classify(op string, err error) error {
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
	wrapped := fmt.Errorf("%s: %w", op, err)
	var le *sqlite.Error
	if errors.As(err, &le) {
		code := fmt.Sprint(le.Code())
		switch le.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_PROTOCOL:
			return sdk.Retryable(wrapped, 0).WithProviderCode(code)
		case sqlite3.SQLITE_CONSTRAINT:
			if le.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || le.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
				return sdk.Conflict(wrapped).WithProviderCode(code)
			}
			return sdk.Invalid(wrapped).WithProviderCode(code)
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY,
			sqlite3.SQLITE_PERM, sqlite3.SQLITE_ERROR:
			return sdk.Permanent(wrapped).WithProviderCode(code)
		}
		return sdk.Retryable(wrapped, 0).WithProviderCode(code)
	}
	return sdk.Retryable(wrapped, 0)
}

type sqlQuerier struct{ tx *sql.Tx }

func (q sqlQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) query(ctx context.Context, query string, args ...any) (rowsIter, error) {
	rows, err := q.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q sqlQuerier) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	return sqlRow{q.tx.QueryRowContext(ctx, query, args...)}
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

type sqlRow struct{ r *sql.Row }

func (r sqlRow) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return errNoRows
	}
	return err
}
