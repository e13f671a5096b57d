"""Load sandboxd.miniagent with and without Mini-Agent importable.

The adapters pick their base classes when the module is imported: Mini-Agent's
pydantic ToolResult and its Tool when ``mini_agent`` imports, their own
stdlib classes otherwise. ``miniagent_module(installed)`` imports a fresh,
private copy of sandboxd/miniagent.py with the stand-in package of
``fakes/`` importable (installed=True) or with ``mini_agent`` made
unimportable (installed=False), and puts ``sys.path`` and ``sys.modules`` back
as they were when the context ends. The module returned keeps working after
that: it holds its own references to the classes it was built on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import unittest
from typing import Iterator

import _fixture

FAKES = os.path.join(_fixture.HERE, "fakes")
_MINIAGENT = os.path.join(_fixture.PYROOT, "sandboxd", "miniagent.py")
_copies = 0


def _is_mini_agent(name: str) -> bool:
    return name == "mini_agent" or name.startswith("mini_agent.")


@contextlib.contextmanager
def mini_agent_importable(installed: bool) -> Iterator[None]:
    """The stand-in Mini-Agent importable (installed) or no mini_agent at all."""
    if installed:
        if importlib.util.find_spec("pydantic") is None:
            raise unittest.SkipTest("pydantic is not installed: Mini-Agent's ToolResult is a pydantic model")
    saved = {k: v for k, v in sys.modules.items() if _is_mini_agent(k)}
    for k in saved:
        del sys.modules[k]
    if installed:
        sys.path.insert(0, FAKES)
    else:
        sys.modules["mini_agent"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        yield
    finally:
        for k in [k for k in sys.modules if _is_mini_agent(k)]:
            del sys.modules[k]
        sys.modules.update(saved)
        if installed:
            sys.path.remove(FAKES)


@contextlib.contextmanager
def miniagent_module(installed: bool) -> Iterator:
    """A fresh sandboxd.miniagent built with or without Mini-Agent."""
    global _copies
    with mini_agent_importable(installed):
        _copies += 1
        name = "sandboxd._miniagent_copy%d" % _copies
        spec = importlib.util.spec_from_file_location(name, _MINIAGENT)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        # pydantic and dataclasses resolve annotations through sys.modules.
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
            yield mod
        finally:
            del sys.modules[name]
