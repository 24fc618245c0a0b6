-- Calls and everything stored with them. JSONB columns hold small value
-- objects that are always read and written whole with their call.

CREATE TABLE calls (
    id               TEXT        PRIMARY KEY,
    type             TEXT        NOT NULL,
    state            TEXT        NOT NULL,
    provider         TEXT        NOT NULL,
    title            TEXT        NOT NULL,
    created_by       TEXT        NOT NULL,
    -- room_name copies room->>'name' so FindByRoom can use a plain index.
    room_name        TEXT        NOT NULL,
    room             JSONB       NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    state_changed_at TIMESTAMPTZ NOT NULL,
    ended_at         TIMESTAMPTZ,
    end_reason       TEXT        NOT NULL,
    seqs             JSONB       NOT NULL,
    version          BIGINT      NOT NULL
);

CREATE INDEX calls_provider_room ON calls (provider, room_name, created_at);
CREATE INDEX calls_state_changed ON calls (state, state_changed_at);

-- Children keep their order through pos, the index in the call's slice.
CREATE TABLE call_members (
    call_id TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    pos     INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    role    TEXT    NOT NULL,
    PRIMARY KEY (call_id, pos)
);

CREATE TABLE call_participants (
    call_id   TEXT        NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    pos       INTEGER     NOT NULL,
    identity  TEXT        NOT NULL,
    name      TEXT        NOT NULL,
    joined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (call_id, pos)
);

CREATE TABLE call_surfaces (
    call_id    TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    pos        INTEGER NOT NULL,
    platform   TEXT    NOT NULL,
    workspace  TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    PRIMARY KEY (call_id, pos)
);

CREATE TABLE call_events (
    seq      BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id  TEXT        NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    kind     TEXT        NOT NULL,
    state    TEXT        NOT NULL,
    actor    TEXT        NOT NULL,
    identity TEXT        NOT NULL,
    reason   TEXT        NOT NULL,
    at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX call_events_call ON call_events (call_id, seq);

CREATE TABLE deliveries (
    source      TEXT        NOT NULL,
    delivery_id TEXT        NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, delivery_id)
);
