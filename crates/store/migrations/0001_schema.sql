-- tandem schema, shared by SQLite and PostgreSQL.
-- {{id}} is the auto-increment primary key of the backend.
-- Times are UTC epoch milliseconds (BIGINT); money is minor units (BIGINT)
-- with an ISO currency; flags are 0/1; custom fields are JSON text.

CREATE TABLE accounts (
    id {{id}},
    external_id TEXT NOT NULL UNIQUE,
    name TEXT,
    domain TEXT,
    industry TEXT,
    employees BIGINT,
    annual_revenue BIGINT,
    segment TEXT,
    target BIGINT NOT NULL DEFAULT 0,
    tier BIGINT,
    owner TEXT,
    custom TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE people (
    id {{id}},
    external_id TEXT NOT NULL UNIQUE,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    title TEXT,
    account_id BIGINT REFERENCES accounts (id),
    persona TEXT,
    segment TEXT,
    country TEXT,
    source TEXT,
    owner TEXT,
    created_at BIGINT NOT NULL,
    custom TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX people_account ON people (account_id);

CREATE TABLE campaigns (
    id {{id}},
    external_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    channel TEXT,
    starts_at BIGINT,
    ends_at BIGINT,
    budget BIGINT,
    cost BIGINT,
    persona TEXT,
    segment TEXT,
    owner TEXT
);

CREATE TABLE touches (
    id {{id}},
    external_id TEXT UNIQUE,
    person_id BIGINT NOT NULL REFERENCES people (id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT,
    campaign TEXT,
    source TEXT,
    medium TEXT,
    cost BIGINT
);
CREATE INDEX touches_person_at ON touches (person_id, at);

CREATE TABLE activities (
    id {{id}},
    external_id TEXT UNIQUE,
    person_id BIGINT NOT NULL REFERENCES people (id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT,
    outcome TEXT
);
CREATE INDEX activities_person_at ON activities (person_id, at);

CREATE TABLE deals (
    id {{id}},
    external_id TEXT NOT NULL UNIQUE,
    account_id BIGINT REFERENCES accounts (id),
    person_id BIGINT REFERENCES people (id),
    name TEXT,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    closed_at BIGINT,
    status TEXT NOT NULL,
    lost_reason TEXT,
    owner TEXT,
    kind TEXT NOT NULL DEFAULT 'new'
);
CREATE INDEX deals_person ON deals (person_id);
CREATE INDEX deals_account ON deals (account_id);

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE transitions (
    seq {{id}},
    subject_kind TEXT NOT NULL,
    subject_id BIGINT NOT NULL,
    from_stage TEXT,
    to_stage TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT,
    note TEXT,
    cycle BIGINT NOT NULL,
    skipped BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX transitions_subject ON transitions (subject_kind, subject_id, at, seq);
CREATE INDEX transitions_stage_at ON transitions (to_stage, at);
