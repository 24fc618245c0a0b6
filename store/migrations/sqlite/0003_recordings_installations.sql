-- Version 3: recordings and transcripts providers report for a call (a short
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
