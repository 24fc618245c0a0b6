-- A chat command's call used to take an id derived from a hash (of the
-- platform's delivery id, or of the conversation and the call before), so
-- that a repeated or concurrent command found one call. Every table about
-- a call is keyed by its id, so each such call landed on a random page of
-- a dozen indexes. The hash is now the call's create key, in an index of
-- its own; the id is a new, time-ordered one, whose entries append. The
-- key is never updated, so it leaves the call row's updates heap-only.
ALTER TABLE calls ADD COLUMN create_key text;
CREATE UNIQUE INDEX calls_create_key ON calls (create_key) WHERE create_key IS NOT NULL;
