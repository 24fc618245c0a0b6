-- Version 9: two more things the WebSocket hub keeps.
--
-- Its outbound requests (the push hook for a user rung while offline, the
-- call event webhooks), kept until delivered so that a failure is retried
-- with backoff across restarts and replicas.
-- A row is written in the transaction that claims the event (webhooks) or
-- when a user is rung while offline everywhere (push); a worker leases due
-- rows, posts them, and deletes each once its receiver answers 2xx. The signing
-- secret is not stored: it is looked up by url in the configuration.
CREATE TABLE ws_deliveries (
    id              TEXT    NOT NULL, -- the idempotency key, sent on every attempt
    url             TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ,
    last_error      TEXT    NOT NULL DEFAULT '',
    dead_at         TIMESTAMPTZ,
    -- A push is pointless once its ring is over: it is dropped, not sent,
    -- after expires_at. NULL: no expiry (event webhooks).
    expires_at      TIMESTAMPTZ,
    PRIMARY KEY (id, url)
);

-- What the worker claims: live rows by due time.
CREATE INDEX ws_deliveries_due ON ws_deliveries (next_attempt_at) WHERE dead_at IS NULL;

-- Whom each user blocked: a blocked user's rings and invitations to them
-- are refused with 10011, as if they were offline.
CREATE TABLE ws_blocks (
    user_id    TEXT    NOT NULL,
    blocked_id TEXT    NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
