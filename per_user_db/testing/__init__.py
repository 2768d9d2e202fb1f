"""The test kit: migrated in-memory databases, schema-driven factories, mocks, a local Turso.

Installing per-user-db registers a pytest plugin (:mod:`per_user_db.testing.plugin`,
entry point ``per_user_db``; turn it off with ``-p no:per_user_db``) with these fixtures:

``per_user_database``
    A fresh, fully migrated, empty ``:memory:`` :class:`~per_user_db.Database` per test,
    closed afterwards (copied from one migrated template per process).
``per_user_db_factories``
    :func:`factories` over ``per_user_database``: ``await f.programs.create(3)``.
``per_user_db_mocks``
    A :class:`PerUserDbMocks`: ``.create_database_ok(...)``, ``.create_database_error(...)``,
    ``.apply_migrations_ok(...)``, ``.apply_migrations_error(...)``; undone after the test.
``fake_turso``
    A :class:`FakeTurso` on 127.0.0.1 with ``settings`` and the ``TURSO_*``/``APP_ENV``
    environment pointing at it.

The same pieces work without pytest: :func:`memory_database`, :func:`factories`, the
``mock_*`` context managers and :func:`running_fake_turso`. Names are imported on first
use, so importing this package (as pytest does at start) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._database import TemplateStats, memory_database, template_stats
    from ._factories import (
        ENUM_CHOICES,
        EPOCH_MS_BASE,
        PARENT_OVERRIDES,
        Factories,
        FactoryRow,
        TableFactory,
        factories,
        new_id,
    )
    from ._fake_turso import FAKE_TURSO_APP_ENV, FakeTurso, running_fake_turso
    from ._mocks import (
        MOCK_AUTH_TOKEN,
        MOCK_DATABASE_NAME,
        MOCK_DATABASE_URL,
        MOCK_EXPIRES_AT,
        MOCK_ISSUED_AT,
        ApplyMigrationsMock,
        CreateDatabaseMock,
        MockCall,
        PerUserDbMocks,
        mock_apply_migrations_error,
        mock_apply_migrations_ok,
        mock_create_database_error,
        mock_create_database_ok,
    )

__all__ = [
    "ENUM_CHOICES",
    "EPOCH_MS_BASE",
    "FAKE_TURSO_APP_ENV",
    "MOCK_AUTH_TOKEN",
    "MOCK_DATABASE_NAME",
    "MOCK_DATABASE_URL",
    "MOCK_EXPIRES_AT",
    "MOCK_ISSUED_AT",
    "PARENT_OVERRIDES",
    "ApplyMigrationsMock",
    "CreateDatabaseMock",
    "Factories",
    "FactoryRow",
    "FakeTurso",
    "MockCall",
    "PerUserDbMocks",
    "TableFactory",
    "TemplateStats",
    "factories",
    "memory_database",
    "mock_apply_migrations_error",
    "mock_apply_migrations_ok",
    "mock_create_database_error",
    "mock_create_database_ok",
    "new_id",
    "running_fake_turso",
    "template_stats",
]

_HOME = {
    "_database": ("TemplateStats", "memory_database", "template_stats"),
    "_factories": (
        "ENUM_CHOICES",
        "EPOCH_MS_BASE",
        "PARENT_OVERRIDES",
        "Factories",
        "FactoryRow",
        "TableFactory",
        "factories",
        "new_id",
    ),
    "_fake_turso": ("FAKE_TURSO_APP_ENV", "FakeTurso", "running_fake_turso"),
    "_mocks": (
        "MOCK_AUTH_TOKEN",
        "MOCK_DATABASE_NAME",
        "MOCK_DATABASE_URL",
        "MOCK_EXPIRES_AT",
        "MOCK_ISSUED_AT",
        "ApplyMigrationsMock",
        "CreateDatabaseMock",
        "MockCall",
        "PerUserDbMocks",
        "mock_apply_migrations_error",
        "mock_apply_migrations_ok",
        "mock_create_database_error",
        "mock_create_database_ok",
    ),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
