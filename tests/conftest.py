from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from per_user_db.dev import ProtocolServerState, ServerAddress, create_protocol_app, serve
from per_user_db.dev import protocol_state as state_of

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
