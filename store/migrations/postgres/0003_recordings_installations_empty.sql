-- Version 3: when a call's room became empty (or held one person), for
-- calls.end_when_empty; recordings and transcripts providers report for a call (a short
-- JSON list, read and written with the call), and chat platform
-- installations (one per workspace: a bot token sealed by the adapter).

ALTER TABLE calls ADD COLUMN recordings JSONB NOT NULL DEFAULT '[]';

CREATE TABLE installations (
    chat       TEXT        NOT NULL,
    workspace  TEXT        NOT NULL,
    secret     BYTEA       NOT NULL,
    data       JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (chat, workspace)
);

ALTER TABLE calls ADD COLUMN empty_since TIMESTAMPTZ;
CREATE INDEX calls_empty ON calls (state, empty_since);
CREATE INDEX calls_updated ON calls (state, updated_at);
