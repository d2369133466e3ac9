-- The scheduled weekly report (`tandem serve`): one row per report week,
-- keyed by its delivery key (`weekly_report:2026-W47`), so that of several
-- instances sharing one database only the one that inserts (or, after a
-- failure or an expired lease, re-claims) the row sends the e-mail. Kept
-- apart from `alerts`, whose evaluator posts every due row it finds.
CREATE TABLE report_sends (
    delivery_key TEXT NOT NULL PRIMARY KEY,
    week TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    claimed_until BIGINT,
    next_attempt_at BIGINT,
    last_error TEXT,
    recipients BIGINT,
    subject TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
