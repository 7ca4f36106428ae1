"""Settings in tests: the functions read them once per process (``chatflow.settings.get_settings``
is cached); a test that changes the environment forgets the cached object with this."""

from __future__ import annotations

from chatflow.settings import get_settings


def reset_settings_cache() -> None:
    get_settings.cache_clear()
