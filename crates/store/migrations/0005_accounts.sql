-- Target-account (ABM) lists: one row per account on the list, with its
-- tier and the marketer + seller who own it together. accounts.target and
-- accounts.tier mirror this table so criteria and grouping keep working.
CREATE TABLE account_targets (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id),
    tier BIGINT NOT NULL,
    marketer TEXT,
    seller TEXT,
    added_at BIGINT NOT NULL,
    added_by TEXT NOT NULL
);
CREATE INDEX account_targets_tier ON account_targets (tier);
