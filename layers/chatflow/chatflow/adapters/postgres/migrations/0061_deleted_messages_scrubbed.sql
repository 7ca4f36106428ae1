-- Deleted means deleted: a deleted message keeps its place in the room (id, seq, sender,
-- created_at, deleted_at: the tombstone clients render) but not its text. Until now a soft delete
-- only set deleted_at and readers hid the body; the text stayed in the table, its backups and the
-- notification previews. From now on the delete nulls messages.body (chatflow/adapters/postgres/
-- messages_repo.py) and this migration scrubs what earlier deletes left behind.
ALTER TABLE messages ALTER COLUMN body DROP NOT NULL;

UPDATE messages SET body = NULL WHERE deleted_at IS NOT NULL AND body IS NOT NULL;

-- The previews of notifications about those messages (mentions, direct messages).
UPDATE notifications n SET preview = ''
  FROM messages m
 WHERE m.id = n.message_id AND m.deleted_at IS NOT NULL AND n.preview <> '';

-- The invariant, enforced: a body exactly while not deleted. NOT VALID + VALIDATE: the check of
-- existing rows takes only a SHARE UPDATE EXCLUSIVE lock (writes keep flowing meanwhile).
ALTER TABLE messages ADD CONSTRAINT messages_body_iff_not_deleted
    CHECK ((deleted_at IS NULL) = (body IS NOT NULL)) NOT VALID;
ALTER TABLE messages VALIDATE CONSTRAINT messages_body_iff_not_deleted;
