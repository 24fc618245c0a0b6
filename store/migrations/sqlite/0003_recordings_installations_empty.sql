-- Version 3: when a call's room became empty (or held one person), for
-- calls.end_when_empty; recordings and transcripts providers report for a call (a short
-- JSON list, read and written with the call), and chat platform
-- installations (one per workspace: a bot token sealed by the adapter).

ALTER TABLE calls ADD COLUMN recordings TEXT NOT NULL DEFAULT '[]';

CREATE TABLE installations (
    chat       TEXT    NOT NULL,
    workspace  TEXT    NOT NULL,
    secret     BLOB    NOT NULL,
    data       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (chat, workspace)
) STRICT;

ALTER TABLE calls ADD COLUMN empty_since INTEGER;
CREATE INDEX calls_empty ON calls (state, empty_since);
CREATE INDEX calls_updated ON calls (state, updated_at);
