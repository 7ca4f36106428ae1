"""Lambda REQUEST authorizers as API Gateway runs them: identity sources, result cache, IAM policy
evaluation (WebSocket) and simple or policy responses (HTTP API, payload 2.0).

Result cache: HTTP API authorizers only, per identity-source values for ``cache_ttl_s``; WebSocket
authorizers are never cached (API Gateway has no TTL setting for them).

Outcomes as API Gateway: an identity source missing -> 401 without calling the function; the
function raising ``Exception("Unauthorized")`` -> 401; a Deny (or no Allow) -> 403; any other
failure, or a context holding objects/arrays -> 500.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.catalog import Authorizer
from local_stack.lambda_runtime import FunctionError

log = logging.getLogger("local_stack.authorizer")

#: API Gateway's limit on an authorizer's answer.
MAX_AUTHORIZER_RESULT_BYTES = 8 * 1024
#: Cached answers kept per authorizer; beyond it expired ones go, then the oldest (a miss only
#: costs one more authorizer call), so a long session with many tokens stays small.
MAX_CACHED_ANSWERS = 1024


@dataclass(frozen=True)
class AuthorizerDecision:
    status: int  # 200 allowed, else 401 / 403 / 500
    #: What API Gateway hands to the integration (requestContext.authorizer / .authorizer.lambda).
    context: dict[str, Any] | None = None
    principal_id: str | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


def identity_values(
    sources: tuple[str, ...], headers: Mapping[str, str], query: Mapping[str, str]
) -> list[str] | None:
    """Values of the identity sources, or None when one is missing or empty (-> 401)."""
    lower_headers = {k.lower(): v for k, v in headers.items()}
    values: list[str] = []
    for source in sources:
        src = source.removeprefix("route.request.").removeprefix("$request.")
        if src.startswith("header."):
            value = lower_headers.get(src.removeprefix("header.").lower())
        elif src.startswith("querystring."):
            value = query.get(src.removeprefix("querystring."))
        else:
            raise ValueError(f"unsupported identity source {source!r}")
        if not value:
            return None
        values.append(value)
    return values


def _resource_matches(pattern: str, arn: str) -> bool:
    return pattern == "*" or fnmatch.fnmatchcase(arn, pattern)


def policy_allows(policy: Any, resource_arn: str) -> bool:
    """IAM evaluation for execute-api:Invoke on one ARN: an explicit Deny wins, else an Allow is needed."""
    if not isinstance(policy, dict):
        return False
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        if not isinstance(statement, dict):
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("*", "execute-api:*", "execute-api:Invoke") for a in actions):
            continue
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if not any(_resource_matches(r, resource_arn) for r in resources):
            continue
        effect = str(statement.get("Effect", "")).lower()
        if effect == "deny":
            return False
        if effect == "allow":
            allowed = True
    return allowed


def _flat_context(raw: Any) -> dict[str, Any] | None:
    """API Gateway accepts only string/number/boolean context values (None if invalid)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        return None
    for value in raw.values():
        if isinstance(value, dict | list):
            return None
    return dict(raw)


Invoke = Callable[[str, dict[str, Any]], Awaitable[Any]]


class AuthorizerRunner:
    """Runs one catalog authorizer with API Gateway's result cache (keyed by identity values)."""

    def __init__(self, authorizer: Authorizer, invoke: Invoke, *, kind: str) -> None:
        assert kind in ("websocket", "http")
        self.authorizer = authorizer
        self.kind = kind
        self._invoke = invoke
        self._cache: dict[tuple[str, ...], tuple[float, Any]] = {}
        self.invocations = 0

    @property
    def effective_ttl_s(self) -> int:
        """The cache TTL API Gateway applies: HTTP API authorizers only (no setting for WebSocket)."""
        return self.authorizer.cache_ttl_s if self.kind == "http" else 0

    def clear_cache(self) -> None:
        self._cache.clear()

    async def decide(
        self, identity: list[str], event: dict[str, Any], resource_arn: str
    ) -> AuthorizerDecision:
        key = tuple(identity)
        # API Gateway caches Lambda authorizer results for HTTP APIs only
        # (AuthorizerResultTtlInSeconds: "Supported only for HTTP API Lambda authorizers"):
        # a WebSocket $connect always calls the function, whatever the catalog says.
        ttl = self.effective_ttl_s
        cached = self._cache.get(key) if ttl > 0 else None
        latency_ms = 0
        if cached is not None and cached[0] > time.monotonic():
            result = cached[1]
        else:
            self.invocations += 1
            started = time.perf_counter()
            try:
                result = await self._invoke(self.authorizer.function, event)
            except FunctionError as exc:
                if exc.message == "Unauthorized":
                    return AuthorizerDecision(401)
                log.warning("authorizer %s failed: %s", self.authorizer.name, exc)
                return AuthorizerDecision(500)
            latency_ms = round((time.perf_counter() - started) * 1000)
            if ttl > 0:
                self._remember(key, result, ttl)
        return self._evaluate(result, resource_arn, latency_ms)

    def _remember(self, key: tuple[str, ...], result: Any, ttl: int) -> None:
        now = time.monotonic()
        self._cache.pop(key, None)  # re-inserted last: the dict's order is the expiry order
        if len(self._cache) >= MAX_CACHED_ANSWERS:
            for stale in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                del self._cache[stale]
            while len(self._cache) >= MAX_CACHED_ANSWERS:
                del self._cache[next(iter(self._cache))]
        self._cache[key] = (now + ttl, result)

    def _evaluate(self, result: Any, resource_arn: str, latency_ms: int) -> AuthorizerDecision:
        if not isinstance(result, dict) or len(json.dumps(result)) > MAX_AUTHORIZER_RESULT_BYTES:
            log.warning("authorizer %s: malformed or oversized answer", self.authorizer.name)
            return AuthorizerDecision(500)
        context = _flat_context(result.get("context"))
        if context is None:
            log.warning(
                "authorizer %s: context values must be strings, numbers or booleans", self.authorizer.name
            )
            return AuthorizerDecision(500)
        if self.kind == "http" and "isAuthorized" in result:  # HTTP API simple response
            if result.get("isAuthorized") is not True:
                return AuthorizerDecision(403)
            return AuthorizerDecision(200, context)
        if "policyDocument" not in result or "principalId" not in result:
            log.warning("authorizer %s: answer lacks principalId/policyDocument", self.authorizer.name)
            return AuthorizerDecision(500)
        if not policy_allows(result["policyDocument"], resource_arn):
            return AuthorizerDecision(403)
        principal = str(result["principalId"])
        if self.kind == "websocket":
            # What WebSocket events carry in requestContext.authorizer (REST-style, not 2.0's
            # "lambda" object): the principal, the authorizer's latency, then its context.
            ws_context = {"principalId": principal, "integrationLatency": latency_ms, **context}
            return AuthorizerDecision(200, ws_context, principal)
        return AuthorizerDecision(200, context, principal)
