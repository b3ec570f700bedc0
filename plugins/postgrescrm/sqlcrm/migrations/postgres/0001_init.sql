-- The SQL CRM's schema. Times are written by the plugin (UTC, microseconds)
-- so PostgreSQL and SQLite hold the same values.

-- One row per person. Lead facts are columns so they can be queried.
CREATE TABLE contacts (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL DEFAULT '',
	phone TEXT NOT NULL DEFAULT '',
	email TEXT NOT NULL DEFAULT '',
	owner_id TEXT NOT NULL DEFAULT '',
	score INTEGER NOT NULL DEFAULT 0,
	tier TEXT NOT NULL DEFAULT '',
	source_channel TEXT NOT NULL DEFAULT '',
	campaign TEXT NOT NULL DEFAULT '',
	intent TEXT NOT NULL DEFAULT '',
	need TEXT NOT NULL DEFAULT '',
	budget TEXT NOT NULL DEFAULT '',
	timeline TEXT NOT NULL DEFAULT '',
	decision_maker BOOLEAN, -- NULL: not known yet
	action TEXT NOT NULL DEFAULT '',
	confidence DOUBLE PRECISION NOT NULL DEFAULT 0,
	estimate INTEGER NOT NULL DEFAULT 0,
	extra JSONB NOT NULL DEFAULT '{}',
	tags JSONB NOT NULL DEFAULT '[]',
	properties JSONB NOT NULL DEFAULT '{}',
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX contacts_owner ON contacts (owner_id) WHERE owner_id <> '';

-- Every way to recognise a person, one row each: a channel user id, or a
-- phone (channel 'phone', E.164) or an email (channel 'email', lower case).
-- The primary key makes each of them belong to at most one contact.
CREATE TABLE identities (
	channel TEXT NOT NULL CHECK (channel <> '' AND channel = lower(channel)),
	user_id TEXT NOT NULL CHECK (user_id <> ''),
	contact_id TEXT NOT NULL REFERENCES contacts (id),
	display_name TEXT NOT NULL DEFAULT '',
	instance TEXT NOT NULL DEFAULT '',
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (channel, user_id),
	CONSTRAINT identities_phone_e164 CHECK (channel <> 'phone' OR user_id ~ '^\+[1-9][0-9]{7,14}$'),
	CONSTRAINT identities_email_lower CHECK (channel <> 'email' OR (user_id = lower(user_id) AND user_id LIKE '_%@_%'))
);
CREATE INDEX identities_contact ON identities (contact_id);

-- Contacts merged into an older one, so old ids (and deep links) still resolve.
CREATE TABLE contact_merges (
	old_id TEXT PRIMARY KEY,
	into_id TEXT NOT NULL REFERENCES contacts (id),
	merged_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX contact_merges_into ON contact_merges (into_id);

CREATE TABLE deals (
	id TEXT PRIMARY KEY,
	contact_id TEXT NOT NULL REFERENCES contacts (id),
	name TEXT NOT NULL DEFAULT '',
	pipeline TEXT NOT NULL CHECK (pipeline <> ''),
	stage TEXT NOT NULL CHECK (stage <> ''),
	is_open BOOLEAN NOT NULL,
	amount DOUBLE PRECISION NOT NULL DEFAULT 0,
	currency TEXT NOT NULL DEFAULT '',
	owner_id TEXT NOT NULL DEFAULT '',
	properties JSONB NOT NULL DEFAULT '{}',
	-- set when a contact merge closed this deal in favour of another
	merged_into TEXT REFERENCES deals (id),
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL
);
-- At most one open deal per contact and pipeline: UpsertDeal moves its stage.
CREATE UNIQUE INDEX deals_one_open ON deals (contact_id, pipeline) WHERE is_open;
CREATE INDEX deals_contact ON deals (contact_id);

CREATE TABLE notes (
	id TEXT PRIMARY KEY,
	contact_id TEXT NOT NULL REFERENCES contacts (id),
	deal_id TEXT REFERENCES deals (id),
	body TEXT NOT NULL CHECK (body <> ''),
	author TEXT NOT NULL DEFAULT '',
	created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notes_contact ON notes (contact_id, created_at);
CREATE INDEX notes_deal ON notes (deal_id) WHERE deal_id IS NOT NULL;

CREATE TABLE tasks (
	id TEXT PRIMARY KEY,
	contact_id TEXT NOT NULL REFERENCES contacts (id),
	deal_id TEXT REFERENCES deals (id),
	owner_id TEXT NOT NULL DEFAULT '',
	title TEXT NOT NULL CHECK (title <> ''),
	body TEXT NOT NULL DEFAULT '',
	type TEXT NOT NULL DEFAULT '',
	priority TEXT NOT NULL DEFAULT '',
	due_at TIMESTAMPTZ,
	status TEXT NOT NULL CHECK (status <> ''),
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX tasks_contact ON tasks (contact_id);
CREATE INDEX tasks_owner_due ON tasks (owner_id, due_at);
CREATE INDEX tasks_deal ON tasks (deal_id) WHERE deal_id IS NOT NULL;

-- The hub's idempotency keys: a retried call finds the record it made.
CREATE TABLE idempotency (
	kind TEXT NOT NULL CHECK (kind IN ('contact', 'note', 'deal', 'task')),
	idem_key TEXT NOT NULL CHECK (idem_key <> ''),
	record_id TEXT NOT NULL,
	created BOOLEAN NOT NULL DEFAULT FALSE, -- the first call created the record
	created_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (kind, idem_key)
);
CREATE INDEX idempotency_record ON idempotency (kind, record_id);
