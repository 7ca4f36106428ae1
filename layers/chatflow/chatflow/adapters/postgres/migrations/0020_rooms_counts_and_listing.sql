-- Rooms: a maintained member count (lists show it without counting memberships per row) and
-- the indexes behind keyset-paginated room lists.

ALTER TABLE rooms ADD COLUMN member_count integer NOT NULL DEFAULT 0 CHECK (member_count >= 0);

UPDATE rooms r SET member_count = (SELECT count(*) FROM memberships m WHERE m.room_id = r.id);

-- A trigger rather than application code: memberships also disappear through ON DELETE CASCADE
-- (users), which no application path sees. The room row is already locked by every membership
-- change of the application (rooms repository), so this adds no new lock.
CREATE FUNCTION rooms_member_count_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE rooms SET member_count = member_count + 1 WHERE id = NEW.room_id;
    ELSE
        UPDATE rooms SET member_count = member_count - 1 WHERE id = OLD.room_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER memberships_count_sync
    AFTER INSERT OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION rooms_member_count_sync();

-- "My rooms": keyset by (joined_at, room_id) per user.
CREATE INDEX memberships_user_joined_idx ON memberships (user_id, joined_at, room_id);
-- "Public rooms": keyset by (lower(name), id).
CREATE INDEX rooms_public_name_idx ON rooms (lower(name), id) WHERE kind = 'public';
-- Owner hand-over picks the oldest member of a room.
CREATE INDEX memberships_room_joined_idx ON memberships (room_id, joined_at, user_id);
