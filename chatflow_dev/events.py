"""Event tooling: ``python -m chatflow_dev.events <command>`` (see docs/events.md).

Commands
  export-schemas [--check]      write events/schemas/*.json from the pydantic models; --check
                                exits 1 (listing the files) when the exported files are stale
  invoke FUNCTION SAMPLE        run functions/FUNCTION/handler.py like Lambda does with
                                events/samples/FUNCTION/SAMPLE.json (or a path) and print the result
  sweep                         run the outbox relay until nothing is due (what the scheduled
                                sweep does), print the outcome and the backlog
  redrive --queue-url URL       move events from an SQS dead-letter queue back onto the bus (AWS, or
                                the local stack's queues with AWS_ENDPOINT_URL=<its AWS endpoint>)
  replay --start T --end T      start an archive replay (AWS or the emulator via
                                EVENTS_ENDPOINT_URL) and wait for it to finish

The development commands (export-schemas, invoke) work from the repository root; the operational
ones (sweep, redrive, replay) use the same settings as the functions (environment variables) and
the same container (chatflow.container). A developer tool: it is not part of the Lambda layer.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from chatflow.events.schemas import VERSIONS, InvalidEvent, parse_detail
from chatflow.settings import Settings, get_settings
from infra.catalog import function as catalog_function

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_sqs.client import SQSClient

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


# --- schemas ---------------------------------------------------------------------------------


def schema_documents() -> dict[str, str]:
    """File name -> JSON text of every exported schema (deterministic: sorted keys, newline)."""
    source = get_settings().event_source
    docs: dict[str, str] = {}
    index: list[dict[str, Any]] = []
    for (detail_type, version), model in sorted(VERSIONS.items()):
        name = f"{detail_type}.v{version}.json"
        schema = model.model_json_schema(mode="serialization")
        schema = {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"https://chatflow.dev/events/schemas/{name}",
            **schema,
            "title": f"{detail_type} v{version}",
            "description": (model.__doc__ or detail_type).strip().splitlines()[0],
            "x-eventbridge": {"source": source, "detail-type": detail_type, "version": version},
        }
        docs[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        index.append({"detailType": detail_type, "version": version, "file": name})
    docs["index.json"] = json.dumps({"source": source, "events": index}, indent=2, sort_keys=True) + "\n"
    return docs


def stale_schema_files(out_dir: Path) -> list[str]:
    """Files in ``out_dir`` that differ from (or are missing against, or are extra to) the models."""
    wanted = schema_documents()
    stale = [name for name, text in wanted.items() if _read(out_dir / name) != text]
    if out_dir.is_dir():
        stale += sorted(p.name for p in out_dir.glob("*.json") if p.name not in wanted)
    return sorted(stale)


def export_schemas(out_dir: Path) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = schema_documents()
    for name, text in wanted.items():
        path = out_dir / name
        if _read(path) != text:
            path.write_text(text)
    removed = [p for p in out_dir.glob("*.json") if p.name not in wanted]
    for p in removed:
        p.unlink()
    return sorted(wanted)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


# --- local invoke ------------------------------------------------------------------------------


@dataclass
class LocalLambdaContext:
    """What the Lambda runtime's context offers (the attributes Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int = 512
    timeout_s: int = 30
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{get_settings().aws_region}:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def sample_path(root: Path, function: str, sample: str) -> Path:
    candidate = Path(sample)
    if candidate.suffix == ".json" and candidate.exists():
        return candidate
    path = root / "events" / "samples" / function / f"{sample.removesuffix('.json')}.json"
    if not path.exists():
        available = sorted(p.stem for p in (root / "events" / "samples" / function).glob("*.json"))
        raise SystemExit(f"no sample {sample!r} for {function}; available: {', '.join(available) or 'none'}")
    return path


def invoke(root: Path, function: str, sample: str) -> Any:
    """Load ``functions/<function>/<module>.py`` by path (as Lambda does) and call its handler."""
    try:
        fn = catalog_function(function)
    except KeyError:
        raise SystemExit(f"no function {function!r} in infra/catalog.py") from None
    handler_setting, memory, timeout = fn.handler, fn.memory_mb, fn.timeout_s
    module_name, _, attr = handler_setting.rpartition(".")
    module_path = root / "functions" / function / f"{module_name}.py"
    if not module_path.exists():
        raise SystemExit(f"no function {function!r} ({module_path} missing)")
    event = json.loads(sample_path(root, function, sample).read_text())
    name = f"chatflow_fn_{function}"
    module = sys.modules.get(name)  # a warm container keeps its module
    if module is None:
        spec = importlib.util.spec_from_file_location(name, module_path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    context = LocalLambdaContext(
        function_name=f"chatflow-{function}", memory_limit_in_mb=memory, timeout_s=timeout
    )
    return getattr(module, attr)(event, context)


# --- redrive -----------------------------------------------------------------------------------


@dataclass
class RedriveResult:
    received: int = 0
    redriven: int = 0
    invalid: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "redriven": self.redriven,
            "invalid": self.invalid,
            "failed": self.failed,
            "errors": self.errors[:10],
        }


def envelope_to_entry(envelope: dict[str, Any], bus_name: str) -> dict[str, Any]:
    """A PutEvents entry re-creating a dead-lettered event (same source, detail-type, detail).

    Accepts what either dead-letter queue holds: the event itself (EventBridge target DLQ) or a
    Lambda async-invoke failure record whose ``requestPayload`` is the event.

    The detail is validated first (InvalidEvent: it stays in the DLQ); its event_id is kept, so
    consumers that already applied it ignore the redriven copy.
    """
    if "requestPayload" in envelope and "detail" not in envelope:
        # A Lambda async-invoke failure record (on-failure destination queue): the event is the
        # payload of the failed invocation.
        payload = envelope["requestPayload"]
        envelope = payload if isinstance(payload, dict) else {}
    detail = envelope.get("detail")
    detail_type = envelope.get("detail-type")
    source = envelope.get("source")
    if not isinstance(detail_type, str) or not isinstance(source, str) or not isinstance(detail, dict):
        raise InvalidEvent("dead letter is not an EventBridge event envelope")
    parse_detail(detail_type, detail)
    entry: dict[str, Any] = {
        "Source": source,
        "DetailType": detail_type,
        "Detail": json.dumps(detail, separators=(",", ":")),
        "EventBusName": bus_name,
    }
    if isinstance(envelope.get("time"), str):
        entry["Time"] = datetime.fromisoformat(envelope["time"].replace("Z", "+00:00"))
    return entry


def redrive_sqs(
    sqs: SQSClient,
    events: EventBridgeClient,
    queue_url: str,
    *,
    bus_name: str,
    max_messages: int = 1000,
    wait_s: int = 1,
) -> RedriveResult:
    """Move messages of an EventBridge target DLQ back onto the bus, then delete them.

    A message is deleted only after PutEvents accepted its event; messages that are not valid
    events stay (and are reported). Re-put events reach every matching rule again: consumers
    are idempotent on event_id, so only the target that missed it acts.
    """
    result = RedriveResult()
    while result.received < max_messages:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, max_messages - result.received),
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=60,
        ).get("Messages", [])
        if not batch:
            break
        result.received += len(batch)
        entries: list[dict[str, Any]] = []
        handles: list[str] = []
        for message in batch:
            try:
                entries.append(envelope_to_entry(json.loads(message.get("Body", "")), bus_name))
                handles.append(message["ReceiptHandle"])
            except (ValueError, InvalidEvent) as exc:
                result.invalid += 1
                result.errors.append(f"{message.get('MessageId')}: {exc}")
        if not entries:
            continue
        response = events.put_events(Entries=entries)  # type: ignore[arg-type]
        done: list[str] = []
        for handle, outcome in zip(handles, response.get("Entries", []), strict=False):
            if outcome.get("EventId") and not outcome.get("ErrorCode"):
                done.append(handle)
            else:
                result.failed += 1
                result.errors.append(f"{outcome.get('ErrorCode')}: {outcome.get('ErrorMessage')}")
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
            )
        result.redriven += len(done)
    return result


# --- replay ------------------------------------------------------------------------------------


def start_replay(
    events: EventBridgeClient,
    *,
    archive_arn: str,
    bus_arn: str,
    start: datetime,
    end: datetime,
    name: str | None = None,
    rule_arns: Sequence[str] = (),
    wait_timeout_s: float = 600,
    poll_s: float = 2.0,
) -> dict[str, Any]:
    """Start a replay of the archive's events in [start, end) onto the bus and wait for it."""
    name = name or f"replay-{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
    destination: dict[str, Any] = {"Arn": bus_arn}
    if rule_arns:
        destination["FilterArns"] = list(rule_arns)
    events.start_replay(
        ReplayName=name,
        EventSourceArn=archive_arn,
        EventStartTime=start,
        EventEndTime=end,
        Destination=destination,  # type: ignore[arg-type]
    )
    deadline = time.monotonic() + wait_timeout_s
    while True:
        described = events.describe_replay(ReplayName=name)
        state = described.get("State")
        if state in ("COMPLETED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            return {"ReplayName": name, "State": state, "StateReason": described.get("StateReason", "")}
        time.sleep(poll_s)


# --- CLI ---------------------------------------------------------------------------------------


def _events_client(settings: Settings) -> EventBridgeClient:
    """A full botocore ``events`` client (redrive, replay, describe): operator commands, not the
    functions' cold path (they use the lean client, ``make_events_client``)."""
    import botocore.session
    from botocore.config import Config

    client = botocore.session.get_session().create_client(
        "events",
        region_name=settings.aws_region,
        endpoint_url=settings.events_endpoint_url or settings.aws_endpoint_url,
        config=Config(
            connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 1, "mode": "standard"}
        ),
    )
    return cast("EventBridgeClient", client)


def _parse_time(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatflow_dev.events", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: cwd)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export-schemas", help="write events/schemas from the models")
    p.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    p = sub.add_parser("invoke", help="invoke a function with a sample event")
    p.add_argument("function")
    p.add_argument("sample")
    sub.add_parser("sweep", help="send due outbox rows now")
    p = sub.add_parser("redrive", help="dead letters back onto the bus")
    p.add_argument("--queue-url", required=True, help="a rule target's DLQ or a function's on-failure queue")
    p.add_argument("--max", type=int, default=1000)
    p = sub.add_parser("replay", help="replay archived events onto the bus")
    p.add_argument("--archive-arn", required=True)
    p.add_argument("--bus-arn", required=True)
    p.add_argument("--start", required=True, type=_parse_time, help="ISO time (UTC if no offset)")
    p.add_argument("--end", required=True, type=_parse_time)
    p.add_argument("--rule-arn", action="append", default=[], help="replay only to these rules")
    p.add_argument("--name")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()

    if args.command == "export-schemas":
        out = root / "events" / "schemas"
        if args.check:
            stale = stale_schema_files(out)
            if stale:
                print(f"stale event schemas in {out}: {', '.join(stale)}")
                print("run: python -m chatflow_dev.events export-schemas")
                return 1
            print("event schemas up to date")
            return 0
        names = export_schemas(out)
        print(f"wrote {len(names)} files to {out}")
        return 0
    if args.command == "invoke":
        result = invoke(root, args.function, args.sample)
        print(json.dumps(result, indent=2, default=str))
        return 0
    settings = get_settings()
    if args.command == "sweep":
        from chatflow.container import Container

        if not settings.event_bus_configured:
            print("no EventBridge endpoint configured (set EVENTS_ENDPOINT_URL locally); nothing sent")
            return 2
        container = Container(settings)
        try:
            relay = container.sweep_relay
            relay_result = relay.drain()
            backlog = relay.backlog()
        finally:
            container.close()
        print(json.dumps({**relay_result.__dict__, "pending": backlog.pending}, indent=2, default=str))
        return 0 if not relay_result.failed else 2
    if args.command == "redrive":
        import boto3

        sqs = boto3.client("sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
        redriven = redrive_sqs(
            sqs,
            _events_client(settings),
            args.queue_url,
            bus_name=settings.event_bus_name,
            max_messages=args.max,
        )
        print(json.dumps(redriven.to_dict(), indent=2))
        return 0 if not (redriven.failed or redriven.invalid) else 2
    if args.command == "replay":
        replay = start_replay(
            _events_client(settings),
            archive_arn=args.archive_arn,
            bus_arn=args.bus_arn,
            start=args.start,
            end=args.end,
            name=args.name,
            rule_arns=args.rule_arn,
        )
        print(json.dumps(replay, indent=2, default=str))
        return 0 if replay["State"] == "COMPLETED" else 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
