"""Realtime domain: connections, presence, fan-out and session termination (no AWS, no Redis).

:class:`RealtimeService` talks to ports only (``chatflow.domain.ports``, REALTIME section): a
ConnectionRegistry (Redis), a ConnectionNotifier (API Gateway Management API), a FanoutQueue
(SQS, for large rooms), a RoomDirectory (ROOMS' cached member lists) and an EventPublisher
(EventBridge). The function's container (:mod:`chatflow.container`) wires the real adapters.

Rules it owns:

* A user may hold ``max_connections_per_user`` live connections (atomic in the registry).
* Presence is announced to CO-MEMBERS (users sharing a room) only on the first connection and
  after the last one is gone -- never per device. The registry decides "first"/"last"
  atomically with the change and stamps the transition with the user's presence version
  (strictly increasing per user); frames carry it, so a client drops a frame that arrives
  after a newer one (a reload's $connect racing the old socket's $disconnect). Right before
  posting, the transition is re-checked against the registry: a superseded one is not sent.
* Every message-like frame goes to every live connection of the room's current members (all of
  their devices), except the sending connection. Typing goes only to connections subscribed to
  the room (``joinRoom``) whose user is still a member.
* A 410 from the notifier removes THAT recipient's connection; if it was the user's last, the
  user goes offline (announced once, without cascading further) -- unless the connection was
  registered less than ``gone_grace_s`` ago: its ``$connect`` may still be running, and API
  Gateway answers 410 until ``$connect`` has returned.
* A connection receives only while its session is valid: every revocation closes all of the
  user's sockets (:meth:`RealtimeService.terminate_user_sessions`), each registration is
  stamped with the token's ``iat``, and fan-out skips (and cleans up) any registered connection
  whose session the user's cached status no longer admits -- in the same Redis round trip
  that reads the targets. ``connect`` / ``keep_alive`` re-check the account after
  registering (``recheck``) and undo the registration when it was revoked meanwhile.
* Rooms with more members than ``fanout_async_threshold`` are fanned out through the queue
  (parallel jobs of the ``fanout`` function).
* A new message's ack goes to the sender FIRST, over @connections, and only then is the room
  fanned out (:meth:`RealtimeService.acknowledge_then_deliver`): the sender never waits for the
  room. A sender's messages in a room are still fanned out in ``seq`` order (the FanoutTurns
  port: a ticket taken before the ack, the fan-out when it is first in line).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from chatflow.domain.realtime_models import (
    DeliveryReport,
    PresenceEntry,
    PresencePage,
    RateDecision,
    RateKind,
    Registration,
    Target,
    Unregistration,
)
from chatflow.errors import LimitExceeded, RateLimited

if TYPE_CHECKING:
    from chatflow.domain.identity import Identity
    from chatflow.domain.ports import (
        ConnectionNotifier,
        ConnectionRegistry,
        EventPublisher,
        FanoutQueue,
        FanoutTurns,
        RoomDirectory,
    )
    from chatflow.events.schemas import DomainEvent

logger = logging.getLogger(__name__)

RATE_WINDOW_S = 10.0
CONNECT_WINDOW_S = 60.0
_RATE_LABELS: dict[RateKind, str] = {"requests": "joinRoom/leaveRoom/markRead/resume"}


def encode_frame(frame: dict[str, Any]) -> bytes:
    """Frames travel as compact UTF-8 JSON."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()


def presence_frame(user_id: UUID, status: Literal["online", "offline"], version: int) -> dict[str, Any]:
    return {"type": "presence", "userId": str(user_id), "status": status, "version": version}


# --- the service ---------------------------------------------------------------------------------


class RealtimeService:
    def __init__(
        self,
        *,
        registry: ConnectionRegistry,
        notifier: ConnectionNotifier,
        rooms: RoomDirectory,
        publisher: EventPublisher | None = None,
        queue: FanoutQueue | None = None,
        turns: FanoutTurns | None = None,
        max_connections_per_user: int = 5,
        fanout_async_threshold: int = 200,
        rate_messages_per_10s: int = 20,
        rate_typing_per_10s: int = 10,
        rate_requests_per_10s: int = 100,
        presence_page_max: int = 100,
        presence_async_threshold: int = 200,
        connects_per_minute: int = 30,
        handle_of: Callable[[UUID], str | None] | None = None,
        gone_grace_s: float = 10.0,
    ) -> None:
        self.registry = registry
        self.notifier = notifier
        self.rooms = rooms
        self.publisher = publisher
        self.queue = queue
        self.turns = turns
        self.max_connections_per_user = max_connections_per_user
        self.fanout_async_threshold = fanout_async_threshold
        self.presence_page_max = presence_page_max
        self.presence_async_threshold = presence_async_threshold
        self.connects_per_minute = connects_per_minute
        #: Handles of online users the status cache did not hold (IDENTITY; rare: $connect fills it).
        self._handle_of = handle_of
        self.gone_grace_s = gone_grace_s
        self._rates: dict[RateKind, int] = {
            "messages": rate_messages_per_10s,
            "typing": rate_typing_per_10s,
            "requests": rate_requests_per_10s,
        }

    # --- connection lifecycle ------------------------------------------------------------

    def connect(
        self, identity: Identity, connection_id: str, *, recheck: Callable[[], object] | None = None
    ) -> Registration:
        """Register the connection; LimitExceeded when the user already has the maximum.

        ``recheck`` (the account check, raising when the session was revoked) runs AFTER the
        registration: a revocation that landed between the caller's first check and the
        registration either sees this registration (and removes it) or is seen here -- then the
        registration is undone and the error raised, before anything is announced."""
        from chatflow.events.schemas import ConnectionOpened, UserOnline

        self._check_connect_rate(identity.user_id)
        reg = self._register(identity, connection_id, recheck)
        if not reg.accepted:
            raise LimitExceeded(
                f"at most {self.max_connections_per_user} connections per user",
                code="too_many_connections",
                limit=self.max_connections_per_user,
            )
        events: list[DomainEvent] = [ConnectionOpened(user_id=identity.user_id, connection_id=connection_id)]
        if reg.first:
            self._announce_safely(
                identity.user_id, "online", reg.presence_version, exclude_connection=connection_id
            )
            events.insert(0, UserOnline(user_id=identity.user_id))
        self._publish(events)
        return reg

    def _check_connect_rate(self, user_id: UUID) -> None:
        """Per-USER handshake budget (GCRA, ``connects_per_minute``, burst as large): a client
        reconnecting in a loop -- or one account cycling its sockets to spam presence -- is
        refused with 429 (``too_many_connects`` + ``retryAfterMs``) before it registers anything.
        A page reload or a few devices stay far below it."""
        decision = self.registry.hit_rate_limit(
            "connect", str(user_id), limit=self.connects_per_minute, window_s=CONNECT_WINDOW_S
        )
        if not decision.allowed:
            raise RateLimited(
                f"too many connection attempts: at most {self.connects_per_minute} per minute",
                code="too_many_connects",
                retryAfterMs=decision.retry_after_ms,
            )

    def disconnect(self, user_id: UUID, connection_id: str) -> Unregistration:
        result = self.registry.unregister(user_id, connection_id)
        if result.last:
            self._went_offline(user_id, result.presence_version, cascade=True)
        return result

    def _register(
        self, identity: Identity, connection_id: str, recheck: Callable[[], object] | None
    ) -> Registration:
        reg = self.registry.register(
            identity.user_id,
            connection_id,
            limit=self.max_connections_per_user,
            session_issued_at=identity.issued_at,
        )
        if reg.accepted and recheck is not None:
            try:
                recheck()
            except Exception:
                # Revoked meanwhile (or the check failed): nothing may stay registered. The
                # check's error is the one to report, even if the undo fails too (the record
                # then expires, and fan-out skips a revoked session regardless).
                try:
                    self.registry.unregister(identity.user_id, connection_id)
                except Exception:
                    logger.exception("undoing a registration after a failed re-check failed")
                raise
        return reg

    def keep_alive(
        self, identity: Identity, connection_id: str, *, recheck: Callable[[], object] | None = None
    ) -> bool:
        """``ping``: refresh the TTLs. A connection the registry no longer knows (its record
        expired during a long silence, or Redis lost its data) is registered again if the limit
        allows (:meth:`rejoin`); False when it could not be. The caller checks the account BEFORE
        (a revoked session is never touched); ``recheck`` runs again after a re-registration."""
        if self.registry.touch(identity.user_id, connection_id):
            return True
        return self.rejoin(identity, connection_id, recheck=recheck)

    def rejoin(
        self, identity: Identity, connection_id: str, *, recheck: Callable[[], object] | None = None
    ) -> bool:
        """A frame of an open connection the registry does not know: register it again (from the
        identity the frame carries, checked by the caller; ``recheck`` after registering, as in
        :meth:`connect`) and tell the client ``{"type": "resync"}``: live frames sent while it was
        unknown were missed, so it re-joins its rooms and resumes them from its last ``seq``
        (docs/protocol.md, "Registry loss"). ``reason`` says whether Redis lost its data
        (``registry_lost``, detected by the registry's epoch) or the record expired. False when
        the per-user limit refused the registration."""
        lost = self.registry.epoch_lost()  # before registering: that writes the epoch too
        if lost:
            logger.warning("the connection registry lost its data; connections re-register on a frame")
        reg = self._register(identity, connection_id, recheck)
        if not reg.accepted:
            return False
        if reg.first:
            from chatflow.events.schemas import UserOnline

            self._announce_safely(
                identity.user_id, "online", reg.presence_version, exclude_connection=connection_id
            )
            self._publish([UserOnline(user_id=identity.user_id)])
        frame = {"type": "resync", "reason": "registry_lost" if lost else "expired"}
        try:
            self.notifier.send([Target(identity.user_id, connection_id)], encode_frame(frame))
        except Exception:
            logger.exception("telling a re-registered connection to resync failed")
        return True

    def terminate_user_sessions(self, user_id: UUID) -> int:
        """SessionTerminator (contract 4): close every live connection of the user now.

        The registry entries go first, so nothing is fanned out to them while they close (even
        when DeleteConnection then fails: the error is raised after "offline" was announced);
        returns the number of connections API Gateway closed.
        """
        removed = self.registry.remove_all(user_id)
        if not removed.connection_ids:
            return 0
        try:
            return self.notifier.close_connections(removed.connection_ids)
        finally:
            self._went_offline(user_id, removed.presence_version, cascade=True)

    def end_session(self, user_id: UUID, connection_id: str, farewell: dict[str, Any] | None = None) -> None:
        """A frame from a revoked session (``ws_ping`` / ``ws_messages`` refused it): unregister
        the connection, post ``farewell`` (the error frame) and close it (DeleteConnection).
        Best effort: the refusal stands whatever fails here."""
        try:
            result = self.registry.unregister(user_id, connection_id)
            if result.last:
                self._went_offline(user_id, result.presence_version, cascade=True)
            target = Target(user_id, connection_id)
            if farewell is not None:
                self.notifier.send([target], encode_frame(farewell))
            self.notifier.close_connections([connection_id])
        except Exception:
            logger.exception("closing a revoked session failed; its frames are refused regardless")

    # --- rate limits ---------------------------------------------------------------------------

    def check_rate(self, kind: RateKind, connection_id: str) -> None:
        """Raise RateLimited (with retryAfterMs) when this connection exceeds its budget."""
        self.raise_if_limited(kind, self.rate_decision(kind, connection_id))

    def rate_decision(
        self, kind: RateKind, connection_id: str, *, with_status_of: UUID | None = None
    ) -> RateDecision:
        """Count one ``kind`` frame on the connection; ``with_status_of``: also read that user's
        cached status in the same round trip (ws_messages' ban re-check, chatflow.ws.admission)."""
        return self.registry.hit_rate_limit(
            kind,
            connection_id,
            limit=self._rates[kind],
            window_s=RATE_WINDOW_S,
            with_status_of=with_status_of,
        )

    def raise_if_limited(self, kind: RateKind, decision: RateDecision) -> None:
        if not decision.allowed:
            label = _RATE_LABELS.get(kind, kind)
            raise RateLimited(
                f"too many {label} frames: at most {self._rates[kind]} per {int(RATE_WINDOW_S)} s",
                retryAfterMs=decision.retry_after_ms,
            )

    # --- fan-out -------------------------------------------------------------------------------

    def deliver_to_room(
        self, room_id: UUID, frame: dict[str, Any], *, exclude_connection: str | None = None
    ) -> DeliveryReport:
        """Every live connection of the room's members (one Redis round trip for connections).

        Above ``fanout_async_threshold`` members the work goes to the queue -- decided on the
        cached member count, before any connection lookup.
        """
        return self._deliver_to_members(
            room_id, self.rooms.member_ids(room_id), frame, exclude_connection=exclude_connection
        )

    def _goes_to_queue(self, member_ids: Collection[UUID]) -> bool:
        return self.queue is not None and len(member_ids) > self.fanout_async_threshold

    def _deliver_to_members(
        self,
        room_id: UUID,
        member_ids: Collection[UUID],
        frame: dict[str, Any],
        *,
        exclude_connection: str | None,
    ) -> DeliveryReport:
        if self.queue is not None and self._goes_to_queue(member_ids):
            try:
                self.queue.enqueue(
                    room_id, frame, member_ids=member_ids, exclude_connection=exclude_connection
                )
                return DeliveryReport(queued=True)
            except Exception:
                # The queue is down: deliver now rather than not at all.
                logger.exception("fan-out queue unavailable; delivering synchronously")
        return self.deliver_to_users(member_ids, frame, exclude_connection=exclude_connection)

    def acknowledge_then_deliver(
        self,
        sender: Target,
        room_id: UUID,
        seq: int,
        ack: dict[str, Any],
        frame: dict[str, Any],
        *,
        turn_timeout_s: float = 5.0,
    ) -> bool:
        """A new message: post ``ack`` to the sender's connection, THEN fan ``frame`` out to the
        room (every other connection of every member). Never raises: the message is committed.

        Returns True when the ack was posted (the caller sends no route response); False when
        it could not be (the caller answers with it as the route response, as before).
        The sender's other devices see the message after the ack was posted. Order: a ticket is
        taken BEFORE the ack, so the sender's next message (sent on this ack) fans out after
        this one (synchronous path; the queued path promises no order).
        """
        try:
            member_ids: Collection[UUID] = self.rooms.member_ids(room_id)
        except Exception:
            logger.exception("member lookup failed; the ack goes out, the fan-out is skipped")
            member_ids = ()
        in_line = first = False
        if member_ids and self.turns is not None and not self._goes_to_queue(member_ids):
            try:
                first = self.turns.take(room_id, sender.user_id, seq)
                in_line = True
            except Exception:
                logger.exception("fan-out turn unavailable; fanning out without it")
        try:
            acked = self._post_reply(sender, ack)
            if member_ids:
                if in_line and not first and self.turns is not None:
                    self._wait_turn(self.turns, sender.user_id, room_id, seq, turn_timeout_s)
                self.broadcast(
                    lambda: self._deliver_to_members(
                        room_id, member_ids, frame, exclude_connection=sender.connection_id
                    )
                )
        finally:
            if in_line and self.turns is not None:
                try:
                    self.turns.release(room_id, sender.user_id, seq)
                except Exception:
                    logger.exception("releasing the fan-out turn failed (it expires)")
        return acked

    @staticmethod
    def _wait_turn(turns: FanoutTurns, user_id: UUID, room_id: UUID, seq: int, timeout_s: float) -> None:
        try:
            if not turns.wait(room_id, user_id, seq, timeout_s=timeout_s):
                logger.warning(
                    "fan-out turn not reached in %.1f s; fanning out (order best effort)", timeout_s
                )
        except Exception:
            logger.exception("waiting for the fan-out turn failed; fanning out")

    def _post_reply(self, sender: Target, reply: dict[str, Any]) -> bool:
        """The reply to the sender over @connections; True when API Gateway took it (200) or the
        sender is gone (410: nobody to answer)."""
        try:
            report = self.notifier.send([sender], encode_frame(reply))
        except Exception:
            logger.exception("posting the reply failed; it goes back as the route response")
            return False
        return bool(report.delivered or report.gone)

    def broadcast(self, deliver: Callable[[], DeliveryReport]) -> DeliveryReport | None:
        """Run a fan-out AFTER the change it announces was committed: best effort, never raises.

        The change is stored and acknowledged regardless; recipients that missed the frame catch
        up with ``resume`` (seq has no gaps). Failures are logged (and counted by the notifier).
        """
        try:
            return deliver()
        except Exception:
            logger.exception("fan-out failed after the change was committed")
            return None

    def deliver_to_users(
        self,
        user_ids: Iterable[UUID],
        frame: dict[str, Any],
        *,
        exclude_connection: str | None = None,
        cascade: bool = True,
    ) -> DeliveryReport:
        found = self.registry.delivery_targets(user_ids)
        if found.revoked:
            self._drop_revoked(found.revoked)
        targets = [t for t in found.live if t.connection_id != exclude_connection]
        return self.deliver(targets, frame, cascade=cascade)

    def _drop_revoked(self, revoked: Sequence[Target]) -> None:
        """Registered connections of revoked sessions (a termination raced or failed): never
        delivered to; removed and closed here, best effort."""
        logger.warning("skipping %d connection(s) of revoked sessions", len(revoked))
        try:
            for target in revoked:
                result = self.registry.unregister(target.user_id, target.connection_id)
                if result.last:
                    self._went_offline(target.user_id, result.presence_version, cascade=False)
            self.notifier.close_connections([t.connection_id for t in revoked])
        except Exception:
            logger.exception("cleaning up revoked sessions failed; they are skipped regardless")

    def deliver_to_subscribers(
        self, room_id: UUID, frame: dict[str, Any], *, exclude_connection: str | None = None
    ) -> DeliveryReport:
        """Connections subscribed to the room (joinRoom) whose user is STILL a member."""
        members = set(self.rooms.member_ids(room_id))
        targets = [
            t
            for t in self.registry.subscribers(room_id)
            if t.user_id in members and t.connection_id != exclude_connection
        ]
        return self.deliver(targets, frame)

    def deliver(
        self, targets: Sequence[Target], frame: dict[str, Any], *, cascade: bool = True
    ) -> DeliveryReport:
        if not targets:
            return DeliveryReport()
        report = self.notifier.send(targets, encode_frame(frame))
        for target in report.gone:
            self.drop_stale(target, cascade=cascade)
        return report

    def drop_stale(self, target: Target, *, cascade: bool = True) -> None:
        """A 410 for this recipient: remove exactly its connection (never the sender's) -- unless
        it was registered within ``gone_grace_s``: API Gateway answers 410 to a connection whose
        ``$connect`` has not returned yet, and dropping it would leave the new socket
        unregistered (its ``$disconnect`` or a later 410 removes a really gone one)."""
        result = self.registry.unregister(target.user_id, target.connection_id, grace_s=self.gone_grace_s)
        if result.kept:
            logger.info("410 within the grace window after registration; connection kept")
        if result.last:
            self._went_offline(target.user_id, result.presence_version, cascade=cascade)

    # --- presence ------------------------------------------------------------------------------

    def co_member_ids(self, user_id: UUID) -> set[UUID]:
        """Everyone sharing a room with the user (the audience of their presence)."""
        co: set[UUID] = set()
        for members in self.rooms.members_of(list(self.rooms.room_ids(user_id))).values():
            co.update(members)
        co.discard(user_id)
        return co

    def announce_presence(
        self,
        user_id: UUID,
        status: Literal["online", "offline"],
        version: int,
        *,
        exclude_connection: str | None = None,
        cascade: bool = True,
    ) -> DeliveryReport:
        """Tell co-members about the transition stamped ``version`` -- unless it is no longer
        the user's latest (re-checked right before posting, after the co-member lookup): then
        the newer transition announces itself and this frame would only be noise. Frames can
        still cross on the wire; the version lets clients drop the older one."""
        co_members = self.co_member_ids(user_id)
        online = status == "online"
        if not self.registry.presence_is_current(user_id, version, online=online):
            logger.info("presence %s (version %d) superseded; not announced", status, version)
            return DeliveryReport()
        frame = presence_frame(user_id, status, version)
        if self.queue is not None and len(co_members) > self.presence_async_threshold:
            # A large audience: posting it here would hold $connect/$disconnect (and the
            # account's PostToConnection budget) for every co-member. The queue's consumer
            # delivers it, after re-checking the transition is still the latest.
            try:
                self.queue.enqueue_presence(user_id, version, online, frame, member_ids=co_members)
                return DeliveryReport(queued=True)
            except Exception:
                logger.exception("fan-out queue unavailable; announcing presence synchronously")
        return self.deliver_to_users(
            co_members, frame, exclude_connection=exclude_connection, cascade=cascade
        )

    def deliver_presence(
        self, user_id: UUID, version: int, online: bool, frame: dict[str, Any], recipients: Iterable[UUID]
    ) -> DeliveryReport:
        """A queued presence job (functions/fanout): posted only if the transition is still the
        user's latest -- superseded ones (a reload, a cycling client) are dropped, so a burst of
        transitions costs one delivery per settled state. A 410 recipient going offline is not
        announced further from here when this announces "offline" (as in the synchronous path)."""
        if not self.registry.presence_is_current(user_id, version, online=online):
            logger.info("queued presence (version %d) superseded; dropped", version)
            return DeliveryReport()
        return self.deliver_to_users(recipients, frame, cascade=online)

    def room_presence(
        self, room_id: UUID, *, after: UUID | None = None, limit: int | None = None
    ) -> PresencePage:
        """The presence snapshot of a room: its members with a live connection (any device), by
        user id, after ``after`` (the previous page's cursor), at most ``limit`` (capped at
        ``presence_page_max``). Each entry carries the version of the user's current "online"
        transition, so clients merge it with presence frames by the one rule (greater wins).
        Membership of the caller is the transport's check (ROOMS' require_member)."""
        cap = max(1, min(limit or self.presence_page_max, self.presence_page_max))
        members = sorted(self.rooms.member_ids(room_id), key=str)
        if after is not None:
            members = [m for m in members if str(m) > str(after)]
        online: list[PresenceEntry] = []
        # Bounded work: read in slices until the page is full (plus one to know about "more");
        # MAX_MEMBERS_PER_ROOM bounds the slices (bench/presence_snapshot.py).
        step = max(cap + 1, 1000)
        for start in range(0, len(members), step):
            online.extend(self.registry.online_presence(members[start : start + step]))
            if len(online) > cap:
                break
        page, more = online[:cap], len(online) > cap
        if self._handle_of is not None:
            page = [
                e if e.handle is not None else PresenceEntry(e.user_id, e.version, self._handle_of(e.user_id))
                for e in page
            ]
        return PresencePage(tuple(page), more=more, cursor=str(page[-1].user_id) if more else None)

    def _went_offline(self, user_id: UUID, version: int, *, cascade: bool) -> None:
        from chatflow.events.schemas import UserOffline

        self._publish([UserOffline(user_id=user_id)])
        if cascade:
            # Stale connections found while announcing are dropped without announcing again.
            self._announce_safely(user_id, "offline", version, cascade=False)

    def _announce_safely(
        self,
        user_id: UUID,
        status: Literal["online", "offline"],
        version: int,
        *,
        exclude_connection: str | None = None,
        cascade: bool = True,
    ) -> None:
        """Presence is best effort: a failed announcement never refuses a connect or a ban."""
        try:
            self.announce_presence(
                user_id, status, version, exclude_connection=exclude_connection, cascade=cascade
            )
        except Exception:
            logger.exception("announcing %s presence failed", status)

    def _publish(self, events: Sequence[DomainEvent]) -> None:
        """Presence and connection events are best effort: a bus outage never refuses a socket."""
        if self.publisher is None or not events:
            return
        try:
            self.publisher.publish(events)
        except Exception:
            logger.exception("publishing %s failed", [type(e).__name__ for e in events])
