"""The local AWS endpoint: one port for the AWS APIs the stack emulates besides API Gateway (like
LocalStack's edge port) -- EventBridge and SQS (AWS JSON protocol, dispatched on ``X-Amz-Target``)
and the Lambda REST API -- so ``AWS_ENDPOINT_URL=<it>`` makes every boto3 client of the project
and of a tester's script talk to the local stack.

Every request is SigV4-verified for the service it calls (``events``, ``sqs``, ``lambda``;
local_stack.sigv4) unless verification is off; errors are rendered as each protocol does:

* AWS JSON (EventBridge, SQS): ``{"__type": code, "message": ...}``, status 400 for client errors
  (signature errors included, as AWS JSON services answer them);
* REST (Lambda, API Gateway's @connections): ``x-amzn-ErrorType: code`` + ``{"message": ...}``,
  status 403 for signature errors.

``/_local/...`` paths are local inspection helpers (no AWS API, no signature).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from local_stack.aws_errors import AwsError
from local_stack.sigv4 import SignatureError, SignedRequest, SigV4Config, verify

log = logging.getLogger("local_stack.aws")

#: Above the 256 KB PutEvents / SQS limits so the services, not aiohttp, answer oversize requests.
MAX_BODY = 2 * 1024 * 1024


class JsonService(Protocol):
    """An AWS JSON-protocol service: its ``X-Amz-Target`` prefix, SigV4 name and operations."""

    target_prefix: str
    signing_name: str
    content_type: str

    def operation(self, name: str) -> Callable[[dict[str, Any]], Any] | None: ...


def json_error(
    status: int, code: str, message: str, content_type: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"__type": code, "message": message}).encode(),
        content_type=content_type,
        headers=headers,
    )


def rest_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    # botocore's rest-json parser takes the code from this header and the message from the body.
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": code, **(headers or {})}
    )


async def signed_request(request: web.Request) -> SignedRequest:
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
    return SignedRequest(
        request.method,
        request.rel_url.raw_path,
        request.rel_url.raw_query_string,
        headers,
        await request.read(),
    )


#: ``(request) -> (signing service, "json" | "rest")``, or None for requests not checked.
ServiceOf = Callable[[web.Request], tuple[str, str] | None]


def sigv4_middleware(config: SigV4Config, service_of: ServiceOf) -> Any:
    """An aiohttp middleware answering unsigned or badly signed requests as AWS does."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        found = service_of(request)
        if found is None:
            return await handler(request)
        service, style = found
        try:
            verify(await signed_request(request), service=service, config=config)
        except SignatureError as exc:
            log.warning(
                "%s %s refused: %s %s", request.method, request.path, exc.code, exc.message.split("\n")[0]
            )
            if style == "rest":
                return rest_error(403, exc.code, exc.message)
            return json_error(400, exc.code, exc.message, "application/x-amz-json-1.1")
        return await handler(request)

    return middleware


class AwsEndpoint:
    """The aiohttp application hosting the JSON services (and optionally more routes)."""

    def __init__(self, services: list[JsonService], *, sigv4: SigV4Config | None = None) -> None:
        self.services = {s.target_prefix: s for s in services}
        self.sigv4 = sigv4
        self.requests = 0
        #: Extra REST routes: (path prefix, signing name) checked for SigV4 (e.g. Lambda's).
        self.rest_prefixes: list[tuple[str, str]] = []

    def service_of(self, request: web.Request) -> tuple[str, str] | None:
        if request.path.startswith("/_local/"):
            return None
        for prefix, signing_name in self.rest_prefixes:
            if request.path.startswith(prefix):
                return signing_name, "rest"
        service = self._service(request.headers.get("X-Amz-Target", ""))
        return (service.signing_name, "json") if service is not None else None

    def _service(self, target: str) -> JsonService | None:
        for prefix, service in self.services.items():
            if target.startswith(prefix):
                return service
        return None

    def app(self) -> web.Application:
        middlewares = [] if self.sigv4 is None else [sigv4_middleware(self.sigv4, self.service_of)]
        app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
        app.router.add_post("/", self._dispatch)
        return app

    async def _dispatch(self, request: web.Request) -> web.Response:
        self.requests += 1
        target = request.headers.get("X-Amz-Target", "")
        service = self._service(target)
        content_type = service.content_type if service else "application/x-amz-json-1.1"
        if service is None:
            return json_error(
                400, "UnknownOperationException", "Missing or unknown X-Amz-Target header", content_type
            )
        operation = service.operation(target[len(service.target_prefix) :])
        if operation is None:
            return json_error(
                400, "UnknownOperationException", f"Operation {target} is not supported locally", content_type
            )
        try:
            params = json.loads(await request.read() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return json_error(400, "SerializationException", "Request body is not valid JSON", content_type)
        if not isinstance(params, dict):
            return json_error(
                400, "SerializationException", "Request body must be a JSON object", content_type
            )
        try:
            result = operation(params)
            if inspect.isawaitable(result):
                result = await result
        except AwsError as exc:
            return json_error(exc.status, exc.code, exc.message, content_type, exc.headers)
        return web.Response(status=200, body=json.dumps(result).encode(), content_type=content_type)
