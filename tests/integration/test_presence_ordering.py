"""Presence across a page reload: the old socket's $disconnect and the new socket's $connect run
at the same time. Co-members must end up seeing the user ONLINE, whatever the interleaving.

The steps of the two handlers are interleaved deterministically: the $disconnect handler runs in
a thread and is paused at a chosen point (a :class:`PausePoint` on its realtime service), the
$connect handler runs to completion, then the $disconnect resumes. Real handlers, Postgres,
Redis and the local @connections endpoint (tests/support/ws_harness.py).

Clients apply the documented rule (docs/protocol.md, ``presence``): a frame whose ``version`` is
not greater than the last one seen for that user is stale and dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg

from chatflow.domain.identity import Identity
from chatflow.domain.realtime import RealtimeService
from tests.support.lambdas import load_handler_module
from tests.support.ws_harness import WsHarness

DB = psycopg.Connection[dict[str, Any]]
WAIT_S = 10.0


class PausePoint:
    """Wraps ``obj.attr``: the first call made from the paused thread stops there (``reached``)
    until :meth:`release`; calls from other threads pass straight through."""

    def __init__(self, obj: Any, attr: str, *, when: Callable[..., bool] = lambda *a, **k: True) -> None:
        self.obj, self.attr, self.when = obj, attr, when
        self.original = getattr(obj, attr)
        self.reached = threading.Event()
        self._release = threading.Event()
        self.thread: threading.Thread | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (
            threading.current_thread() is self.thread
            and not self.reached.is_set()
            and self.when(*args, **kwargs)
        ):
            self.reached.set()
            assert self._release.wait(WAIT_S), "never released"
        return self.original(*args, **kwargs)

    def release(self) -> None:
        self._release.set()

    @contextmanager
    def installed(self) -> Iterator[PausePoint]:
        setattr(self.obj, self.attr, self)
        try:
            yield self
        finally:
            self.release()
            setattr(self.obj, self.attr, self.original)


def disconnect_paused_at(ws: WsHarness, cid: str, pause: PausePoint, meanwhile: Callable[[], object]) -> None:
    """Run ``$disconnect`` of ``cid`` until ``pause``, run ``meanwhile``, then let it finish."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ws.disconnect(cid)
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="disconnect")
    pause.thread = thread
    with pause.installed():
        thread.start()
        assert pause.reached.wait(WAIT_S), "the $disconnect never reached the pause point"
        meanwhile()
        pause.release()
        thread.join(WAIT_S)
    assert not thread.is_alive()
    assert not errors, errors


def disconnect_service() -> RealtimeService:
    """The realtime service of the $disconnect function (its container's)."""
    service: RealtimeService = load_handler_module("ws_disconnect").container.realtime
    return service


def client_view(frames: list[dict[str, Any]]) -> dict[str, str]:
    """What a client shows after these presence frames, applying the version rule."""
    seen: dict[str, int] = {}
    view: dict[str, str] = {}
    for f in frames:
        version = f["version"]
        assert isinstance(version, int)
        if version <= seen.get(f["userId"], -1):
            continue  # stale: an older transition arriving late
        seen[f["userId"]] = version
        view[f["userId"]] = f["status"]
    return view


def _statuses(ws: WsHarness, cid: str) -> list[str]:
    return [f["status"] for f in ws.received(cid, "presence")]


def test_late_offline_from_the_old_socket_is_older_than_the_new_online(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    """$disconnect unregisters (last connection: offline) and is delayed while POSTING; the new
    $connect registers (first connection: online) and posts first. The offline arrives last,
    and clients must be able to tell it is stale."""
    b = ws.connected(bob)
    old = ws.connected(alice)
    ws.clear()
    service = disconnect_service()
    holding_offline = PausePoint(service.notifier, "send", when=lambda targets, data: b'"offline"' in data)
    new: list[str] = []
    disconnect_paused_at(ws, old, holding_offline, lambda: new.append(ws.connected(alice)))

    frames = ws.received(b, "presence")
    assert _statuses(ws, b) == ["online", "offline"]  # the race happened: offline came last
    assert frames[0]["version"] > frames[1]["version"]
    assert client_view(frames) == {str(alice.user_id): "online"}
    assert service.registry.online_user_ids([alice.user_id]) == {alice.user_id}

    # A real offline later on is newer than everything before it.
    ws.disconnect(new[0])
    assert client_view(ws.received(b, "presence")) == {str(alice.user_id): "offline"}


def test_offline_is_not_announced_when_the_user_is_back_before_it_goes_out(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    """$disconnect unregisters and is delayed BEFORE announcing (looking up co-members); the new
    $connect registers and announces online. The re-check right before posting sees the user
    back: no offline frame at all."""
    b = ws.connected(bob)
    old = ws.connected(alice)
    ws.clear()
    service = disconnect_service()
    before_announcing = PausePoint(service.rooms, "room_ids")
    disconnect_paused_at(ws, old, before_announcing, lambda: ws.connected(alice))

    assert _statuses(ws, b) == ["online"]
    assert client_view(ws.received(b, "presence")) == {str(alice.user_id): "online"}


def test_connect_before_the_old_disconnect_sends_no_presence_at_all(
    ws: WsHarness, alice: Identity, bob: Identity, room_id: UUID
) -> None:
    """The other order: the new socket registers first (not the first connection), then the old
    one goes (not the last): the user never went offline, so nothing is announced."""
    b = ws.connected(bob)
    old = ws.connected(alice)
    first_online = ws.received(b, "presence")
    ws.clear()
    ws.connected(alice)
    ws.disconnect(old)
    assert ws.received(b, "presence") == []
    assert client_view(first_online) == {str(alice.user_id): "online"}
