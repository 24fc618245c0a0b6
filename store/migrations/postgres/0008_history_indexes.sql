-- Version 8: indexes so that nothing on a request path or a timer reads
-- the history whole (a store of 1,000,000 calls answers like one of 1,000;
-- store/plan_test.go checks every such statement's plan).

-- The call history, newest first (GET /v1/calls): a page is a walk down
-- this index from the cursor.
CREATE INDEX calls_created ON calls (created_at, id);
-- The history of one user: the calls they created (those they were a
-- member of come through call_members_user).
CREATE INDEX calls_created_by ON calls (created_by, created_at);
-- Dead card deliveries (metrics, admin view), which call_surfaces_due
-- does not hold.
CREATE INDEX call_surfaces_dead ON call_surfaces (dead_at) WHERE dead_at IS NOT NULL;
-- The WebSocket hub forgets event claims older than a day.
CREATE INDEX ws_event_claims_claimed ON ws_event_claims (claimed_at);
