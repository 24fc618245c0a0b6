-- Every provider event rewrites its call's updated_at, and an index on it
-- made each of those writes move the call's entry in that index (a page
-- written at a random place, and one at the end). Only the reconciler's
-- search for quiet live calls used it; it now finds live calls through
-- calls_state_changed (state, ...) and sorts them: a cost that grows with
-- the calls in progress, not with history, once per reconciler pass.
DROP INDEX IF EXISTS calls_updated;
