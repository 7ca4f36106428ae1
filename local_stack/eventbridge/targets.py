"""Rule targets of the local bus: what they are (from the ARN), what they receive (Input, InputPath,
InputTransformer) and how a failed delivery is classified for retries and the DLQ.

Kinds, by ARN (PutTargets accepts any ARN; a target that does not exist fails at delivery with
``NO_RESOURCE`` and goes straight to the DLQ, as EventBridge does for a missing resource):

* ``arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]`` -- a local function, handed to
  Lambda asynchronously (local_stack.lambda_async);
* ``arn:aws:sqs:<region>:<account>:<queue>`` -- a local queue (local_stack.sqs);
* ``arn:aws:events:<region>:<account>:api-destination/<name>/<id>`` -- an HTTP endpoint
  (local_stack.eventbridge.api_destinations).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from local_stack.aws_errors import AwsError

#: EventBridge's defaults when PutTargets gives no RetryPolicy.
DEFAULT_MAX_RETRY_ATTEMPTS = 185
DEFAULT_MAX_EVENT_AGE_S = 86400


@dataclass(frozen=True)
class TargetRetryPolicy:
    """EventBridge's per-target RetryPolicy (delivery to the target, not the target's own work)."""

    maximum_retry_attempts: int = DEFAULT_MAX_RETRY_ATTEMPTS
    maximum_event_age_s: float = float(DEFAULT_MAX_EVENT_AGE_S)


@dataclass(frozen=True)
class InputTransformer:
    input_paths: dict[str, str]
    template: str


@dataclass(frozen=True)
class Target:
    id: str
    arn: str
    retry: TargetRetryPolicy = field(default_factory=TargetRetryPolicy)
    dead_letter_arn: str | None = None
    input: str | None = None
    input_path: str | None = None
    input_transformer: InputTransformer | None = None
    #: API destinations: extra headers and query string (PutTargets ``HttpParameters``).
    http_headers: dict[str, str] = field(default_factory=dict)
    http_query: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``lambda``, ``sqs``, ``api-destination`` or ``unsupported``."""
        parts = self.arn.split(":", 5)
        if len(parts) == 6 and parts[2] == "lambda" and parts[5].startswith("function:"):
            return "lambda"
        if len(parts) == 6 and parts[2] == "sqs":
            return "sqs"
        if len(parts) == 6 and parts[2] == "events" and parts[5].startswith("api-destination/"):
            return "api-destination"
        return "unsupported"

    @property
    def function(self) -> str | None:
        """The function name of a Lambda target (qualifier dropped)."""
        if self.kind != "lambda":
            return None
        return self.arn.split(":", 5)[5].split(":")[1]

    @property
    def resource_name(self) -> str:
        """Queue name (SQS), API destination name, or function name."""
        tail = self.arn.split(":", 5)[-1]
        if self.kind == "api-destination":
            return tail.split("/")[1]
        return self.function or tail

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Id": self.id,
            "Arn": self.arn,
            "RetryPolicy": {
                "MaximumRetryAttempts": self.retry.maximum_retry_attempts,
                "MaximumEventAgeInSeconds": int(self.retry.maximum_event_age_s),
            },
        }
        if self.dead_letter_arn:
            out["DeadLetterConfig"] = {"Arn": self.dead_letter_arn}
        if self.input is not None:
            out["Input"] = self.input
        if self.input_path is not None:
            out["InputPath"] = self.input_path
        if self.input_transformer is not None:
            out["InputTransformer"] = {
                "InputPathsMap": dict(self.input_transformer.input_paths),
                "InputTemplate": self.input_transformer.template,
            }
        if self.http_headers or self.http_query:
            out["HttpParameters"] = {
                "HeaderParameters": dict(self.http_headers),
                "QueryStringParameters": dict(self.http_query),
            }
        return out


class DeliveryError(Exception):
    """A delivery attempt failed; ``code`` is what the DLQ message's ERROR_CODE attribute says."""

    def __init__(self, code: str, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retriable = retriable


# --- input ------------------------------------------------------------------------------------

_PATH_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def json_path(document: Any, path: str) -> Any:
    """The value at a JSONPath like ``$``, ``$.detail.room_id`` or ``$.resources[0]`` (the subset
    EventBridge's InputPath and InputPathsMap use); None when absent."""
    if not path.startswith("$"):
        raise AwsError(f"Invalid InputPath for target: {path}")
    value = document
    position = 1
    while position < len(path):
        match = _PATH_PART.match(path, position)
        if match is None:
            raise AwsError(f"Invalid InputPath for target: {path}")
        key, index = match.groups()
        if key is not None:
            value = value.get(key) if isinstance(value, dict) else None
        else:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        position = match.end()
    return value


_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def _transform(transformer: InputTransformer, event: dict[str, Any], rule_name: str, rule_arn: str) -> str:
    """InputTemplate with ``<name>`` replaced: inside a JSON string the raw text, elsewhere the JSON
    value (strings quoted) -- as EventBridge's input transformer does."""
    values: dict[str, Any] = {name: json_path(event, path) for name, path in transformer.input_paths.items()}
    values.update(
        {
            "aws.events.rule-name": rule_name,
            "aws.events.rule-arn": rule_arn,
            "aws.events.event": event,
            "aws.events.event.json": event,
            "aws.events.event.ingestion-time": event.get("time"),
        }
    )
    template = transformer.template
    out: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in values:
            continue
        value = values[name]
        in_string = template[: match.start()].count('"') % 2 == 1
        if in_string:
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        else:
            text = json.dumps(value, separators=(",", ":"))
        out.append(template[last : match.start()])
        out.append(text if value is not None or in_string else "null")
        last = match.end()
    out.append(template[last:])
    return "".join(out)


def target_input(target: Target, event: dict[str, Any], rule_name: str, rule_arn: str) -> Any:
    """What the target receives: the event, a constant (Input), a part of it (InputPath), or the
    transformer's text (a JSON value when it parses as JSON, else the plain text)."""
    if target.input is not None:
        return json.loads(target.input)
    if target.input_path is not None:
        return json_path(event, target.input_path)
    if target.input_transformer is not None:
        text = _transform(target.input_transformer, event, rule_name, rule_arn)
        try:
            return json.loads(text)
        except ValueError:
            return text
    return event


def parse_targets(raw: Any) -> list[Target]:
    """PutTargets ``Targets`` -> :class:`Target` list; AwsError (ValidationException) when invalid."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= 10:
        raise AwsError(
            "1 validation error detected: Value at 'targets' failed to satisfy constraint: "
            "Member must have length between 1 and 10"
        )
    out: list[Target] = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("Id"), str)
            or not isinstance(item.get("Arn"), str)
        ):
            raise AwsError("Each target needs an Id and an Arn.")
        if not re.fullmatch(r"[\.\-_A-Za-z0-9]{1,64}", item["Id"]):
            raise AwsError(
                f"Parameter Id is not valid. Reason: {item['Id']!r} must match [\\.\\-_A-Za-z0-9]+ (1-64)."
            )
        given = [k for k in ("Input", "InputPath", "InputTransformer") if item.get(k) is not None]
        if len(given) > 1:
            raise AwsError("Only one of Input, InputPath, or InputTransformer must be provided.")
        if item.get("Input") is not None:
            try:
                json.loads(item["Input"])
            except (TypeError, ValueError):
                raise AwsError("Parameter Input is not valid. Reason: Input must be valid JSON.") from None
        retry_raw = item.get("RetryPolicy") or {}
        attempts = retry_raw.get("MaximumRetryAttempts", DEFAULT_MAX_RETRY_ATTEMPTS)
        age = retry_raw.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S)
        if not (isinstance(attempts, int) and 0 <= attempts <= 185):
            raise AwsError("Parameter MaximumRetryAttempts is not valid. Reason: must be between 0 and 185.")
        if not (isinstance(age, int) and 60 <= age <= 86400):
            raise AwsError(
                "Parameter MaximumEventAgeInSeconds is not valid. Reason: must be between 60 and 86400."
            )
        transformer = None
        if isinstance(item.get("InputTransformer"), dict):
            raw_t = item["InputTransformer"]
            if not isinstance(raw_t.get("InputTemplate"), str):
                raise AwsError("InputTransformer needs an InputTemplate.")
            transformer = InputTransformer(dict(raw_t.get("InputPathsMap") or {}), raw_t["InputTemplate"])
        http = item.get("HttpParameters") or {}
        out.append(
            Target(
                id=item["Id"],
                arn=item["Arn"],
                retry=TargetRetryPolicy(attempts, float(age)),
                dead_letter_arn=(item.get("DeadLetterConfig") or {}).get("Arn"),
                input=item.get("Input"),
                input_path=item.get("InputPath"),
                input_transformer=transformer,
                http_headers={str(k): str(v) for k, v in (http.get("HeaderParameters") or {}).items()},
                http_query={str(k): str(v) for k, v in (http.get("QueryStringParameters") or {}).items()},
            )
        )
    return out
