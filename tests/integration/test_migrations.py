from __future__ import annotations

import psycopg

from chatflow.adapters.postgres.migrate import available_migrations, migrate


def test_migrations_are_applied_once_and_recorded(database_url: str) -> None:
    # The session fixture already migrated; a second run applies nothing.
    assert migrate(database_url) == []
    with psycopg.connect(database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in available_migrations()]


def test_core_tables_exist(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    assert {"users", "rooms", "memberships", "messages", "refresh_tokens", "outbox"} <= tables


def test_0061_scrubs_the_text_of_messages_deleted_before_it(database_url: str) -> None:
    """Replays migration 0061 over rows as earlier soft deletes left them (deleted_at set, body
    kept, a notification preview quoting it), inside a transaction that is rolled back."""
    import uuid

    (scrub,) = [m for m in available_migrations() if m.version == 61]
    with psycopg.connect(database_url) as conn:  # one transaction, rolled back on exit
        conn.execute("ALTER TABLE messages DROP CONSTRAINT messages_body_iff_not_deleted")
        user, room = uuid.uuid4(), uuid.uuid4()
        gone, kept = uuid.uuid4(), uuid.uuid4()
        conn.execute(
            "INSERT INTO users (id, handle, display_name, password_hash) VALUES (%s, %s, 'x', '!')",
            (user, f"m61-{user.hex[:8]}"),
        )
        conn.execute(
            "INSERT INTO rooms (id, kind, name, created_by) VALUES (%s, 'public', %s, %s)",
            (room, f"m61-{room.hex[:8]}", user),
        )
        conn.execute(
            """INSERT INTO messages (room_id, seq, id, sender_id, client_message_id, body, deleted_at)
               VALUES (%s, 1, %s, %s, 'c1', 'my secret', now()), (%s, 2, %s, %s, 'c2', 'still here', NULL)""",
            (room, gone, user, room, kept, user),
        )
        conn.execute(
            """INSERT INTO notifications (user_id, kind, room_id, event_id, message_id, seq, preview)
               VALUES (%s, 'mention', %s, %s, %s, 1, 'my secret'),
                      (%s, 'mention', %s, %s, %s, 2, 'still here')""",
            (user, room, uuid.uuid4(), gone, user, room, uuid.uuid4(), kept),
        )
        conn.execute(scrub.sql)
        rows = conn.execute(
            "SELECT id, seq, sender_id, body, deleted_at IS NOT NULL FROM messages"
            " WHERE room_id = %s ORDER BY seq",
            (room,),
        ).fetchall()
        assert rows == [(gone, 1, user, None, True), (kept, 2, user, "still here", False)]
        previews = conn.execute(
            "SELECT seq, preview FROM notifications WHERE room_id = %s ORDER BY seq", (room,)
        ).fetchall()
        assert previews == [(1, ""), (2, "still here")]
        conn.rollback()
