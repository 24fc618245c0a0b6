-- Every provider event rewrites its call's updated_at. With an index on
-- it, no such write could be a heap-only (HOT) update: each one added an
-- entry to every index of calls. Only the reconciler's search for quiet
-- live calls used it; it now finds live calls through calls_state_changed
-- (state, ...) and sorts them: a cost that grows with the calls in
-- progress, not with history, once per reconciler pass. Free room on each
-- heap page (fillfactor 80, for pages written from now on) lets the new
-- version of a busy call's row stay on its page, which HOT needs.
DROP INDEX IF EXISTS calls_updated;
ALTER TABLE calls SET (fillfactor = 80);
