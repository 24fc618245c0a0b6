-- Version 7: each member's answer to a ring or an invitation ('' until
-- they answer, 'accepted' or 'declined'). It is read and written on the
-- locked call, so first-accept-wins and a group ring's per-member
-- declines are decided inside the transaction that records them.

ALTER TABLE call_members ADD COLUMN answer TEXT NOT NULL DEFAULT '';

-- Members who accepted before this version: their accepted events say so.
UPDATE call_members SET answer = 'accepted'
WHERE EXISTS (SELECT 1 FROM call_events AS e
              WHERE e.call_id = call_members.call_id AND e.kind = 'accepted' AND e.actor = call_members.user_id);
