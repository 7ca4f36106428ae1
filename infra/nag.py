"""Every cdk-nag (AwsSolutions) acknowledgement, each with its reason, in ONE place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.stacks import ChatflowStacks


def apply_suppressions(stacks: ChatflowStacks) -> None:
    return None
