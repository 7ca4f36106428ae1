"""The client's rules as small pure classes (no I/O, no clock of their own): the per-room order of
messages, presence by version, and reconnect backoff. The client composes them; tests drive
them directly."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from chatflow_client.models import Presence

T = TypeVar("T")


@dataclass
class SeqOrder(Generic[T]):
    """Releases a room's items in ``seq`` order, each exactly once.

    ``last_seq`` is the position: everything up to it was released. An item above
    ``last_seq + 1`` waits in the buffer (a gap: its predecessor is late or was lost, and the
    client fills it with ``resume``); an item at or below ``last_seq`` is a duplicate. An unknown
    position (None) starts at the first item offered.
    """

    last_seq: int | None = None
    _buffer: dict[int, T] = field(default_factory=dict)

    def start_at(self, seq: int) -> bool:
        """Set the position if it is unknown; True when set."""
        if self.last_seq is not None:
            return False
        self.last_seq = seq
        self._drop_through(seq)
        return True

    def offer(self, seq: int, item: T) -> list[T]:
        """Add one item; returns the items now releasable, in order (maybe none)."""
        if self.last_seq is None:
            self.last_seq = seq - 1
        if seq <= self.last_seq:
            return []
        self._buffer.setdefault(seq, item)
        return self._release()

    def reset(self, seq: int) -> list[T]:
        """The server's word on where the room is: move there (either way), drop what is at or
        below, release what follows contiguously."""
        self.last_seq = seq
        self._drop_through(seq)
        return self._release()

    @property
    def has_gap(self) -> bool:
        return bool(self._buffer)

    @property
    def waiting(self) -> int:
        return len(self._buffer)

    def _release(self) -> list[T]:
        assert self.last_seq is not None
        out: list[T] = []
        while self.last_seq + 1 in self._buffer:
            self.last_seq += 1
            out.append(self._buffer.pop(self.last_seq))
        return out

    def _drop_through(self, seq: int) -> None:
        for stale in [s for s in self._buffer if s <= seq]:
            del self._buffer[stale]


class PresenceBook:
    """Presence per user, applied by version: a frame whose version is not greater than the last
    applied one for that user is stale (frames of one user can cross on the wire)."""

    def __init__(self) -> None:
        self._by_user: dict[str, Presence] = {}

    def apply(self, presence: Presence) -> bool:
        """True when applied; False when stale (or identical)."""
        known = self._by_user.get(presence.user_id)
        if known is not None:
            if presence.version is not None and known.version is not None:
                if presence.version <= known.version:
                    return False
            elif presence.version is None and known.status == presence.status:
                return False
            if presence.handle is None and known.handle is not None:
                presence = Presence(presence.user_id, presence.status, presence.version, known.handle)
        self._by_user[presence.user_id] = presence
        return True

    def get(self, user_id: str) -> Presence | None:
        return self._by_user.get(user_id)

    def online(self) -> list[Presence]:
        return [p for p in self._by_user.values() if p.status == "online"]

    def clear(self) -> None:
        self._by_user.clear()


class Backoff:
    """Exponential backoff with jitter: attempt n waits between half and all of
    ``min(maximum, initial * 2**n)`` (half fixed so retries never bunch at zero)."""

    def __init__(self, initial: float, maximum: float, rng: Callable[[], float] = random.random) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng

    def next_delay(self) -> float:
        ceiling: float = min(self.maximum, self.initial * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        return ceiling / 2 + self._rng() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0
