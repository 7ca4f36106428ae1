"""The OpenAPI document is the contract: property-based tests against the running app.

The local gateway (the catalog's real functions in worker processes, API Gateway's authorizer
and its answers) serves this run's database; schemathesis reads ``GET /openapi.json`` from it
and, per operation, generates requests from the document (schema-valid and schema-violating
ones), sends them with a valid bearer token and checks every answer:

- no server error (5xx);
- the status is documented for the operation;
- the Content-Type is one the document declares for that status;
- the body matches the documented schema of that status.

Bounded: a fixed seed, ``EXAMPLES`` examples per operation and a time cap (``TIME_CAP_S``; past
it, the remaining operations get ``EXAMPLES_PAST_CAP`` examples each, so every operation is
still tried and the run stays short). Path parameters are sometimes replaced with the ids of a
small world (rooms the caller -- an administrator -- owns, can see, cannot see; a DM; messages;
another user) so the success answers and the business-rule refusals are exercised too, not only
"not found". Operations that take the world apart (DELETE, leave, ban) run last.

Business-rule refusals of schema-valid requests (404, 409, ...) pass when documented.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chatflow.container import Container
from chatflow.settings import get_settings
from local_stack.gateway import GatewayConfig, RunningGateway, running_gateway
from tests.support.e2e_target import gateway_env
from tests.support.rooms import access_token, insert_user

SEED = int(os.environ.get("CHATFLOW_FUZZ_SEED", "20261203"))
EXAMPLES = int(os.environ.get("CHATFLOW_FUZZ_EXAMPLES", "12"))
EXAMPLES_PAST_CAP = 2
TIME_CAP_S = float(os.environ.get("CHATFLOW_FUZZ_TIME_CAP_S", "30"))
#: Hop-by-hop and framing headers: HTTP plumbing, not inputs of any operation.
FRAMING_HEADERS = frozenset(
    {
        "transfer-encoding",
        "content-length",
        "connection",
        "host",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "keep-alive",
    }
)
#: What every answer is checked for.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def gateway(chatflow_env: dict[str, str]) -> Iterator[RunningGateway]:
    """The running app: the local gateway over the catalog's functions and this run's data
    (EventBridge off: the functions then keep events in the outbox, as documented)."""
    env = gateway_env(chatflow_env)
    # Warm: on a loaded machine a cold http_api worker alone can outlast a client's timeout.
    config = GatewayConfig(
        env=env, with_eventbridge=False, with_schedules=False, warm=("authorizer", "http_api")
    )
    with running_gateway(config) as running:
        yield running


@dataclass(frozen=True)
class World:
    """The fuzzing caller and the ids its requests sometimes point at."""

    token: str
    caller_id: UUID
    other_id: UUID
    other_handle: str
    room_ids: tuple[UUID, ...]
    seqs: tuple[int, ...]


@pytest.fixture(scope="module")
def world(chatflow_env: dict[str, str]) -> World:
    """An administrator who owns a public room with messages (one from another member), a public room
    of someone else it has not joined, someone else's private room, and a DM with them."""
    with psycopg.connect(chatflow_env["DATABASE_URL"], autocommit=True) as conn:
        # An administrator: the admin routes answer with their success bodies too.
        caller, other = insert_user(conn, role="admin"), insert_user(conn)
    container = Container(get_settings())
    try:
        rooms, messages = container.rooms, container.messages
        mine = rooms.create_channel(caller, "public", "fuzz-mine").room.id
        rooms.join(other, mine)
        messages.send(caller, mine, "c-1", "hello @" + other.handle)
        messages.send(other, mine, "c-2", "hi")
        theirs = rooms.create_channel(other, "public", "fuzz-theirs").room.id
        hidden = rooms.create_channel(other, "private", "fuzz-hidden").room.id
        dm = rooms.open_dm(caller, user_id=other.user_id, handle=None)[0].room.id
        token = access_token(caller)
    finally:
        container.close()
    return World(token, caller.user_id, other.user_id, other.handle, (mine, theirs, hidden, dm), (1, 2))


@pytest.fixture(scope="module")
def api_schema(gateway: RunningGateway) -> Any:
    return schemathesis.openapi.from_url(gateway.http_url + "/openapi.json", timeout=60)


def _strategy(operation: Any, world: World) -> st.SearchStrategy[Any]:
    """Positive and negative cases; path ids (and a body's ``handle``) replaced by the world's
    about half of the time; framing headers dropped."""
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )
    known: dict[str, list[object]] = {
        "room_id": [str(r) for r in world.room_ids],
        "user_id": [str(world.other_id), str(world.caller_id)],
        "seq": [*world.seqs],
    }
    handles = st.sampled_from([None, world.other_handle])

    def with_known_ids(case: Any, picks: dict[str, Any], handle: str | None) -> Any:
        params = case.path_parameters
        if params:
            for name, value in picks.items():
                if name in params and value is not None:
                    params[name] = value
        if handle is not None and isinstance(case.body, dict) and "handle" in case.body:
            case.body = {**case.body, "handle": handle}  # a user who exists (DMs, members)
        if case.headers:
            # Negative cases may add any header; message framing ones (a stray Transfer-Encoding)
            # break the HTTP request itself, which the gateway's HTTP server (not the API) refuses.
            for name in [h for h in case.headers if h.lower() in FRAMING_HEADERS]:
                del case.headers[name]
        return case

    picks = st.fixed_dictionaries({name: st.sampled_from([None, *values]) for name, values in known.items()})
    return st.builds(with_known_ids, cases, picks, handles)


def _fuzz(operation: Any, world: World, examples: int) -> None:
    @given(case=_strategy(operation, world))
    @seed(SEED)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {world.token}"}, checks=CHECKS, timeout=30)

    run()


def test_every_operation_answers_as_documented(api_schema: Any, world: World) -> None:
    started = time.monotonic()
    failures: list[str] = []
    cut_short: list[str] = []
    # Operations that take the world apart (leave, remove, delete) last.
    operations = sorted(
        (result.ok() for result in api_schema.get_all_operations()),
        key=lambda op: op.method.upper() == "DELETE" or op.path.endswith(("/leave", "/ban")),
    )
    assert len(operations) > 20  # the document lists the routes (a broken fetch lists none)
    for operation in operations:
        examples = EXAMPLES
        if time.monotonic() - started > TIME_CAP_S:
            examples = EXAMPLES_PAST_CAP
            cut_short.append(operation.label)
        try:
            _fuzz(operation, world, examples)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            failures.append(f"{operation.label}:\n{exc}")
    elapsed = time.monotonic() - started
    print(f"fuzzed {len(operations)} operations in {elapsed:.1f} s; past the time cap: {cut_short or 'none'}")
    assert not failures, "\n\n".join(failures)


# --- API Gateway's own answers are in the document too -------------------------------------------


def _operation(api_schema: Any, method: str, path: str) -> Any:
    return api_schema[path][method]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/users/me"), ("GET", "/rooms"), ("POST", "/rooms"), ("GET", "/rooms/{room_id}/messages")],
)
def test_authorizer_answers_are_documented(
    api_schema: Any, gateway: RunningGateway, world: World, method: str, path: str
) -> None:
    """No token: API Gateway's 401 {"message": "Unauthorized"}; a token the authorizer refuses:
    403 {"message": "Forbidden"} -- both validate against the operation's document."""
    operation = _operation(api_schema, method, path)
    url = gateway.http_url + path.replace("{room_id}", str(world.room_ids[0]))
    for headers, status, message in (
        ({}, 401, "Unauthorized"),
        ({"Authorization": "Bearer not-a-token"}, 403, "Forbidden"),
    ):
        response = requests.request(method, url, headers=headers, json={}, timeout=30)
        assert response.status_code == status, response.text
        assert response.json() == {"message": message}
        operation.validate_response(response)
