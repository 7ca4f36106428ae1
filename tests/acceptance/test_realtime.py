"""Realtime promises (docs/protocol.md, docs/events.md, docs/auth.md): presence transitions and
snapshots, resume with the Python client across a reconnect, idempotent resend, edits/deletes
reaching every device, notifications for offline members, bans and revocation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chatflow_client import ApiError
from tests.acceptance.support import PASSWORD, RawSocket, World, eventually, handshake_status, run
from tests.e2e.client import received
from tests.e2e.target import Target


async def _send(sock: RawSocket, room: str, body: str) -> dict[str, Any]:
    ack = await sock.request(
        {"action": "sendMessage", "roomId": room, "clientMessageId": f"c-{uuid.uuid4().hex}", "body": body}
    )
    assert ack["type"] == "ack", ack
    return ack


# --- presence ---------------------------------------------------------------------------------------


def test_presence_online_once_for_several_devices_then_offline_with_a_higher_version(
    e2e_target: Target,
) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob = await w.user("alice"), await w.user("bob")
            await w.room(alice, bob)
            watcher = await alice.socket()
            phone = await bob.socket()
            online = await watcher.next_of_type("presence", where=lambda f: f["userId"] == bob.id)
            assert online["status"] == "online"
            laptop = await bob.socket()  # a second device: no second transition
            await phone.close()
            await laptop.close()
            bob.sockets.clear()
            offline = await watcher.next_of_type("presence", where=lambda f: f["userId"] == bob.id)
            assert offline["status"] == "offline"
            assert offline["version"] > online["version"]
            await watcher.request({"action": "ping"})
            assert [f["status"] for f in watcher.of_type("presence") if f["userId"] == bob.id] == [
                "online",
                "offline",
            ]

    run(scenario)


def test_presence_snapshot_on_join_by_request_and_over_http(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob, carol = await w.user("alice"), await w.user("bob"), await w.user("carol")
            room = await w.room(alice, bob, carol)
            a_sock = await alice.socket()
            b_sock = await bob.socket()
            await bob.socket()  # two devices, one entry
            announced = await a_sock.next_of_type("presence", where=lambda f: f["userId"] == bob.id)

            joined = await a_sock.request({"action": "joinRoom", "roomId": room})
            entries = {e["userId"]: e for e in joined["presence"]["online"]}
            assert set(entries) == {alice.id, bob.id}  # carol has no socket
            assert entries[bob.id]["version"] >= announced["version"]
            assert entries[bob.id]["handle"] == bob.handle

            snapshot = await a_sock.request({"action": "presence", "roomId": room})
            assert snapshot["type"] == "presenceSnapshot"
            assert [e["userId"] for e in snapshot["online"]] == sorted([alice.id, bob.id])
            assert snapshot["more"] is False

            over_http = await w.http.call("GET", f"/rooms/{room}/presence", token=await carol.token())
            assert over_http.status == 200, over_http
            assert {e["userId"] for e in over_http.json["online"]} == {alice.id, bob.id}
            paged = await w.http.call(
                "GET", f"/rooms/{room}/presence", query={"limit": "1"}, token=await carol.token()
            )
            assert (len(paged.json["online"]), paged.json["more"]) == (1, True)
            assert paged.json["cursor"]

            stranger = await w.user("dave")
            refused = await w.http.call("GET", f"/rooms/{room}/presence", token=await stranger.token())
            assert (refused.status, refused.error_code) == (403, "not_a_member")
            assert b_sock is not None

    run(scenario)


# --- delivery with the Python client: resume and resend ---------------------------------------------


def test_a_reconnected_client_gets_exactly_what_it_missed_in_order(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob = await w.user("alice"), await w.user("bob")
            room = await w.room(alice, bob)
            a_sock = await alice.socket()
            events = await bob.connect()
            await bob.chat.join(room)
            await _send(a_sock, room, "before")
            [first] = await received(events, room, 1)
            await bob.chat.disconnect()  # the app goes to the background
            missed = [await _send(a_sock, room, f"missed {i}") for i in range(3)]
            await bob.chat.connect()  # resumes every room from its position
            caught_up = await received(events, room, 3)
            assert [e.message.seq for e in caught_up] == [m["seq"] for m in missed]
            assert first.message.seq == 1

    run(scenario)


def test_a_send_whose_ack_was_lost_is_stored_once(e2e_target: Target) -> None:
    """The ack never arrives (the socket dies right after the send): resending the same
    clientMessageId on a new socket returns the original ack, and the room holds it once."""

    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob = await w.user("alice"), await w.user("bob")
            room = await w.room(alice, bob)
            frame = {
                "action": "sendMessage",
                "roomId": room,
                "clientMessageId": "c-lost",
                "body": "exactly once",
            }
            dying = await alice.socket()
            await dying.send(frame)
            await dying.close()
            fresh = await alice.socket()
            ack = await fresh.request(frame)
            assert ack["type"] == "ack"
            page = await bob.api.history(room)
            assert [(m.body, m.client_message_id) for m in page.messages] == [("exactly once", "c-lost")]
            assert page.messages[0].seq == ack["seq"]

    run(scenario)


def test_edits_and_deletes_reach_every_connection_of_every_member(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob = await w.user("alice"), await w.user("bob")
            room = await w.room(alice, bob)
            a_sock, a_other = await alice.socket(), await alice.socket()
            b_phone, b_laptop = await bob.socket(), await bob.socket()
            ack = await _send(a_sock, room, "v1")
            await a_sock.request({"action": "editMessage", "roomId": room, "seq": ack["seq"], "body": "v2"})
            await a_sock.request({"action": "deleteMessage", "roomId": room, "seq": ack["seq"]})
            for sock in (a_other, b_phone, b_laptop):
                edited = await sock.next_of_type("messageEdited")
                deleted = await sock.next_of_type("messageDeleted")
                assert (edited["message"]["body"], deleted["message"]["body"]) == ("v2", None)
            page = await bob.api.history(room)
            assert [(m.seq, m.body, m.deleted) for m in page.messages] == [(ack["seq"], None, True)]

    run(scenario)


# --- notifications ----------------------------------------------------------------------------------


async def _notifications(w: World, token: str) -> dict[str, Any]:
    answer = await w.http.call("GET", "/notifications", token=token)
    assert answer.status == 200, answer
    body: dict[str, Any] = answer.json
    return body


def test_offline_members_get_unread_counters_mentions_and_dm_notifications(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob = await w.user("alice"), await w.user("bob")  # bob stays offline
            room = await w.room(alice, bob)
            dm = (await alice.api.open_dm(user_id=bob.id)).id
            sock = await alice.socket()
            mention = await _send(sock, room, f"hey @{bob.handle} look")
            await _send(sock, dm, "psst")
            token = await bob.token()

            async def arrived() -> dict[str, Any] | None:
                page = await _notifications(w, token)
                kinds = {n["kind"] for n in page["items"]}
                counted = page["totalUnreadMessages"] >= 2
                return page if {"mention", "direct_message"} <= kinds and counted else None

            page = await eventually(arrived, timeout=30, what="mention and DM notifications, both counted")
            by_kind = {n["kind"]: n for n in page["items"]}
            assert (by_kind["mention"]["roomId"], by_kind["mention"]["seq"]) == (room, mention["seq"])
            assert by_kind["mention"]["actorHandle"] == alice.handle
            assert by_kind["direct_message"]["preview"] == "psst"
            counters = {r["roomId"]: r for r in page["rooms"]}
            assert counters[room]["unreadMentions"] == 1
            assert counters[dm]["unreadMessages"] == 1

            cleared = await w.http.call("POST", "/notifications/read", json_body={"all": True}, token=token)
            assert cleared.status == 200, cleared
            after = await _notifications(w, token)
            assert after["totalUnreadMessages"] == 0
            unread = await w.http.call("GET", "/notifications", query={"unreadOnly": "true"}, token=token)
            assert unread.json["items"] == []

    run(scenario)


def test_a_deleted_message_leaves_no_preview_in_notifications(e2e_target: Target) -> None:
    """Deleted means deleted (docs/events.md): the recipient's notification loses the text too."""

    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob = await w.user("alice"), await w.user("bob")
            dm = (await alice.api.open_dm(user_id=bob.id)).id
            sock = await alice.socket()
            ack = await _send(sock, dm, "regrettable words")
            token = await bob.token()

            async def arrived() -> dict[str, Any] | None:
                page = await _notifications(w, token)
                return page if page["items"] else None

            await eventually(arrived, timeout=30, what="the DM notification")
            await sock.request({"action": "deleteMessage", "roomId": dm, "seq": ack["seq"]})

            async def scrubbed() -> bool:
                page = await _notifications(w, token)
                return all("regrettable" not in (n["preview"] or "") for n in page["items"])

            await eventually(scrubbed, timeout=30, what="the preview scrubbed")

    run(scenario)


# --- bans and revocation ----------------------------------------------------------------------------


def test_a_ban_closes_live_sockets_and_refuses_everything_until_unbanned(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            admin = await w.admin()
            if admin is None:
                pytest.skip("operator check: set TARGET_ADMIN_TOKEN (an administrator's access token)")
            mallory, bob = await w.user("mallory"), await w.user("bob")
            room = await w.room(bob, mallory)
            sock = await mallory.socket()
            token = await mallory.token()
            tokens = mallory.api.tokens
            assert tokens is not None

            banned = await admin.request("POST", f"/admin/users/{mallory.id}/ban")
            assert banned["user"]["status"] == "banned"
            assert banned["sessionsClosed"] == 1
            await sock.wait_closed()
            assert await handshake_status(e2e_target, token) == 403
            me = await w.http.call("GET", "/users/me", token=token)
            assert (me.status, me.error_code) == (401, "account_disabled")
            login = await w.http.call(
                "POST", "/auth/login", json_body={"handle": mallory.handle, "password": PASSWORD}
            )
            assert (login.status, login.error_code) == (403, "account_disabled")
            refresh = await w.http.call(
                "POST", "/auth/refresh", json_body={"refreshToken": tokens.refresh_token}
            )
            assert (refresh.status, refresh.error_code) == (401, "invalid_refresh_token")
            with pytest.raises(ApiError) as refused:
                await admin.request("POST", f"/admin/users/{uuid.uuid4()}/ban")
            assert refused.value.status == 404

            await admin.request("POST", f"/admin/users/{mallory.id}/unban")
            again = await w.http.call(
                "POST", "/auth/login", json_body={"handle": mallory.handle, "password": PASSWORD}
            )
            assert again.status == 200
            old = await w.http.call("GET", "/users/me", token=token)
            assert old.status == 401  # unban keeps old tokens void
            assert room

    run(scenario)


def test_an_admin_may_delete_anyones_message(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            admin = await w.admin()
            if admin is None:
                pytest.skip("operator check: set TARGET_ADMIN_TOKEN (an administrator's access token)")
            alice = await w.user("alice")
            room = await w.room(alice)
            await admin.join_room(room)
            ack = await _send(await alice.socket(), room, "spam")
            try:
                deleted = await admin.request("DELETE", f"/rooms/{room}/messages/{ack['seq']}")
                assert (deleted["seq"], deleted["body"]) == (ack["seq"], None)
            finally:
                await admin.leave_room(room)  # the admin's own session: the run's cleanup does not

    run(scenario)


def test_logout_everywhere_closes_open_sockets(e2e_target: Target) -> None:
    """issue 9 §1: a connection receives only while its session is valid."""

    async def scenario() -> None:
        async with World(e2e_target) as w:
            alice, bob = await w.user("alice"), await w.user("bob")
            room = await w.room(alice, bob)
            b_sock = await bob.socket()
            tokens = bob.api.tokens
            assert tokens is not None
            out = await w.http.call(
                "POST",
                "/auth/logout",
                query={"all": "true"},
                json_body={"refreshToken": tokens.refresh_token},
            )
            assert out.status == 204
            await _send(await alice.socket(), room, "after the logout")
            code = await b_sock.wait_closed(timeout=10)
            assert code is not None
            assert not b_sock.of_type("message")  # heard nothing new
            assert await handshake_status(e2e_target, tokens.access_token) == 403

    run(scenario)
