-- Channel names were unique across public AND private rooms (rooms_channel_name_key), so
-- `POST /rooms` answering 409 told anyone that a private room of that name existed. Scope them
-- so a refusal reveals nothing private:
--   public rooms: unique among public rooms (their names are listed to everyone anyway);
--   private rooms: unique among the private rooms of the same creator (who knows them all).
-- Existing rows already satisfy both (the old index was stricter than either).
CREATE UNIQUE INDEX rooms_public_name_key ON rooms (lower(name)) WHERE kind = 'public';
CREATE UNIQUE INDEX rooms_private_name_key ON rooms (created_by, lower(name)) WHERE kind = 'private';
DROP INDEX rooms_channel_name_key;
