"""The Lambda API (REST) for the local functions, on the local AWS endpoint, for boto3's ``lambda``
client (``endpoint_url`` = the endpoint): what testers need to drive functions directly and to see
Lambda's limits.

* ``Invoke`` (``POST /2015-03-31/functions/{name}/invocations``):
  ``RequestResponse`` runs the function and answers 200 with its result, or 200 with
  ``X-Amz-Function-Error: Unhandled`` and the error payload when it failed; a function whose
  reserved concurrency is in use answers **429 TooManyRequestsException** (``Reason:
  ReservedFunctionConcurrentInvocationLimitExceeded``), without running it. ``Event`` queues the
  event (202) for Lambda's asynchronous handling (retries, on-failure queue: local_stack.lambda_async);
  ``DryRun`` answers 204.
* ``GetFunctionEventInvokeConfig`` (``GET /2019-09-25/functions/{name}/event-invoke-config``) and
  ``GetFunctionConcurrency`` (``GET /2019-09-30/functions/{name}/concurrency``): the catalog's
  ``AsyncInvoke`` and ``reserved_concurrency``, as the CDK app deploys them.

Unknown functions answer 404 ``ResourceNotFoundException``. The function name may be a name, a
function ARN or a partial ARN (``Qualifier`` / ``:alias`` accepted and ignored: one version runs).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from infra.catalog import Function
from local_stack.lambda_async import AsyncLambda, FunctionNotFound, LambdaUnavailable
from local_stack.lambda_runtime import FunctionError, LambdaRuntime, Throttled

INVOKE_PREFIX = "/2015-03-31/functions/"
CONFIG_PREFIX = "/2019-09-25/functions/"
CONCURRENCY_PREFIX = "/2019-09-30/functions/"
#: Signed as service "lambda" on the shared endpoint.
PREFIXES = (INVOKE_PREFIX, CONFIG_PREFIX, CONCURRENCY_PREFIX)


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"Type": "User", "message": message, **extra}
    return web.json_response(body, status=status, headers={"x-amzn-ErrorType": code})


class LambdaApi:
    def __init__(
        self,
        runtime: Callable[[], LambdaRuntime],
        async_lambda: AsyncLambda,
        *,
        failure_queue_arn: Callable[[str], str | None],
        region: str,
        account: str,
    ) -> None:
        self.runtime = runtime
        self.async_lambda = async_lambda
        self.failure_queue_arn = failure_queue_arn
        self.region = region
        self.account = account

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(INVOKE_PREFIX + "{name}/invocations", self._invoke)
        app.router.add_get(CONFIG_PREFIX + "{name}/event-invoke-config", self._event_invoke_config)
        app.router.add_get(CONCURRENCY_PREFIX + "{name}/concurrency", self._concurrency)

    def _arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"

    def _function(self, request: web.Request) -> Function | web.Response:
        raw = request.match_info["name"]
        # my-function, my-function:alias, arn:aws:lambda:...:function:my-function[:alias],
        # 123456789012:function:my-function
        name = raw.split(":function:", 1)[1] if ":function:" in raw else raw
        name = name.split(":", 1)[0]
        if not self.runtime().has(name):
            return _error(404, "ResourceNotFoundException", f"Function not found: {self._arn(name)}")
        return self.runtime().pool(name).fn

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        fn = self._function(request)
        if isinstance(fn, web.Response):
            return fn
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        raw = await request.read()
        try:
            event = json.loads(raw) if raw else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "InvalidRequestContentException", "Could not parse request body into json")
        if kind == "DryRun":
            return web.Response(status=204)
        if kind == "Event":
            try:
                request_id = self.async_lambda.submit(fn.name, event)
            except (FunctionNotFound, LambdaUnavailable) as exc:
                return _error(exc.status, exc.code, exc.message)
            return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
        if kind != "RequestResponse":
            return _error(400, "InvalidParameterValueException", f"Unsupported invocation type {kind}")
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        try:
            result = await self.runtime().invoke(fn.name, event)
        except Throttled as exc:
            return _error(
                429, "TooManyRequestsException", exc.message, Reason=exc.reason, retryAfterSeconds=""
            )
        except FunctionError as exc:
            payload = {
                "errorMessage": exc.message,
                "errorType": exc.error_type,
                "stackTrace": exc.stack_trace,
            }
            return web.json_response(payload, headers={**headers, "X-Amz-Function-Error": "Unhandled"})
        return web.Response(
            body=json.dumps(result).encode(), content_type="application/json", headers=headers
        )

    async def _event_invoke_config(self, request: web.Request) -> web.Response:
        fn = self._function(request)
        if isinstance(fn, web.Response):
            return fn
        config = fn.async_invoke
        if config is None:
            return _error(
                404,
                "ResourceNotFoundException",
                f"The function {self._arn(fn.name)} doesn't have an EventInvokeConfig",
            )
        destination = self.failure_queue_arn(fn.name)
        return web.json_response(
            {
                "FunctionArn": f"{self._arn(fn.name)}:$LATEST",
                "MaximumRetryAttempts": config.max_retry_attempts,
                "MaximumEventAgeInSeconds": config.max_event_age_s,
                "LastModified": datetime.now(UTC).timestamp(),
                "DestinationConfig": {
                    "OnSuccess": {},
                    "OnFailure": {"Destination": destination} if destination else {},
                },
            }
        )

    async def _concurrency(self, request: web.Request) -> web.Response:
        fn = self._function(request)
        if isinstance(fn, web.Response):
            return fn
        if fn.reserved_concurrency is None:
            return web.json_response({})
        return web.json_response({"ReservedConcurrentExecutions": fn.reserved_concurrency})
