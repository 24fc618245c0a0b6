-- Version 5: people who asked not to be rung by name (`/call ring off`),
-- per configured chat and platform user id.

CREATE TABLE ring_optouts (
    chat       TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (chat, user_id)
) STRICT;
