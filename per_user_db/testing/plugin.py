"""The pytest plugin of per-user-db: fixtures for apps that keep one database per user.

Registered through the ``pytest11`` entry point ``per_user_db``, so installing the
package is enough (no ``conftest.py``); ``-p no:per_user_db`` turns it off. The async
fixtures need pytest-asyncio (``asyncio_mode = "auto"``, or mark the tests)::

    from per_user_db import create_database

    async def test_programs(per_user_database, per_user_db_factories):
        await per_user_db_factories.days.create(2)           # and their program
        rows = await per_user_database.execute("SELECT count(*) FROM programs")
        assert rows[0][0] == 1

    async def test_signup_failure(per_user_db_mocks):
        mock = per_user_db_mocks.create_database_error()
        assert (await create_database("user-1")).is_err()  # whatever imported it
        assert mock.calls[0].args == ("user-1",)

    async def test_end_to_end(fake_turso):
        creds = (await create_database("user-1")).unwrap()   # real HTTP, env set
        assert fake_turso.database_names() == [creds.name]

Fixtures: ``per_user_database`` (a fresh migrated ``:memory:`` database per test, copied
from a template migrated once per process), ``per_user_db_factories``,
``per_user_db_mocks`` and ``fake_turso``; see :mod:`per_user_db.testing`. At the end of a
run that used ``per_user_database``, the terminal summary reports the setup times.

This module imports only pytest (and pytest-asyncio, already loaded when installed) at
start; everything else is imported by the fixture that needs it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from per_user_db._database import Database
    from per_user_db.testing._factories import Factories
    from per_user_db.testing._fake_turso import FakeTurso
    from per_user_db.testing._mocks import PerUserDbMocks

__all__ = [
    "fake_turso",
    "per_user_database",
    "per_user_db_factories",
    "per_user_db_mocks",
    "pytest_terminal_summary",
]

F = TypeVar("F", bound="Callable[..., Any]")


def _async_fixture(fn: F) -> F:
    # pytest_asyncio.fixture works in strict and auto mode alike. Without pytest-asyncio
    # the plugin must still load (it is installed for every pytest run in the
    # environment); pytest then reports the async fixture as unsupported when used.
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - pytest-asyncio is part of the test extra
        return cast("F", pytest.fixture(fn))
    return cast("F", pytest_asyncio.fixture(fn))


@_async_fixture
async def per_user_database() -> AsyncIterator[Database]:
    """A fresh ``:memory:`` database holding the bundled schema at its head, no rows."""
    from per_user_db.testing._database import memory_database

    db = await memory_database()
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def per_user_db_factories(per_user_database: Database) -> Factories:
    """Schema-driven row factories writing to ``per_user_database``."""
    from per_user_db.testing._factories import factories

    return factories(per_user_database)


@pytest.fixture
def per_user_db_mocks() -> Iterator[PerUserDbMocks]:
    """Install ``create_database``/``apply_migrations`` mocks for this test only."""
    from per_user_db.testing._mocks import PerUserDbMocks

    mocks = PerUserDbMocks()
    try:
        yield mocks
    finally:
        mocks.undo()


@pytest.fixture
def fake_turso(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTurso]:
    """A local Turso on 127.0.0.1, with the environment pointing at it for this test.

    It runs on a thread and event loop of its own, so plain tests with a synchronous
    client (FastAPI's ``TestClient``) and async tests alike can use it."""
    from per_user_db.testing._fake_turso import running_fake_turso

    with running_fake_turso(tmp_path / "fake-turso") as turso:
        for name in turso.cleared_env:
            monkeypatch.delenv(name, raising=False)
        for name, value in turso.env.items():
            monkeypatch.setenv(name, value)
        yield turso


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # Only if some test built a database: never import the kit just to say "0 setups".
    module = sys.modules.get("per_user_db.testing._database")
    if module is None:
        return
    stats = module.template_stats()
    if stats.setups:
        terminalreporter.write_line(stats.summary())
