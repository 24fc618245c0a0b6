-- Version 4: what the WebSocket hub needs. Reading the event log of a
-- user's calls (resume after a reconnect) goes through call_members by
-- user; the hub reads the global log by seq (its primary key).

CREATE INDEX call_members_user ON call_members (user_id, call_id);

-- Users the gateway knows from their connections (a member of any call is
-- known too): their display name and picture, shown to the people they ring.
CREATE TABLE ws_users (
    user_id    TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    image_url  TEXT    NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL
);

-- Who has a socket open on which replica: a row is written when a user's
-- first socket on a replica opens and deleted when the last one closes.
-- It counts only while its replica is alive (ws_replicas), so a replica
-- that dies takes its users' presence with it without a write per user.
CREATE TABLE ws_presence (
    user_id    TEXT    NOT NULL,
    replica    TEXT    NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, replica)
);

-- Each replica's heartbeat: alive until expires_at.
CREATE TABLE ws_replicas (
    replica    TEXT    PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);

-- One row per event sent to the outbound event webhooks: the replica that
-- inserts it sends it, so several replicas send each event once.
CREATE TABLE ws_event_claims (
    seq        BIGINT PRIMARY KEY,
    claimed_at TIMESTAMPTZ NOT NULL
);
