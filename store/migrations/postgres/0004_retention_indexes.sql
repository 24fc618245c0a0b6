-- Retention (retention.events_after, retention.marks_after) deletes the
-- oldest event rows and delivery marks in small batches; these indexes let
-- it find them without scanning the tables.
CREATE INDEX call_events_at ON call_events (at);
CREATE INDEX deliveries_seen ON deliveries (seen_at);
