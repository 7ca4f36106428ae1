"""Parsing what EventBridge hands a consumer function.

A Lambda target of a rule receives the event envelope (``version``, ``id``, ``detail-type``,
``source``, ``account``, ``time``, ``region``, ``resources``, ``detail``; replays add
``replay-name``). :func:`parse_envelope` checks the envelope, then validates the detail against
the schema registry, so a consumer only ever sees a valid, typed :class:`DomainEvent`.

Deduplication uses ``detail.event_id`` (assigned once, when the change happened), never the
envelope ``id``: a resend by the outbox relay, a DLQ redrive or an archive replay carries a new
envelope id but the same event id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatflow.events.schemas import DomainEvent, InvalidEvent, parse_detail

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    event: DomainEvent
    envelope_id: str
    source: str
    detail_type: str
    replay_name: str | None


def parse_envelope(raw: Mapping[str, Any], *, expected_source: str) -> ReceivedEvent:
    """Validate an EventBridge envelope and its detail; :class:`InvalidEvent` if anything is off."""
    if not isinstance(raw, Mapping):
        raise InvalidEvent("event must be an EventBridge envelope (object)")
    detail_type = raw.get("detail-type")
    source = raw.get("source")
    detail = raw.get("detail")
    if not isinstance(detail_type, str) or not isinstance(source, str) or detail is None:
        raise InvalidEvent("not an EventBridge event: need 'source', 'detail-type' and 'detail'")
    if source != expected_source:
        raise InvalidEvent(f"unexpected source {source!r} (expected {expected_source!r})")
    event = parse_detail(detail_type, detail)
    replay = raw.get("replay-name")
    return ReceivedEvent(
        event=event,
        envelope_id=str(raw.get("id", "")),
        source=source,
        detail_type=detail_type,
        replay_name=replay if isinstance(replay, str) else None,
    )


def receive(
    raw: Mapping[str, Any], logger: Logger, metrics: Metrics, *, expected_source: str
) -> ReceivedEvent:
    """:func:`parse_envelope` as every consumer function needs it (``expected_source``: the
    settings' ``event_source``).

    An invalid event is logged (reason and envelope id only, never the detail), counted as
    ``InvalidEvents`` and re-raised, so EventBridge retries it and finally dead-letters it.
    A valid one puts ``event_id``, ``detail_type`` (and ``replay_name``) on the logger's keys.
    """
    from aws_lambda_powertools.metrics import MetricUnit

    try:
        received = parse_envelope(raw, expected_source=expected_source)
    except InvalidEvent as exc:
        envelope_id = raw.get("id") if isinstance(raw, Mapping) else None
        logger.error("invalid event refused", extra={"reason": str(exc), "envelope_id": envelope_id})
        metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
        raise
    logger.append_keys(event_id=str(received.event.event_id), detail_type=received.detail_type)
    if received.replay_name:
        logger.append_keys(replay_name=received.replay_name)
    return received
