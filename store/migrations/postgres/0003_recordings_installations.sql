-- Version 3: recordings and transcripts providers report for a call (a short
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
