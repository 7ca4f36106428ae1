"""Developer and operator tools (``chatflow-dev``, the root project): never shipped to Lambda.

- ``python -m chatflow_dev.events``: export event schemas, invoke a function with a sample
  event, sweep the outbox, redrive dead letters, replay the archive (docs/events.md).
- ``python -m chatflow_dev.migrate``: apply the SQL migrations to a local or test database.

They build the same container the functions build (chatflow.container), from the same settings.
(The admin CLI is ``chatflow.admin_cli``: the ``migrate`` function runs it in AWS, so it ships.)
"""
