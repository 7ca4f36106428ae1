"""Load a function's handler exactly as Lambda would: by file path, ``module.attr``.

A loaded handler module is an execution environment: it keeps its container (chatflow.container)
until :func:`reset_handlers` drops it, so the next load is a cold start with the current
environment variables.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from infra.catalog import function


def load_handler_module(name: str) -> ModuleType:
    fn = function(name)
    module_name = f"chatflow_fn_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, fn.module_path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_handler(name: str) -> Callable[[dict[str, Any], Any], Any]:
    handler: Callable[[dict[str, Any], Any], Any] = getattr(
        load_handler_module(name), function(name).handler_attr
    )
    return handler


def reset_handlers() -> None:
    """Forget every loaded handler module (closing its container's connections) and the cached
    settings: the next load is a cold start that reads the environment of now."""
    from tests.support.settings import reset_settings_cache

    reset_settings_cache()
    for name in [n for n in sys.modules if n.startswith("chatflow_fn_")]:
        module = sys.modules.pop(name)
        container = getattr(module, "container", None)
        if container is not None:
            container.close()
