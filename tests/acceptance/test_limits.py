"""docs/protocol.md "Limits" (and README "Configuration"): frame and message size, message body,
connections per user, the three per-connection rate limits, the HTTP body limit and the sign-in
throttle. A stage with other values sets ``TARGET_<SETTING>`` (tests/acceptance/support.py: Limits)."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.acceptance.support import PASSWORD, RawSocket, World, handshake_status, run
from tests.e2e.target import Target


async def _member_socket(w: World) -> tuple[RawSocket, str]:
    alice = await w.user("alice")
    room = await w.room(alice)
    return await alice.socket(), room


# --- sizes ------------------------------------------------------------------------------------------


def test_a_single_frame_over_32_kb_closes_the_socket_with_1009(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            sock, room = await _member_socket(w)
            body = "x" * (w.limits.frame_bytes + 1)
            await sock.send(
                {"action": "sendMessage", "roomId": room, "clientMessageId": "c-big", "body": body}
            )
            assert await sock.wait_closed() == 1009

    run(scenario)


def test_a_message_over_128_kb_in_small_frames_closes_the_socket_with_1009(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            sock, room = await _member_socket(w)
            text = json.dumps(
                {
                    "action": "sendMessage",
                    "roomId": room,
                    "clientMessageId": "c-huge",
                    "body": "x" * w.limits.message_bytes,
                }
            )
            step = w.limits.frame_bytes // 2
            await sock.ws.send(text[i : i + step] for i in range(0, len(text), step))  # fragments
            assert await sock.wait_closed() == 1009

    run(scenario)


def test_a_message_split_into_frames_under_128_kb_is_reassembled(e2e_target: Target) -> None:
    """40 KB in 16 KB frames reaches the server whole: answered (body too long), socket open."""

    async def scenario() -> None:
        async with World(e2e_target) as w:
            sock, room = await _member_socket(w)
            frame = {
                "action": "sendMessage",
                "roomId": room,
                "clientMessageId": "c-split",
                "body": "y" * 40_000,
                "requestId": "split-1",
            }
            text = json.dumps(frame)
            step = w.limits.frame_bytes // 2
            await sock.ws.send(text[i : i + step] for i in range(0, len(text), step))
            reply = await sock.wait_for(lambda f: isinstance(f, dict) and f.get("requestId") == "split-1")
            assert (reply["type"], reply["code"], reply["max"]) == (
                "error",
                "body_too_long",
                w.limits.max_message_chars,
            )
            assert (await sock.request({"action": "ping"}))["type"] == "pong"

    run(scenario)


@pytest.mark.skip(
    reason="frame_too_large is unreachable through API Gateway: it closes a message over 128 KB with "
    "1009 before any function sees it (asserted by the two tests above); unit-tested in the handlers"
)
def test_frame_too_large_error_frame() -> None:
    raise AssertionError("unreachable")


# --- connections per user ---------------------------------------------------------------------------


def test_the_connection_limit_refuses_one_more_handshake_with_429_until_one_closes(
    e2e_target: Target,
) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            user = await w.user("many")
            limit = w.limits.max_connections_per_user
            socks = [await user.socket() for _ in range(limit)]
            token = await user.token()
            assert await handshake_status(e2e_target, token) == 429
            await socks[0].close()
            user.sockets.remove(socks[0])
            statuses: list[int] = []
            # $disconnect is asynchronous (as in AWS): a bounded wait for the slot, slow enough to stay
            # under the per-user handshake rate (RATE_CONNECTS_PER_MINUTE, 30)
            for _ in range(20):
                status = await handshake_status(e2e_target, token)
                if status == 101:
                    break
                statuses.append(status)
                await asyncio.sleep(0.5)
            assert set(statuses) <= {429}, statuses
            assert status == 101, "the freed slot never became available"

    run(scenario)


def test_handshakes_per_user_are_rate_limited_before_anything_is_announced(e2e_target: Target) -> None:
    """RATE_CONNECTS_PER_MINUTE (a reconnect loop): batches of sockets below the connection limit,
    all open at once, then all closed -- the co-member's ``offline`` frame shows the batch gone, so
    the connection limit never plays -- until a handshake is refused with 429. A refused handshake
    announces nothing."""

    async def scenario() -> None:
        async with World(e2e_target) as w:
            watcher_user, looper = await w.user("watch"), await w.user("loop")
            await w.room(watcher_user, looper)
            watcher = await watcher_user.socket()
            token = await looper.token()
            burst = w.limits.rate_connects_per_minute
            batch = max(1, w.limits.max_connections_per_user - 1)

            def looper_presence() -> list[dict[str, Any]]:
                return [f for f in watcher.of_type("presence") if f["userId"] == looper.id]

            started = time.monotonic()
            opened, quiet_refusal = 0, False
            for _ in range(2 * burst // batch + 10):  # bounded: the bucket refills one per 60/burst s
                before = len(looper_presence())
                outcomes = await asyncio.gather(
                    *(RawSocket.open(e2e_target, token) for _ in range(batch)), return_exceptions=True
                )
                socks = [o for o in outcomes if isinstance(o, RawSocket)]
                errors = [o for o in outcomes if not isinstance(o, RawSocket)]
                assert all(isinstance(e, InvalidStatus) and e.response.status_code == 429 for e in errors), (
                    errors
                )
                opened += len(socks)
                if not socks:  # the whole batch refused: nothing may have been announced
                    await watcher.request({"action": "ping"})
                    assert len(looper_presence()) == before, looper_presence()[before:]
                    quiet_refusal = True
                    break
                await watcher.next_of_type("presence", where=lambda f: f["userId"] == looper.id)
                for sock in socks:
                    await sock.close()
                await watcher.next_of_type(
                    "presence", where=lambda f: f["userId"] == looper.id and f["status"] == "offline"
                )
            elapsed = time.monotonic() - started
            assert quiet_refusal, f"{opened} handshakes in {elapsed:.1f} s, never a refused batch"
            assert burst <= opened <= burst + math.ceil(elapsed * burst / 60) + batch, (opened, elapsed)

    run(scenario)


# --- rate limits ------------------------------------------------------------------------------------


async def _burst(sock: RawSocket, frames: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
    """Send every frame without waiting, then collect the reply to each (by requestId); also how
    long it took (the bucket refills meanwhile)."""
    rids = [f"burst-{i}" for i in range(len(frames))]
    started = time.monotonic()
    for rid, frame in zip(rids, frames, strict=True):
        await sock.send({**frame, "requestId": rid})
    replies: list[dict[str, Any]] = []
    for rid in rids:
        replies.append(await sock.wait_for(_replying_to(rid), what=f"reply {rid}"))
    return replies, time.monotonic() - started


def _replying_to(rid: str) -> Callable[[Any], bool]:
    return lambda f: isinstance(f, dict) and f.get("requestId") == rid


def _assert_rate_limited(replies: list[dict[str, Any]], burst: int, elapsed_s: float, action: str) -> None:
    """A burst of ``burst`` then ``burst`` per 10 s (GCRA): at most that many answered, the rest
    refused with rate_limited + retryAfterMs."""
    refused = [r for r in replies if r.get("type") == "error"]
    answered = len(replies) - len(refused)
    assert refused, f"{len(replies)} frames in {elapsed_s:.1f} s, none refused"
    assert {r["code"] for r in refused} == {"rate_limited"}, refused[:3]
    assert answered <= burst + math.ceil(elapsed_s * burst / 10) + 1, (answered, elapsed_s)
    for r in refused:
        assert r["action"] == action
        assert isinstance(r["retryAfterMs"], int), r
        assert 0 < r["retryAfterMs"] <= 10_000, r


def test_messages_per_connection_are_rate_limited_with_retry_after(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            sock, room = await _member_socket(w)
            burst = w.limits.rate_messages_per_10s
            frames = [
                {"action": "sendMessage", "roomId": room, "clientMessageId": f"c-r{i}", "body": f"{i}"}
                for i in range(2 * burst)
            ]
            replies, elapsed = await _burst(sock, frames)
            _assert_rate_limited(replies, burst, elapsed, "sendMessage")
            acks = sorted(r["seq"] for r in replies if r["type"] == "ack")
            assert acks == list(range(1, len(acks) + 1))  # the refused ones created nothing
            # Another connection of the same user has its own budget.
            other = await w.actors[0].socket()
            ack = await other.request(
                {"action": "sendMessage", "roomId": room, "clientMessageId": "c-o", "body": "o"}
            )
            assert ack["type"] == "ack"

    run(scenario)


def test_typing_per_connection_is_rate_limited(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            sock, room = await _member_socket(w)
            burst = w.limits.rate_typing_per_10s
            rids = [f"t-{i}" for i in range(burst + 3)]
            for rid in rids:
                await sock.send({"action": "typing", "roomId": room, "requestId": rid})
            await sock.request({"action": "ping"})
            # typing has no reply unless refused: every answer is a refusal, one per frame past the burst
            refused = await _collect_errors(sock, len(rids) - burst)
            assert {r["code"] for r in refused} == {"rate_limited"}
            assert all(r["action"] == "typing" and r["retryAfterMs"] > 0 for r in refused)

    run(scenario)


async def _collect_errors(sock: RawSocket, count: int) -> list[dict[str, Any]]:
    out = [await sock.next_of_type("error") for _ in range(count)]
    await sock.request({"action": "ping"})
    assert len(sock.of_type("error")) == count, sock.of_type("error")
    return out


def test_other_room_requests_per_connection_are_rate_limited(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            sock, room = await _member_socket(w)
            burst = w.limits.rate_requests_per_10s
            kinds: list[dict[str, Any]] = [
                {"action": "joinRoom", "roomId": room},
                {"action": "markRead", "roomId": room, "seq": 0},
                {"action": "resume", "roomId": room, "sinceSeq": 0},
                {"action": "leaveRoom", "roomId": room},
            ]
            frames = [kinds[i % len(kinds)] for i in range(3 * burst)]
            replies, elapsed = await _burst(sock, frames)
            refused = [r for r in replies if r.get("type") == "error"]
            assert refused, f"{len(frames)} frames in {elapsed:.1f} s, none refused"
            assert {r["code"] for r in refused} == {"rate_limited"}, refused[:3]
            answered = len(replies) - len(refused)
            assert answered <= burst + math.ceil(elapsed * burst / 10) + 1, (answered, elapsed)
            # ping is not a room request: still answered
            assert (await sock.request({"action": "ping"}))["type"] == "pong"

    run(scenario)


# --- HTTP -------------------------------------------------------------------------------------------


def test_an_http_body_over_the_limit_is_413_before_parsing(e2e_target: Target) -> None:
    async def scenario() -> None:
        async with World(e2e_target) as w:
            user = await w.user()
            big = json.dumps({"name": "x" * (w.limits.max_request_body_bytes + 10), "kind": "public"})
            answer = await w.http.call(
                "POST",
                "/rooms",
                data=big,
                headers={"Content-Type": "application/json"},
                token=await user.token(),
            )
            assert (answer.status, answer.error_code) == (413, "payload_too_large"), answer

    run(scenario)


def test_sign_in_failures_are_throttled_with_retry_after(e2e_target: Target) -> None:
    """docs/auth.md "Brute force": past LOGIN_FREE_FAILURES failures from one address, each further
    failure doubles the wait before the next attempt (429 too_many_attempts + Retry-After), and
    while waiting even the right password is refused -- for this run's own throwaway handle only.
    A back-off, not a lock: the test waits the announced time and may try again."""

    async def scenario() -> None:
        async with World(e2e_target) as w:
            user = await w.user("locked")
            statuses: list[int] = []
            waits: list[int] = []
            for _ in range(w.limits.login_free_failures + 12):
                answer = await w.http.call(
                    "POST", "/auth/login", json_body={"handle": user.handle, "password": "wrong-password-1"}
                )
                statuses.append(answer.status)
                if answer.status == 429:
                    assert answer.error_code == "too_many_attempts", answer
                    waits.append(int(answer.headers["Retry-After"]))
                    if waits[-1] >= 4:
                        break
                    await asyncio.sleep(waits[-1])  # wait as told, then fail once more
                else:
                    assert answer.status == 401, answer
            assert statuses[: w.limits.login_free_failures] == [401] * w.limits.login_free_failures
            assert waits, statuses
            assert waits[-1] >= 4, (statuses, waits)  # the wait grew (1, 2, 4 s by default)
            assert waits == sorted(waits), waits
            still = await w.http.call(
                "POST", "/auth/login", json_body={"handle": user.handle, "password": PASSWORD}
            )
            assert (still.status, still.error_code) == (429, "too_many_attempts")  # this source waits
            assert uuid.UUID(user.id)

    run(scenario)
