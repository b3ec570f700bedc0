-- The SQL CRM's schema, SQLite flavour: the same tables and constraints as
-- migrations/postgres/0001_init.sql. JSON is TEXT, booleans are 0/1, and
-- TIMESTAMP columns hold the text the driver writes and parses back.

CREATE TABLE contacts (
	id TEXT PRIMARY KEY NOT NULL,
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
	decision_maker BOOLEAN CHECK (decision_maker IN (0, 1)), -- NULL: not known yet
	action TEXT NOT NULL DEFAULT '',
	confidence REAL NOT NULL DEFAULT 0,
	estimate INTEGER NOT NULL DEFAULT 0,
	extra TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(extra)),
	tags TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
	properties TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(properties)),
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL
);
CREATE INDEX contacts_owner ON contacts (owner_id) WHERE owner_id <> '';

CREATE TABLE identities (
	channel TEXT NOT NULL CHECK (channel <> '' AND channel = lower(channel)),
	user_id TEXT NOT NULL CHECK (user_id <> ''),
	contact_id TEXT NOT NULL REFERENCES contacts (id),
	display_name TEXT NOT NULL DEFAULT '',
	instance TEXT NOT NULL DEFAULT '',
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL,
	PRIMARY KEY (channel, user_id),
	CONSTRAINT identities_phone_e164 CHECK (channel <> 'phone' OR (
		user_id GLOB '+[1-9]*' AND NOT substr(user_id, 2) GLOB '*[^0-9]*' AND length(user_id) BETWEEN 9 AND 16)),
	CONSTRAINT identities_email_lower CHECK (channel <> 'email' OR (user_id = lower(user_id) AND user_id LIKE '_%@_%'))
) WITHOUT ROWID;
CREATE INDEX identities_contact ON identities (contact_id);

CREATE TABLE contact_merges (
	old_id TEXT PRIMARY KEY NOT NULL,
	into_id TEXT NOT NULL REFERENCES contacts (id),
	merged_at TIMESTAMP NOT NULL
);
CREATE INDEX contact_merges_into ON contact_merges (into_id);

CREATE TABLE deals (
	id TEXT PRIMARY KEY NOT NULL,
	contact_id TEXT NOT NULL REFERENCES contacts (id),
	name TEXT NOT NULL DEFAULT '',
	pipeline TEXT NOT NULL CHECK (pipeline <> ''),
	stage TEXT NOT NULL CHECK (stage <> ''),
	is_open BOOLEAN NOT NULL CHECK (is_open IN (0, 1)),
	amount REAL NOT NULL DEFAULT 0,
	currency TEXT NOT NULL DEFAULT '',
	owner_id TEXT NOT NULL DEFAULT '',
	properties TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(properties)),
	merged_into TEXT REFERENCES deals (id),
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX deals_one_open ON deals (contact_id, pipeline) WHERE is_open;
CREATE INDEX deals_contact ON deals (contact_id);

CREATE TABLE notes (
	id TEXT PRIMARY KEY NOT NULL,
	contact_id TEXT NOT NULL REFERENCES contacts (id),
	deal_id TEXT REFERENCES deals (id),
	body TEXT NOT NULL CHECK (body <> ''),
	author TEXT NOT NULL DEFAULT '',
	created_at TIMESTAMP NOT NULL
);
CREATE INDEX notes_contact ON notes (contact_id, created_at);
CREATE INDEX notes_deal ON notes (deal_id) WHERE deal_id IS NOT NULL;

CREATE TABLE tasks (
	id TEXT PRIMARY KEY NOT NULL,
	contact_id TEXT NOT NULL REFERENCES contacts (id),
	deal_id TEXT REFERENCES deals (id),
	owner_id TEXT NOT NULL DEFAULT '',
	title TEXT NOT NULL CHECK (title <> ''),
	body TEXT NOT NULL DEFAULT '',
	type TEXT NOT NULL DEFAULT '',
	priority TEXT NOT NULL DEFAULT '',
	due_at TIMESTAMP,
	status TEXT NOT NULL CHECK (status <> ''),
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL
);
CREATE INDEX tasks_contact ON tasks (contact_id);
CREATE INDEX tasks_owner_due ON tasks (owner_id, due_at);
CREATE INDEX tasks_deal ON tasks (deal_id) WHERE deal_id IS NOT NULL;

CREATE TABLE idempotency (
	kind TEXT NOT NULL CHECK (kind IN ('contact', 'note', 'deal', 'task')),
	idem_key TEXT NOT NULL CHECK (idem_key <> ''),
	record_id TEXT NOT NULL,
	created BOOLEAN NOT NULL DEFAULT 0 CHECK (created IN (0, 1)),
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (kind, idem_key)
) WITHOUT ROWID;
CREATE INDEX idempotency_record ON idempotency (kind, record_id);
