-- Calls and everything stored with them. Times are INTEGER microseconds since
-- the Unix epoch (UTC): exact, sortable and cheap to compare in indexes.
-- JSON columns hold small value objects that are always read and written
-- whole with their call.

CREATE TABLE calls (
    id               TEXT    PRIMARY KEY,
    type             TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    provider         TEXT    NOT NULL,
    title            TEXT    NOT NULL,
    created_by       TEXT    NOT NULL,
    -- room_name copies room.name so FindByRoom can use an index.
    room_name        TEXT    NOT NULL,
    room             TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    state_changed_at INTEGER NOT NULL,
    ended_at         INTEGER,
    end_reason       TEXT    NOT NULL,
    seqs             TEXT    NOT NULL,
    version          INTEGER NOT NULL
) STRICT;

CREATE INDEX calls_provider_room ON calls (provider, room_name, created_at);
CREATE INDEX calls_state_changed ON calls (state, state_changed_at);

-- Children keep their order through pos, the index in the call's slice.
CREATE TABLE call_members (
    call_id TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    pos     INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    role    TEXT    NOT NULL,
    PRIMARY KEY (call_id, pos)
) STRICT;

CREATE TABLE call_participants (
    call_id   TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    pos       INTEGER NOT NULL,
    identity  TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (call_id, pos)
) STRICT;

CREATE TABLE call_surfaces (
    call_id    TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    pos        INTEGER NOT NULL,
    platform   TEXT    NOT NULL,
    workspace  TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    PRIMARY KEY (call_id, pos)
) STRICT;

-- AUTOINCREMENT so a sequence number is never reused, even after the newest
-- event is deleted: clients resume from the last seq they saw.
CREATE TABLE call_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id  TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    kind     TEXT    NOT NULL,
    state    TEXT    NOT NULL,
    actor    TEXT    NOT NULL,
    identity TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    at       INTEGER NOT NULL
) STRICT;

CREATE INDEX call_events_call ON call_events (call_id, seq);

CREATE TABLE deliveries (
    source      TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (source, delivery_id)
) STRICT;
