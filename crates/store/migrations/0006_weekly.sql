-- The weekly loop (DESIGN §7): the meeting's decisions log and the content
-- assets sales sends, with a usage log so the report can show what is used.
CREATE TABLE decisions (
    id {{id}},
    text TEXT NOT NULL,
    owner TEXT,
    due_at BIGINT,
    -- 1: an action item someone must do; 0: a decision to remember.
    action BIGINT NOT NULL DEFAULT 0,
    meeting TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX decisions_created ON decisions (created_at);

CREATE TABLE content_assets (
    id {{id}},
    external_id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    url TEXT,
    kind TEXT,
    persona TEXT,
    stage TEXT,
    created_at BIGINT NOT NULL
);

-- Append-only: one row each time sales sends an asset.
CREATE TABLE content_usage (
    id {{id}},
    asset_id BIGINT NOT NULL REFERENCES content_assets (id),
    person_id BIGINT REFERENCES people (id),
    used_by TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX content_usage_asset ON content_usage (asset_id, at);
