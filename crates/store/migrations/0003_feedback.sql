-- Feedback both ways (DESIGN §2, §7): successes, obstacles, lead-quality
-- notes, content requests and ideas, with their comments. Links are the
-- external ids of the person, account, deal or campaign an item is about.
CREATE TABLE feedback (
    id {{id}},
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    author TEXT NOT NULL,
    team TEXT NOT NULL,
    person_ref TEXT,
    account_ref TEXT,
    deal_ref TEXT,
    campaign_ref TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX feedback_kind_status ON feedback (kind, status);
CREATE INDEX feedback_created ON feedback (created_at);

CREATE TABLE feedback_comments (
    id {{id}},
    item_id BIGINT NOT NULL REFERENCES feedback (id),
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX feedback_comments_item ON feedback_comments (item_id, id);
