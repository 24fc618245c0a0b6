-- Retention prunes call events and webhook delivery marks in the order
-- they were logged (call_events.seq, deliveries' rowid), which is the
-- order of their times: the oldest rows are at the front of each table.
-- The indexes on their times served only that pruning, and cost a b-tree
-- write on every provider webhook. PostgreSQL keeps them: its tables have
-- no insertion order to walk.
DROP INDEX IF EXISTS call_events_at;
DROP INDEX IF EXISTS deliveries_seen;
