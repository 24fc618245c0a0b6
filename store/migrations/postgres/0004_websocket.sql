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

-- Who has a socket open on which replica, refreshed while it is open; a
-- row past expires_at is a replica that died.
CREATE TABLE ws_presence (
    user_id    TEXT    NOT NULL,
    replica    TEXT    NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, replica)
);

-- One row per event sent to the outbound event webhooks: the replica that
-- inserts it sends it, so several replicas send each event once.
CREATE TABLE ws_event_claims (
    seq        BIGINT PRIMARY KEY,
    claimed_at TIMESTAMPTZ NOT NULL
);
