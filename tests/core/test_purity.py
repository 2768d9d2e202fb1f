"""The core is pure: importing it loads no I/O module, and its code reads no clock or env."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import per_user_db.core

CORE = Path(per_user_db.core.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(CORE)], prefix="per_user_db.core."))


def source_of(module: str) -> Path:
    """The file of a core module or package, found without importing it."""
    path = CORE.joinpath(*module.removeprefix("per_user_db.core.").split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


FORBIDDEN_MODULES = {"asyncio", "aiohttp", "sqlite3", "socket", "threading", "sqlglot", "anyio"}
# Calls that read the clock, the environment, the file system or randomness.
FORBIDDEN_CALLS = {
    "now", "utcnow", "today", "time", "monotonic", "perf_counter", "getenv",
    "open", "read_text", "read_bytes", "urandom", "random", "uniform",
}  # fmt: skip


def test_there_are_core_modules() -> None:
    assert "per_user_db.core._planner" in MODULES
    assert "per_user_db.core._names" in MODULES
    assert "per_user_db.core._hrana._codec" in MODULES  # the codec package's modules too


@pytest.mark.parametrize("module", MODULES)
def test_importing_loads_no_io_module(module: str) -> None:
    # The package __init__ is skipped: the shell is allowed I/O. Load the module by path.
    probe = (
        "import importlib.util, json, sys, types\n"
        "pkg = types.ModuleType('per_user_db'); pkg.__path__ = []\n"
        "sys.modules['per_user_db'] = pkg\n"
        f"core = types.ModuleType('per_user_db.core'); core.__path__ = [{str(CORE)!r}]\n"
        "sys.modules['per_user_db.core'] = core\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    loaded = {name.split(".")[0] for name in json.loads(out)}
    assert loaded & FORBIDDEN_MODULES == set()


@pytest.mark.parametrize("module", MODULES)
def test_source_reads_no_clock_environment_or_files(module: str) -> None:
    path = source_of(module)
    tree = ast.parse(path.read_text(), filename=str(path))
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in FORBIDDEN_CALLS:
                offenders.append(f"line {node.lineno}: {name}()")
        elif isinstance(node, ast.Attribute) and node.attr == "environ":
            offenders.append(f"line {node.lineno}: .environ")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            root = (node.module if isinstance(node, ast.ImportFrom) else names[0]) or ""
            if root.split(".")[0] in {"time", "os", "random", "secrets", "uuid"}:
                offenders.append(f"line {node.lineno}: import {root}")
    assert offenders == []
