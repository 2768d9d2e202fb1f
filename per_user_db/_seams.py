"""Where test doubles plug in (``per_user_db.testing``'s mocks).

Apps import ``create_database`` and ``apply_migrations`` by name, so patching a module
attribute would miss most call sites. Instead the real functions ask here first: while a
double is installed (tests only; a stack, innermost wins), they return what it returns.
Nothing is installed outside tests, and the check is one list lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["apply_migrations_doubles", "create_database_doubles", "current"]

Double = Callable[..., Awaitable[Any]]

create_database_doubles: list[Double] = []
apply_migrations_doubles: list[Double] = []


def current(stack: list[Double]) -> Double | None:
    return stack[-1] if stack else None
