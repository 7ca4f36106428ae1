"""The HTTP API: one Powertools ``APIGatewayHttpResolver`` (payload 2.0) serving every route.

Each routes module builds its ``Router`` from the function's services (:class:`HttpServices`,
the container); a new area adds ONE ``include_router`` line in :func:`create_app`.

What the app guarantees for every route (tests/integration/test_http_app.py):
- Errors are ``{"error": {"code", "message"[, "details"]}}``: ChatflowError -> its status;
  request validation -> 422 with the field errors (malformed JSON -> 400 ``malformed_json``);
  unknown path -> 404; known path, other method -> 405 with ``Allow``; body over
  ``settings.max_request_body_bytes`` (Content-Length or the actual body) -> 413; Postgres or
  Redis unreachable -> 503 ``unavailable``; anything else unexpected -> 500 ``internal``, logged
  with its stack trace, never returned.
- Requests that carry an authorizer context are re-checked with ``ensure_active`` BEFORE routing
  (bans, deletions, log-out-everywhere take effect at once even when API Gateway cached the
  authorizer's answer); the verified identity is what ``current_identity`` returns.
- CORS (settings.cors_allow_origin); OpenAPI 3 at ``GET /openapi.json`` with a bearer scheme.
"""

from __future__ import annotations

import base64
import importlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.apigw import header
from chatflow.errors import UNAVAILABLE_RETRY_AFTER_MS, ChatflowError, PayloadTooLarge, dependency_outage
from chatflow.http.context import authorizer_context, checked_identity, identity_from_authorizer
from chatflow.http.services import HttpServices
from chatflow.observability import get_logger
from chatflow.settings import Settings

API_TITLE = "Chatflow HTTP API"
API_VERSION = "1.0.0"
BEARER_SCHEME = "bearerAuth"
#: Routes reachable without a token (everything else is declared with the bearer scheme).
PUBLIC_PATHS = frozenset(
    {
        "/health/live",
        "/health/ready",
        "/openapi.json",
        "/.well-known/jwks.json",
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
    }
)
_RULE_PARAM = re.compile(r"<[^>]+>")


def error_response(
    status: int, code: str, message: str, details: Mapping[str, Any] | None = None
) -> Response[Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = dict(details)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"error": body})


def chatflow_error_response(exc: ChatflowError) -> Response[Any]:
    """The error body and status of ``exc``; a 429 with ``details.retryAfterS`` adds Retry-After,
    and so does an ``Unavailable`` an adapter raised (the outage rule, as for the raw failures)."""
    if exc.status == 503:
        exc = dependency_outage(exc) or exc
    response = error_response(exc.status, exc.code, exc.message, exc.details)
    retry_after = exc.details.get("retryAfterS")
    if exc.status == 429 and isinstance(retry_after, int | float):
        response.headers["Retry-After"] = str(int(retry_after))
    if exc.status == 503:
        response.headers["Retry-After"] = str(max(1, round(UNAVAILABLE_RETRY_AFTER_MS / 1000)))
    return response


class ChatflowHttpResolver(APIGatewayHttpResolver):
    """APIGatewayHttpResolver plus the checks that must run before routing and validation."""

    def __init__(self, settings: Settings, services: HttpServices) -> None:
        super().__init__(
            cors=CORSConfig(
                allow_origin=settings.cors_allow_origin,
                allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                expose_headers=["Allow"],
                max_age=600,
            ),
            enable_validation=True,
            json_body_deserializer=parse_json_body,
        )
        # Powertools would parse form and multipart bodies (and a body without Content-Type as
        # JSON); ours are JSON only. It takes the instance it finds here (pinned version).
        self._request_validation_middleware = _json_only_validation()
        self.settings = settings
        self.services = services
        #: (compiled path rule, method) of every route, for 405 answers.
        self.route_methods: list[tuple[re.Pattern[str], str]] = []
        #: (method, Powertools rule) of every route, e.g. ("GET", "/rooms/<room_id>").
        self.route_rules: list[tuple[str, str]] = []
        #: Areas (``AREAS``) whose routers are included.
        self.loaded_areas: set[str] = set()
        self._area_lock = threading.Lock()

    def load_area(self, area: str) -> None:
        """Include the router of ``area`` (once, also when requests run on several threads)."""
        if area in self.loaded_areas:
            return
        with self._area_lock:
            if area not in self.loaded_areas:
                module = importlib.import_module(f"chatflow.http.routes.{area}")
                self.include_router(module.routes(self.services))
                self.loaded_areas.add(area)

    def load_all_areas(self) -> None:
        for area, _ in AREAS:
            self.load_area(area)

    def route(self, rule: str, method: Any, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        methods = [method] if isinstance(method, str) else list(method)
        pattern = re.compile("^" + _RULE_PARAM.sub("[^/]+", rule) + "$")
        self.route_methods.extend((pattern, m.upper()) for m in methods)
        self.route_rules.extend((m.upper(), rule) for m in methods)
        return super().route(rule, method, *args, **kwargs)

    def allowed_methods(self, path: str) -> list[str]:
        return sorted({m for pattern, m in self.route_methods if pattern.match(path)})

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        token = checked_identity.set(None)
        try:
            early = self._pre_route(event)
            if early is not None:
                return early
            if len(self.loaded_areas) < len(AREAS):  # warm and complete: nothing to look up
                area = area_of(APIGatewayProxyEventV2(dict(event)).path)
                if area is not None:
                    self.load_area(area)
            return super().resolve(event, context)
        finally:
            checked_identity.reset(token)

    def _pre_route(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        """Body size and ban checks; returns a finished response to short-circuit, else None."""
        try:
            _check_body(event, self.settings.max_request_body_bytes)
            ctx = authorizer_context(event)
            if ctx is not None:
                users = self.services.users
                checked_identity.set(users.ensure_active(identity_from_authorizer(ctx)))
        except ChatflowError as exc:
            return self._finish(event, chatflow_error_response(exc))
        except Exception as exc:
            return self._finish(event, unexpected_error_response(exc, "before routing"))
        return None

    def _finish(self, event: Mapping[str, Any], response: Response[Any]) -> dict[str, Any]:
        # Same serialization and CORS headers as routed responses.
        if self._cors is not None:
            response.headers.update(self._cors.to_dict(header(event, "origin")))
        body = response.body if isinstance(response.body, str) else json.dumps(response.body)
        return {
            "statusCode": response.status_code,
            "headers": {k: v if isinstance(v, str) else ",".join(v) for k, v in response.headers.items()}
            | {"Content-Type": content_types.APPLICATION_JSON},
            "body": body,
            "isBase64Encoded": False,
        }


def _check_body(event: Mapping[str, Any], limit: int) -> None:
    """413 for a body over the limit (declared or actual); 400 for a body that is no UTF-8 text."""
    declared = header(event, "content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"request body exceeds {limit} bytes", limit=limit)
        except ValueError:
            pass  # a malformed header: the actual body is measured below
    body = event.get("body")
    if body:
        if event.get("isBase64Encoded"):
            # API Gateway base64-encodes bodies that are not text; every route here takes JSON,
            # which must be UTF-8 (RFC 8259). Checked here: Powertools' decode would raise -> 500.
            try:
                raw = base64.b64decode(body, validate=True)
            except ValueError:
                raise _malformed_body() from None
            if len(raw) > limit:
                raise PayloadTooLarge(f"request body exceeds {limit} bytes", limit=limit)
            try:
                raw.decode()
            except UnicodeDecodeError:
                raise _malformed_body() from None
        elif len(body.encode(errors="surrogatepass")) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes", limit=limit)


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` (parameters such as ``charset`` allowed), case-insensitive."""
    return (content_type or "").split(";", 1)[0].strip().lower() == content_types.APPLICATION_JSON


def _json_only_validation() -> Any:
    """Powertools' request validation, reading a route's body only when it is sent as JSON:
    any other Content-Type (form, multipart, text, ...) or none at all with a body -> 415, before
    anything is parsed -- so no part of such a body can end up in an answer. An empty body
    without a type is a missing body (422)."""
    from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
        OpenAPIRequestValidationMiddleware,
    )

    class JsonOnlyRequestValidation(OpenAPIRequestValidationMiddleware):
        def _get_body(self, app: Any) -> Any:
            event = app.current_event
            content_type = event.headers.get("content-type")
            if not is_json_media_type(content_type) and (content_type or event.body):
                raise RequestUnsupportedContentType("Unsupported content type", errors=[])
            return self._parse_json_data(app)  # media types are case-insensitive; Powertools' check is not

    return JsonOnlyRequestValidation()  # type: ignore[no-untyped-call]


def _malformed_body() -> ChatflowError:
    return ChatflowError("request body is not valid JSON", code="malformed_json")


def parse_json_body(text: str) -> Any:
    """The JSON body; nesting deeper than the interpreter's recursion limit is malformed JSON
    (json.loads raises RecursionError, which Powertools does not map to a validation error)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", text, 0) from None


def unexpected_error_response(exc: Exception, where: str) -> Response[Any]:
    # The stack trace goes to the log (with the correlation id); the client learns nothing.
    outage = dependency_outage(exc)  # the one rule, shared with the WebSocket handlers
    if outage is not None:
        get_logger().exception(f"dependency unavailable {where}")
        response = error_response(503, outage.code, "a backing service is unavailable; retry shortly")
        response.headers["Retry-After"] = str(max(1, round(UNAVAILABLE_RETRY_AFTER_MS / 1000)))
        return response
    get_logger().exception(f"unhandled error {where}")
    return error_response(500, "internal", "internal server error")


#: What an unknown field's name may look like to be named back in ``loc``.
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _input_texts(value: Any, depth: int = 0) -> set[str]:
    """The texts (of 3+ characters) an input holds: scalars, keys and items, a few levels deep."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value)
        return {text} if len(text) >= 3 else set()
    if depth >= 4:
        return set()
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return set()
    return set().union(*(_input_texts(item, depth + 1) for item in items[:100]))


def validation_fields(errors: Any) -> list[dict[str, Any]]:
    """``details.fields`` of a 422: where and what, never the input. ``loc`` holds the schema's
    names and list indices; an unknown field (the one part a client wrote) is named only when
    it looks like a field name, else ``"?"``; a message that would quote the input is replaced."""
    fields: list[dict[str, Any]] = []
    for e in errors:
        kind = str(e.get("type", "invalid"))
        loc = [str(part) for part in e.get("loc", ())]
        if kind == "extra_forbidden" and loc and not _FIELD_NAME.match(loc[-1]):
            loc[-1] = "?"
        message = str(e.get("msg", ""))
        if any(part in message for part in _input_texts(e.get("input"))):
            message = f"invalid value ({kind})"
        fields.append({"loc": loc, "type": kind, "message": message})
    return fields


def _register_error_handlers(app: ChatflowHttpResolver) -> None:
    @app.exception_handler(ChatflowError)  # type: ignore[untyped-decorator]
    def _chatflow_error(exc: ChatflowError) -> Response[Any]:
        return chatflow_error_response(exc)

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _validation_error(exc: RequestValidationError) -> Response[Any]:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "malformed_json", "request body is not valid JSON")
        fields = validation_fields(errors)
        return error_response(422, "invalid", "request validation failed", {"fields": fields})

    @app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
    def _unsupported_type(exc: RequestUnsupportedContentType) -> Response[Any]:
        return error_response(415, "unsupported_media_type", "send the body as application/json")

    @app.exception_handler(NotFoundError)  # type: ignore[untyped-decorator]
    def _not_found(exc: NotFoundError) -> Response[Any]:
        event = app.current_event
        allowed = app.allowed_methods(event.path)
        if allowed:
            response = error_response(405, "method_not_allowed", f"{event.http_method} is not allowed here")
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return error_response(404, "not_found", "no such route")

    @app.exception_handler(ServiceError)  # type: ignore[untyped-decorator]
    def _service_error(exc: ServiceError) -> Response[Any]:
        return error_response(exc.status_code, "error", str(exc.msg))

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(exc: Exception) -> Response[Any]:
        return unexpected_error_response(exc, "in route")


def _register_openapi(app: ChatflowHttpResolver) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document() -> Response[str]:
        app.load_all_areas()
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json(app))


def openapi_json(app: APIGatewayHttpResolver) -> str:
    """The OpenAPI document of every route, completed with what every route of a kind answers
    (:func:`complete_operation`); non-public operations get the bearer requirement."""
    # Imported here: the OpenAPI models cost ~40 ms at cold start and only this route needs them.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    raw = app.get_openapi_json_schema(
        title=API_TITLE,
        version=API_VERSION,
        description="Chatflow: serverless real-time chat. Send `Authorization: Bearer <accessToken>`.",
        security_schemes={BEARER_SCHEME: HTTPBearer(bearerFormat="JWT")},
    )
    doc = json.loads(raw)
    _add_component_schemas(doc)
    for path, operations in (doc.get("paths") or {}).items():
        for operation in operations.values():
            if isinstance(operation, dict):
                complete_operation(operation, public=path in PUBLIC_PATHS)
    return json.dumps(doc)


_GATEWAY_REF = {"$ref": "#/components/schemas/GatewayMessageOut"}


def _add_component_schemas(doc: dict[str, Any]) -> None:
    """ErrorOut (with ErrorDetail) and GatewayMessageOut in ``components.schemas``."""
    from chatflow.http.schemas import ErrorOut, GatewayMessageOut

    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorOut, GatewayMessageOut):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in generated.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas.setdefault(model.__name__, generated)


def _json_content(schemas: list[dict[str, Any]]) -> dict[str, Any]:
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    return {"application/json": {"schema": schema}}


def _schemas_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    schema = ((response.get("content") or {}).get("application/json") or {}).get("schema")
    if not schema:
        return []
    return list(schema["anyOf"]) if set(schema) == {"anyOf"} else [schema]


def _also(responses: dict[str, Any], status: str, description: str, *added: dict[str, Any]) -> None:
    """Document ``status`` with the bodies ``added`` as well as what the route declared for it.
    Error codes add up: a route's ``(status, *codes)`` schema takes the codes of an added one;
    a route that declared the status with any code (plain ``ErrorOut``) already covers them."""
    from chatflow.http.schemas import ERROR_REF, coded_error_schema, error_codes_of

    declared = responses.get(status)
    schemas = _schemas_of(declared) if declared is not None else []
    for schema in added:
        codes = error_codes_of(schema)
        coded = next((i for i, s in enumerate(schemas) if error_codes_of(s) is not None), None)
        if codes is not None and {"$ref": ERROR_REF} in schemas:
            continue
        if codes is not None and coded is not None:
            known = error_codes_of(schemas[coded]) or []
            schemas[coded] = coded_error_schema(*known, *(c for c in codes if c not in known))
        elif schema not in schemas:
            schemas.append(schema)
    if declared is None:
        responses[status] = {"description": description, "content": _json_content(schemas)}
        return
    declared["content"] = _json_content(schemas)
    if description not in declared.get("description", ""):
        declared["description"] = f"{declared.get('description', '')}; {description}".lstrip("; ")


def complete_operation(operation: dict[str, Any], *, public: bool) -> None:
    """Add the statuses the app and API Gateway answer for every operation of its kind.

    Routes declare what their own logic answers (``chatflow.http.schemas.documented``); here:
    a body route can get 400 ``malformed_json``, 415 ``unsupported_media_type`` and 422; a route
    with parameters 422 ``invalid``; every request 413 ``payload_too_large`` (any body is
    measured), 429 (API Gateway's stage throttle ``{"message"}``; the app's own 429s are the
    route's) and 503 (``unavailable``, or API Gateway's ``{"message"}`` when the function cannot
    run); bearer routes 401 (API Gateway's authorizer without a token: ``{"message":
    "Unauthorized"}``; the app: ``token_revoked``, ``account_disabled``, ``unauthorized``) and
    403 (the authorizer refused the token: ``{"message": "Forbidden"}``).
    """
    from chatflow.http.schemas import coded_error_schema as coded

    responses: dict[str, Any] = operation.setdefault("responses", {})
    invalid = responses.get("422")
    if invalid and "HTTPValidationError" in json.dumps(invalid):
        del responses["422"]  # Powertools' default; ours is the {"error": ...} envelope
    if "requestBody" in operation:
        _also(responses, "400", "malformed_json: the body is not JSON", coded("malformed_json"))
        _also(
            responses,
            "415",
            "unsupported_media_type: send the body as application/json",
            coded("unsupported_media_type"),
        )
    if "requestBody" in operation or operation.get("parameters"):
        _also(responses, "422", "invalid: details.fields lists the offending fields", coded("invalid"))
    _also(responses, "413", "payload_too_large: the body exceeds the limit", coded("payload_too_large"))
    _also(responses, "429", "too many requests (API Gateway's throttle answers {message})", _GATEWAY_REF)
    _also(responses, "503", "unavailable: a backing service is down", coded("unavailable"), _GATEWAY_REF)
    if not public:
        operation.setdefault("security", [{BEARER_SCHEME: []}])
        _also(
            responses,
            "401",
            'no token: API Gateway answers {"message": "Unauthorized"}; '
            "a revoked token or disabled account: token_revoked, account_disabled",
            _GATEWAY_REF,
            coded("token_revoked", "account_disabled", "unauthorized"),
        )
        _also(responses, "403", 'the authorizer refused the token: {"message": "Forbidden"}', _GATEWAY_REF)


#: Which routes module (``chatflow.http.routes.<area>``) serves a path, first match wins. An
#: on-demand cold start imports only the area of its first request (its routes, schemas, domain
#: models and services); SnapStart and provisioned concurrency load every area at init, where it
#: is paid before any request. Every path of an area must map to that area, else a route would be
#: missing and a wrong method would answer 404 instead of 405 (tests/integration/test_http_areas.py).
AREAS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (area, re.compile(pattern))
    for area, pattern in (
        ("messages", r"^/rooms/[^/]+/(messages|read)(/|$)"),
        ("presence", r"^/rooms/[^/]+/presence/?$"),
        ("rooms", r"^/(rooms|dms)(/|$)"),
        ("analytics", r"^/admin/analytics/?$"),
        ("admin", r"^/admin/"),
        ("auth", r"^/(auth/|\.well-known/)"),
        ("users", r"^/users/"),
        ("health", r"^/health/"),
        ("notifications", r"^/notifications(/|$)"),
    )
)


def area_of(path: str) -> str | None:
    """The area whose router serves ``path`` (None: no route there, 404)."""
    return next((area for area, pattern in AREAS if pattern.match(path)), None)


def create_app(services: HttpServices, *, eager: bool = True) -> ChatflowHttpResolver:
    """The resolver over the function's services; ``eager`` includes every area's router now,
    else each is included on the first request to one of its paths."""
    app = ChatflowHttpResolver(services.settings, services)
    _register_error_handlers(app)
    _register_openapi(app)
    if eager:
        app.load_all_areas()
    return app
