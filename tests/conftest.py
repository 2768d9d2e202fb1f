from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import HealthCheck, settings

from per_user_db import Settings
from per_user_db.dev import (
    ProtocolServerState,
    ServerAddress,
    create_local_turso_app,
    create_protocol_app,
    local_turso,
    serve,
)
from per_user_db.dev import protocol_state as state_of
from per_user_db.turso import PlatformClient, RetryPolicy

# "ci" is thorough but bounded; "dev" is quick for the edit-test loop.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def read_only(path: Path) -> sqlite3.Connection:
    """A ``sqlite3`` connection that only reads ``path``, safe beside the local server.

    The server runs on APSW's SQLite, a second copy of SQLite in this process, and two
    copies do not see each other's locks: a read-write ``sqlite3`` connection that closes
    believes it is the file's last, checkpoints and deletes the WAL the server is still
    writing to, and the server's later writes are lost. A read-only one never deletes it.
    """
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)


class LocalServer:
    """The local protocol server, running on 127.0.0.1 for one test."""

    def __init__(self, address: ServerAddress, state: ProtocolServerState) -> None:
        self.address = address
        self.state = state

    async def database(self, name: str) -> str:
        await self.state.create_database(name)
        return self.address.database_url(name).rstrip("/")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LocalServer]:
    app = create_protocol_app(tmp_path / "served")
    async with serve(app) as address:
        yield LocalServer(address, state_of(app))


class LocalTursoServer:
    """The local Turso (Platform API + SQL) on 127.0.0.1, and settings that point at it."""

    def __init__(self, address: ServerAddress, app: web.Application, clock: FakeClock) -> None:
        self.address = address
        self.turso = local_turso(app)
        self.clock = clock
        self.api_url = address.url
        self.settings = Settings(
            api_token=self.turso.api_token,
            organization=self.turso.org,
            api_url=self.api_url,
            app_env="ci",
            retry=RetryPolicy(attempts=8, deadline=20.0, base_delay=0.01, max_delay=0.05),
        )

    def client(self) -> PlatformClient:
        return PlatformClient(
            api_token=self.turso.api_token,
            organization=self.turso.org,
            api_url=self.api_url,
            retry=self.settings.retry,
        )


class FakeClock:
    """Unix seconds that a test moves by hand (token lifetimes)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def turso(tmp_path: Path) -> AsyncIterator[LocalTursoServer]:
    clock = FakeClock()
    app = create_local_turso_app(tmp_path / "turso", clock=clock)
    async with serve(app) as address:
        yield LocalTursoServer(address, app, clock)
