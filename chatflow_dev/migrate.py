"""Apply the SQL migrations to a database: ``python -m chatflow_dev.migrate [--dsn URL]`` (``make migrate``).

The deployed stack migrates through the ``migrate`` function (a CloudFormation custom resource);
this is the same :func:`chatflow.adapters.postgres.migrate.migrate` for local and test databases.
"""

from __future__ import annotations

import argparse
import sys

from chatflow.adapters.postgres.migrate import migrate
from chatflow.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatflow_dev.migrate", description="Apply Chatflow's SQL migrations"
    )
    parser.add_argument("--dsn", help="database URL (default: DATABASE_URL)")
    args = parser.parse_args(argv)
    applied = migrate(args.dsn or get_settings().database_url)
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
