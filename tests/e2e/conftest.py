"""Where the end-to-end suite runs: the session fixture ``e2e_target`` is shared with
tests/acceptance (one local stack per session) and lives in tests/support/e2e_target.py.

Remote target (LocalStack, a real AWS stage): set ``TARGET_WS_URL`` and ``TARGET_HTTP_URL`` (or the
older ``CHATFLOW_WS_URL`` / ``CHATFLOW_HTTP_URL``); ``TARGET_ADMIN_TOKEN`` (an administrator's
access token) enables the ban test; ``TARGET_MAX_CONNECTIONS_PER_USER`` if the stage changed the
default (5). Unset: the local gateway is started against this run's throwaway database and Redis.
"""
