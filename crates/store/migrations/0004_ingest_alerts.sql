-- Segment-style ingest (`POST /v1/identify|track|batch`): one row per
-- accepted messageId, written in the same transaction as what the message
-- stored, so a replayed message is acknowledged and changes nothing.
CREATE TABLE ingest_messages (
    message_id TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    person_id BIGINT REFERENCES people (id),
    received_at BIGINT NOT NULL
);

-- Chat alerts (SLA breach, goal hit, stalled lead) and their delivery log.
-- delivery_key names the event (kind, subject, instant or period), so every
-- instance of `tandem serve` that finds the same event inserts the same row
-- once; claimed_until is the lease of the instance posting it.
CREATE TABLE alerts (
    id {{id}},
    delivery_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    team TEXT NOT NULL,
    subject TEXT NOT NULL,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX alerts_due ON alerts (status, next_attempt_at);
