"""The local Turso (:mod:`per_user_db.dev`) in-process, for tests of app code.

:func:`running_fake_turso` serves the Platform API and the databases on a free port of
127.0.0.1 and yields a :class:`FakeTurso`: ``settings`` point at it, and the plugin's
``fake_turso`` fixture also sets the environment (``TURSO_PLATFORM_API_TOKEN``,
``TURSO_ORGANIZATION``, ``TURSO_API_URL``, ``APP_ENV``), so ``create_database(user_id)``
without settings goes over real HTTP to it::

    async with running_fake_turso(tmp_path) as turso:
        creds = (await create_database("user-1", settings=turso.settings)).unwrap()
        assert turso.database_names() == [creds.name]
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from per_user_db._settings import Settings
from per_user_db.turso._client import RetryPolicy

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Mapping

    from per_user_db.dev import LocalTurso, ServerAddress

__all__ = ["FAKE_TURSO_APP_ENV", "FakeTurso", "running_fake_turso"]

FAKE_TURSO_APP_ENV = "ci"

# Quick retries: a test waiting on backoff only tells you the test is slow.
_FAST_RETRY = RetryPolicy(attempts=4, deadline=10.0, base_delay=0.01, max_delay=0.05)

# Variables that would make Settings.from_env() disagree with FakeTurso.settings.
_CLEARED = (
    "TURSO_GROUP",
    "PER_USER_DB_PREFIX",
    "PER_USER_DB_NAME_SECRET",
    "PER_USER_DB_TOKEN_DAYS",
    "PER_USER_DB_TOKEN_AUTHORIZATION",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeTurso:
    """A running local Turso. ``repr`` leaves the API token out."""

    address: ServerAddress
    turso: LocalTurso
    """The server's state (``per_user_db.dev.LocalTurso``): mint tokens, inject faults."""
    settings: Settings

    @property
    def api_url(self) -> str:
        return self.address.url

    @property
    def api_token(self) -> str:
        return self.turso.api_token

    @property
    def org(self) -> str:
        return self.turso.org

    @property
    def env(self) -> Mapping[str, str]:
        """The environment that makes ``Settings.from_env()`` point here."""
        return {
            "TURSO_PLATFORM_API_TOKEN": self.api_token,
            "TURSO_ORGANIZATION": self.org,
            "TURSO_API_URL": self.api_url,
            "APP_ENV": self.settings.app_env,
        }

    @property
    def cleared_env(self) -> tuple[str, ...]:
        """Variables to unset so the environment means exactly :attr:`settings`."""
        return _CLEARED

    def database_names(self) -> list[str]:
        """Every database on this server, by name."""
        return [record.name for record in self.turso.registry.databases()]

    def __repr__(self) -> str:
        return f"<FakeTurso {self.api_url} org={self.org}>"


@contextlib.asynccontextmanager
async def running_fake_turso(
    data_dir: str | os.PathLike[str], *, org: str = "local", app_env: str = FAKE_TURSO_APP_ENV
) -> AsyncIterator[FakeTurso]:
    """Serve a local Turso keeping its files in ``data_dir`` until the block exits."""
    from per_user_db.dev import create_local_turso_app, local_turso, serve

    app = create_local_turso_app(data_dir, org=org)
    async with serve(app) as address:
        state = local_turso(app)
        yield FakeTurso(
            address=address,
            turso=state,
            settings=Settings(
                api_token=state.api_token,
                organization=state.org,
                api_url=address.url,
                app_env=app_env,
                retry=_FAST_RETRY,
            ),
        )
