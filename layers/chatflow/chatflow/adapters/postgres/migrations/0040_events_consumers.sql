-- EVENTS: idempotent consumers, in-app notifications, analytics.

-- At-least-once delivery (EventBridge retries, DLQ redrive, archive replay) is made
-- exactly-once in effect: a consumer inserts (consumer, event_id) in the SAME transaction as its
-- effect; a second delivery finds the row and does nothing.
CREATE TABLE processed_events (
    consumer      text NOT NULL,
    event_id      uuid NOT NULL,
    detail_type   text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_age_idx ON processed_events (processed_at);

-- Unread counters per (user, room) for members who were offline when a message arrived.
CREATE TABLE notification_counters (
    user_id           uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    room_id           uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    unread_messages   integer NOT NULL DEFAULT 0 CHECK (unread_messages >= 0),
    unread_mentions   integer NOT NULL DEFAULT 0 CHECK (unread_mentions >= 0),
    last_seq          bigint NOT NULL DEFAULT 0,
    last_message_at   timestamptz,
    last_sender_handle text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX notification_counters_unread_idx ON notification_counters (user_id)
    WHERE unread_messages > 0 OR unread_mentions > 0;

-- Individual notifications worth listing: mentions, "added you to a room", direct messages.
CREATE TABLE notifications (
    id               bigserial PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('mention', 'direct_message', 'added_to_room')),
    room_id          uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    message_id       uuid,
    seq              bigint,
    actor_id         uuid,
    actor_handle     text,
    preview          text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    read_at          timestamptz,
    -- Hand-off to the out-of-app channel (SNS): pending until delivered or skipped.
    delivery_status  text NOT NULL DEFAULT 'pending'
                     CHECK (delivery_status IN ('pending', 'delivered', 'skipped')),
    delivery_attempts integer NOT NULL DEFAULT 0,
    delivery_error   text,
    UNIQUE (user_id, event_id, kind)
);
CREATE INDEX notifications_user_idx ON notifications (user_id, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id, room_id) WHERE read_at IS NULL;
CREATE INDEX notifications_undelivered_idx ON notifications (event_id) WHERE delivery_status = 'pending';

-- Analytics. No foreign keys: figures outlive deleted rooms and users.
CREATE TABLE analytics_room_hourly (
    room_id   uuid NOT NULL,
    hour      timestamptz NOT NULL,
    messages  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, hour)
);
CREATE INDEX analytics_room_hourly_hour_idx ON analytics_room_hourly (hour);

CREATE TABLE analytics_daily_active_users (
    day      date NOT NULL,
    user_id  uuid NOT NULL,
    PRIMARY KEY (day, user_id)
);

-- Daily counters per metric (connections_opened, messages_created, ...), UTC days.
CREATE TABLE analytics_daily_counters (
    day     date NOT NULL,
    metric  text NOT NULL,
    value   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, metric)
);
