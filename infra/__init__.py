"""Chatflow's CDK app. ``infra.build(app)`` creates every stack; see docs/infrastructure.md.

Stacks (``Chatflow-<env>-<Name>``), in deploy order:
Network -> Data -> Api -> Functions -> ApiRoutes, Events -> Observability.
The LocalStack community profile builds ``Chatflow-<env>-LocalStack`` instead (infra/localstack.py).

``infra.catalog`` (plain data) is imported by the local gateway as well, so nothing here may import
aws_cdk at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aws_cdk as cdk

    from infra.stacks import ChatflowStacks


def build(app: cdk.App) -> ChatflowStacks:
    """Add Chatflow's stacks to ``app`` for the environment and profile its context selects."""
    from infra.stacks import build_stacks

    return build_stacks(app)
