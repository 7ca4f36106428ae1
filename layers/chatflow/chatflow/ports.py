"""Ports: the small interfaces the domain talks to. Adapters in chatflow.adapters implement them.

Each section is owned by one area; add Protocols to your area's section.
"""

from __future__ import annotations
