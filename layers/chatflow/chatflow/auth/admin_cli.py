"""Operator CLI for roles: ``python -m chatflow.auth.admin_cli promote <handle>``.

There is no HTTP path to become an administrator (and no "first user is admin" rule): an operator
with database access runs this against the target environment (locally with DATABASE_URL /
REDIS_URL; in AWS from a shell that can reach the database, e.g. with the same environment the
functions get). The Redis status cache is written through, so the change applies on the next
request, including to tokens already issued (``ensure_active`` returns the current role).

Commands: ``promote <handle>``, ``demote <handle>``, ``show <handle>``, ``delete <handle>``
(soft delete: status deleted, every token void, live sessions closed when a terminator is wired).
"""

from __future__ import annotations

import argparse
import json
import sys

from chatflow.errors import ChatflowError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatflow.auth.admin_cli", description=__doc__.split("\n")[0]
    )
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

    from chatflow.auth.service import get_user_service
    from chatflow.secrets import install_cloud_resolvers
    from chatflow.settings import get_settings

    install_cloud_resolvers(get_settings())
    service = get_user_service()
    try:
        if args.command == "show":
            found = service.repo.find_credentials(args.handle.strip().lower())
            if found is None:
                print(f"no user with handle {args.handle!r}", file=sys.stderr)
                return 1
            user = found[0]
        elif args.command == "delete":
            user = service.delete_user(args.handle)
        else:
            user = service.set_role(args.handle, "admin" if args.command == "promote" else "user")
    except ChatflowError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(json.dumps(user.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
