"""Operator CLI for roles: ``python -m chatflow.admin_cli promote <handle>``.

There is no HTTP path to become an administrator (and no "first user is admin" rule): an operator
with database access runs this against the target environment (locally with DATABASE_URL /
REDIS_URL; in AWS the ``migrate`` function runs it inside the VPC: ``make admin ENV=<env>
ARGS="promote <handle>"``, so it ships in the layer). The Redis status cache is written through,
so the change applies on the next request, including to tokens already issued (``ensure_active``
returns the current role).

Commands: ``promote <handle>``, ``demote <handle>``, ``show <handle>``, ``delete <handle>``
(soft delete: status deleted, every token void, the user's live connections removed from the
registry -- they receive nothing more -- and closed through API Gateway's @connections API when
``WS_MANAGEMENT_ENDPOINT`` is set; their next frame is refused and closes them anyway).

It builds the functions' container (chatflow.container), so its users service is wired exactly
like the HTTP API's, session termination included.
"""

from __future__ import annotations

import argparse
import json
import sys

from chatflow.container import Container
from chatflow.errors import ChatflowError
from chatflow.settings import get_settings
from chatflow.wire import user_to_dict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatflow.admin_cli", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("promote", "make the user an administrator"),
        ("demote", "make the administrator a regular user"),
        ("show", "print the user's id, role and status"),
        ("delete", "soft-delete the user: tokens void, sign-in refused"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("handle")
    args = parser.parse_args(argv)

    container = Container(get_settings())
    service = container.users
    try:
        if args.command == "show":
            user = service.find_by_handle(args.handle)
        elif args.command == "delete":
            user = service.delete_user(args.handle)
        else:
            user = service.set_role(args.handle, "admin" if args.command == "promote" else "user")
    except ChatflowError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    finally:
        container.close()
    print(json.dumps(user_to_dict(user)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
