"""What the local gateway reads from ``infra/catalog.py`` (and nothing else): functions, routes,
authorizers. Tests build a :class:`GatewayCatalog` of their own tiny functions the same way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra import catalog
from infra.catalog import Authorizer, Function, HttpRoute, WsRoute

#: API Gateway's default WebSocket route selection expression (the catalog's actions ride in it).
ROUTE_SELECTION_EXPRESSION = "$request.body.action"


@dataclass(frozen=True)
class GatewayCatalog:
    functions: tuple[Function, ...]
    authorizers: tuple[Authorizer, ...]
    ws_routes: tuple[WsRoute, ...]
    http_routes: tuple[HttpRoute, ...]
    #: Where ``<function name>/<module>.py`` live (``functions/`` for the real catalog).
    functions_dir: Path = catalog.FUNCTIONS_DIR
    route_selection_expression: str = ROUTE_SELECTION_EXPRESSION

    @classmethod
    def from_catalog(cls) -> GatewayCatalog:
        return cls(
            functions=catalog.FUNCTIONS,
            authorizers=catalog.AUTHORIZERS,
            ws_routes=catalog.WS_ROUTES,
            http_routes=catalog.HTTP_ROUTES,
        )

    def authorizer(self, name: str) -> Authorizer:
        for auth in self.authorizers:
            if auth.name == name:
                return auth
        raise KeyError(name)

    def ws_route(self, route_key: str) -> WsRoute | None:
        for route in self.ws_routes:
            if route.route_key == route_key:
                return route
        return None

    def validate(self) -> None:
        """Fail at start-up (not per request) when a route names an unknown function/authorizer."""
        names = {fn.name for fn in self.functions}
        auths = {a.name for a in self.authorizers}
        problems = [
            f"authorizer {a.name}: unknown function {a.function}"
            for a in self.authorizers
            if a.function not in names
        ]
        routes: list[WsRoute | HttpRoute] = [*self.ws_routes, *self.http_routes]
        for route in routes:
            if route.function not in names:
                problems.append(f"route {route.route_key}: unknown function {route.function}")
            if route.authorizer is not None and route.authorizer not in auths:
                problems.append(f"route {route.route_key}: unknown authorizer {route.authorizer}")
        for ws_route in self.ws_routes:
            if ws_route.authorizer is not None and ws_route.route_key != "$connect":
                problems.append(f"route {ws_route.route_key}: WebSocket authorizers run on $connect only")
        if problems:
            raise ValueError("catalog problems: " + "; ".join(problems))
