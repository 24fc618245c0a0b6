-- Version 2: the roster becomes one row per identity, surfaces carry their
-- delivery state (the card outbox), room creation becomes a job, and
-- delivery marks are written with the change they apply. Existing data is
-- carried over; every write after this one is incremental.

ALTER TABLE calls ADD COLUMN guests BOOLEAN NOT NULL DEFAULT false;

-- call_roster replaces call_participants and calls.seqs. A row exists while
-- the identity is present or has a roster mark (seq != 0). seq_present is
-- the mark's Present, which can differ from present: ending a call empties
-- the roster but keeps the marks, and a seq-less leave keeps the last mark.
CREATE TABLE call_roster (
    call_id     TEXT        NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    identity    TEXT        NOT NULL,
    name        TEXT        NOT NULL,
    present     BOOLEAN     NOT NULL,
    seq         BIGINT      NOT NULL,
    seq_present BOOLEAN     NOT NULL,
    -- NULL unless present.
    joined_at   TIMESTAMPTZ,
    PRIMARY KEY (call_id, identity)
);

INSERT INTO call_roster (call_id, identity, name, present, seq, seq_present, joined_at)
    SELECT call_id, identity, name, true, 0, false, joined_at FROM call_participants
    ON CONFLICT (call_id, identity) DO NOTHING;

INSERT INTO call_roster (call_id, identity, name, present, seq, seq_present, joined_at)
    SELECT c.id, j.key, '', false, (j.value->>'seq')::bigint, coalesce((j.value->>'present')::boolean, false), NULL
    FROM calls AS c, jsonb_each(c.seqs) AS j
    WHERE coalesce((j.value->>'seq')::bigint, 0) <> 0
    ON CONFLICT (call_id, identity) DO UPDATE SET seq = excluded.seq, seq_present = excluded.seq_present;

DROP TABLE call_participants;
ALTER TABLE calls DROP COLUMN seqs;

-- Surfaces are keyed by what they are, not by position; pos keeps the order
-- they were added in. Wanted > Shown means the card owes an update.
CREATE TABLE call_surfaces_v2 (
    call_id         TEXT        NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    chat            TEXT        NOT NULL,
    workspace       TEXT        NOT NULL,
    channel         TEXT        NOT NULL,
    pos             INTEGER     NOT NULL,
    wanted_version  BIGINT      NOT NULL,
    shown_version   BIGINT      NOT NULL,
    message_ref     TEXT        NOT NULL,
    attempts        INTEGER     NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT        NOT NULL,
    dead_at         TIMESTAMPTZ,
    lease_owner     TEXT        NOT NULL,
    lease_until     TIMESTAMPTZ,
    PRIMARY KEY (call_id, chat, workspace, channel)
);

-- Existing cards show the call as it is. "api" surfaces no longer exist.
INSERT INTO call_surfaces_v2 (call_id, chat, workspace, channel, pos, wanted_version, shown_version,
        message_ref, attempts, next_attempt_at, last_error, dead_at, lease_owner, lease_until)
    SELECT s.call_id, s.platform, s.workspace, s.channel, s.pos, c.version, c.version,
        s.message_id, 0, c.updated_at, '', NULL, '', NULL
    FROM call_surfaces AS s JOIN calls AS c ON c.id = s.call_id
    WHERE s.platform <> 'api'
    ORDER BY s.call_id, s.pos
    ON CONFLICT DO NOTHING;

DROP TABLE call_surfaces;
ALTER TABLE call_surfaces_v2 RENAME TO call_surfaces;
ALTER INDEX call_surfaces_v2_pkey RENAME TO call_surfaces_pkey;

-- The claim query reads only surfaces owing an update, soonest first.
CREATE INDEX call_surfaces_due ON call_surfaces (next_attempt_at)
    WHERE shown_version < wanted_version AND dead_at IS NULL;

-- One job per call whose provider room is still to be created.
CREATE TABLE room_jobs (
    call_id         TEXT        PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    attempts        INTEGER     NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT        NOT NULL,
    lease_owner     TEXT        NOT NULL,
    lease_until     TIMESTAMPTZ
);

CREATE INDEX room_jobs_due ON room_jobs (next_attempt_at);

INSERT INTO room_jobs (call_id, attempts, created_at, next_attempt_at, last_error, lease_owner, lease_until)
    SELECT id, 0, updated_at, updated_at, '', '', NULL FROM calls
    WHERE room_name = '' AND state NOT IN ('rejected', 'missed', 'ended', 'failed');

-- FindBySurface: the live call shown in a conversation ("/call end").
CREATE INDEX call_surfaces_place ON call_surfaces (chat, workspace, channel);
