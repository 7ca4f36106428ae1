"""EventBridge API destinations: rule targets that are HTTP endpoints (CreateConnection +
CreateApiDestination, then PutTargets with the API destination's ARN).

Delivery as EventBridge documents it ("API destinations" in the EventBridge user guide): the
target input as the JSON body (``Content-Type: application/json; charset=utf-8``, ``User-Agent:
Amazon/EventBridge/ApiDestinations``), the connection's authorization (API key header or Basic)
and invocation parameters, the target's HttpParameters, a 5-second timeout. Responses 401, 407,
409, 429 and 5xx (and connection failures) are retried by the target's RetryPolicy; any other
non-2xx goes to the DLQ at once. OAuth client-credential connections are not emulated
(CreateConnection says so).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from local_stack.aws_errors import AwsError
from local_stack.eventbridge.targets import DeliveryError, Target

TIMEOUT_S = 5.0
_RETRIED_STATUSES = frozenset({401, 407, 409, 429})
_NAME = re.compile(r"[\.\-_A-Za-z0-9]{1,64}")
_METHODS = ("POST", "GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE")


@dataclass
class Connection:
    name: str
    arn: str
    authorization_type: str
    headers: dict[str, str]
    query: dict[str, str]
    created_at: float
    description: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "ConnectionArn": self.arn,
            "Name": self.name,
            "Description": self.description,
            "ConnectionState": "AUTHORIZED",
            "AuthorizationType": self.authorization_type,
            "CreationTime": self.created_at,
            "LastModifiedTime": self.created_at,
        }


@dataclass
class ApiDestination:
    name: str
    arn: str
    connection_arn: str
    endpoint: str
    method: str
    created_at: float
    description: str = ""
    rate_limit: int = 300

    def describe(self) -> dict[str, Any]:
        return {
            "ApiDestinationArn": self.arn,
            "Name": self.name,
            "Description": self.description,
            "ApiDestinationState": "ACTIVE",
            "ConnectionArn": self.connection_arn,
            "InvocationEndpoint": self.endpoint,
            "HttpMethod": self.method,
            "InvocationRateLimitPerSecond": self.rate_limit,
            "CreationTime": self.created_at,
            "LastModifiedTime": self.created_at,
        }


@dataclass
class ApiDestinations:
    """Connections and API destinations of one account and region."""

    region: str
    account: str
    connections: dict[str, Connection] = field(default_factory=dict)
    destinations: dict[str, ApiDestination] = field(default_factory=dict)

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:events:{self.region}:{self.account}:{kind}/{name}/{uuid.uuid4()}"

    def create_connection(self, params: dict[str, Any], now: float) -> Connection:
        name = _name(params)
        if name in self.connections:
            raise AwsError(f"Connection {name} already exists.", code="ResourceAlreadyExistsException")
        kind = params.get("AuthorizationType")
        auth = params.get("AuthParameters") or {}
        headers: dict[str, str] = {}
        if kind == "API_KEY":
            key = auth.get("ApiKeyAuthParameters") or {}
            if not key.get("ApiKeyName") or key.get("ApiKeyValue") is None:
                raise AwsError("ApiKeyAuthParameters needs ApiKeyName and ApiKeyValue.")
            headers[str(key["ApiKeyName"])] = str(key["ApiKeyValue"])
        elif kind == "BASIC":
            basic = auth.get("BasicAuthParameters") or {}
            if not basic.get("Username") or basic.get("Password") is None:
                raise AwsError("BasicAuthParameters needs Username and Password.")
            token = base64.b64encode(f"{basic['Username']}:{basic['Password']}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif kind == "OAUTH_CLIENT_CREDENTIALS":
            raise AwsError(
                "OAUTH_CLIENT_CREDENTIALS connections are not emulated by the local stack; "
                "use API_KEY or BASIC."
            )
        else:
            raise AwsError(
                "Parameter AuthorizationType is not valid. Reason: must be API_KEY, BASIC or "
                "OAUTH_CLIENT_CREDENTIALS."
            )
        invocation = auth.get("InvocationHttpParameters") or {}
        headers.update({str(p["Key"]): str(p["Value"]) for p in invocation.get("HeaderParameters") or []})
        query = {str(p["Key"]): str(p["Value"]) for p in invocation.get("QueryStringParameters") or []}
        connection = Connection(
            name,
            self._arn("connection", name),
            kind,
            headers,
            query,
            now,
            str(params.get("Description") or ""),
        )
        self.connections[name] = connection
        return connection

    def connection(self, name: str) -> Connection:
        try:
            return self.connections[name]
        except KeyError:
            raise AwsError(
                f"Failed to describe the connection(s). Connection '{name}' does not exist.",
                code="ResourceNotFoundException",
            ) from None

    def delete_connection(self, name: str) -> Connection:
        connection = self.connection(name)
        if any(d.connection_arn == connection.arn for d in self.destinations.values()):
            raise AwsError("Connection is in use by an API destination.", code="ResourceConflictException")
        return self.connections.pop(name)

    def create_destination(self, params: dict[str, Any], now: float) -> ApiDestination:
        name = _name(params)
        if name in self.destinations:
            raise AwsError(
                f"An api-destination '{name}' already exists.", code="ResourceAlreadyExistsException"
            )
        connection_arn = params.get("ConnectionArn")
        if not any(c.arn == connection_arn for c in self.connections.values()):
            raise AwsError(f"Connection '{connection_arn}' does not exist.", code="ResourceNotFoundException")
        endpoint = params.get("InvocationEndpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise AwsError("Parameter InvocationEndpoint is not valid. Reason: must be an http(s) URL.")
        method = params.get("HttpMethod")
        if method not in _METHODS:
            raise AwsError(
                f"Parameter HttpMethod is not valid. Reason: must be one of {', '.join(_METHODS)}."
            )
        destination = ApiDestination(
            name,
            self._arn("api-destination", name),
            str(connection_arn),
            endpoint,
            str(method),
            now,
            str(params.get("Description") or ""),
            int(params.get("InvocationRateLimitPerSecond") or 300),
        )
        self.destinations[name] = destination
        return destination

    def destination(self, name: str) -> ApiDestination:
        try:
            return self.destinations[name]
        except KeyError:
            raise AwsError(
                f"An api-destination '{name}' does not exist.", code="ResourceNotFoundException"
            ) from None

    def deliver(self, target: Target, payload: Any) -> None:
        """POST (or the destination's method) ``payload`` to the endpoint; DeliveryError on failure."""
        destination = self.destinations.get(target.resource_name)
        connection = next(
            (c for c in self.connections.values() if destination and c.arn == destination.connection_arn),
            None,
        )
        if destination is None or destination.arn != target.arn or connection is None:
            raise DeliveryError(
                "NO_RESOURCE", f"API destination {target.arn} does not exist.", retriable=False
            )
        query = {**connection.query, **target.http_query}
        url = destination.endpoint
        if query:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Amazon/EventBridge/ApiDestinations",
            **connection.headers,
            **target.http_headers,
        }
        request = urllib.request.Request(  # noqa: S310 - the scheme was checked at creation
            url,
            data=None if destination.method in ("GET", "HEAD") else body,
            method=destination.method,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S):  # noqa: S310
                return
        except urllib.error.HTTPError as exc:
            retriable = exc.code in _RETRIED_STATUSES or exc.code >= 500
            raise DeliveryError(
                "SDK_CLIENT_ERROR",
                f"Unable to invoke ApiDestination endpoint: The endpoint returned {exc.code}.",
                retriable=retriable,
            ) from None
        except TimeoutError:
            raise DeliveryError("TIMEOUT", "Unable to invoke ApiDestination endpoint: timed out.") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError(
                "CONNECTION_FAILURE", f"Unable to invoke ApiDestination endpoint: {exc}."
            ) from None


def _name(params: dict[str, Any]) -> str:
    name = params.get("Name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AwsError(
            "Parameter Name is not valid. Reason: must match [\\.\\-_A-Za-z0-9]+ (1-64 characters)."
        )
    return name
