-- Core chat model: users, rooms, memberships, messages, refresh tokens, transactional outbox.

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    handle         text NOT NULL,
    display_name   text NOT NULL,
    password_hash  text NOT NULL,
    role           text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'banned', 'deleted')),
    -- Tokens issued before this instant are void (ban, delete, "log out everywhere").
    tokens_valid_after timestamptz NOT NULL DEFAULT to_timestamp(0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Handles are case-insensitively unique.
CREATE UNIQUE INDEX users_handle_lower_key ON users (lower(handle));

CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- A rotation family: reuse of a rotated token revokes the whole family.
    family_id    uuid NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,
    expires_at   timestamptz NOT NULL,
    rotated_at   timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE rooms (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('public', 'private', 'dm')),
    name         text,
    topic        text NOT NULL DEFAULT '',
    created_by   uuid NOT NULL REFERENCES users(id),
    -- The last assigned message sequence; incremented in the sending transaction (row lock),
    -- which is what makes sequences gap-free: a rolled-back send rolls back the increment too.
    last_seq     bigint NOT NULL DEFAULT 0,
    -- For DMs: the two members, ordered, so "create or get" is one unique lookup.
    dm_user_low  uuid REFERENCES users(id),
    dm_user_high uuid REFERENCES users(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'dm') = (dm_user_low IS NOT NULL AND dm_user_high IS NOT NULL)),
    CHECK (kind = 'dm' OR name IS NOT NULL),
    CHECK (dm_user_low IS NULL OR dm_user_low < dm_user_high)
);
CREATE UNIQUE INDEX rooms_dm_pair_key ON rooms (dm_user_low, dm_user_high) WHERE kind = 'dm';
CREATE UNIQUE INDEX rooms_channel_name_key ON rooms (lower(name)) WHERE kind <> 'dm';

CREATE TABLE memberships (
    room_id        uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role           text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    last_read_seq  bigint NOT NULL DEFAULT 0,
    joined_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE messages (
    room_id            uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq                bigint NOT NULL,
    id                 uuid NOT NULL UNIQUE,
    sender_id          uuid NOT NULL REFERENCES users(id),
    client_message_id  text NOT NULL,
    body               text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    edited_at          timestamptz,
    deleted_at         timestamptz,
    PRIMARY KEY (room_id, seq),
    -- Idempotent send: a client message id is unique per sender.
    UNIQUE (sender_id, client_message_id)
);

-- Transactional outbox: written in the same transaction as the change it describes.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    detail_type  text NOT NULL,
    source       text NOT NULL,
    detail       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (next_attempt_at, id) WHERE published_at IS NULL;
