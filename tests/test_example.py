"""examples/aiohttp_app.py, served on 127.0.0.1, against the local Turso (fake_turso)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from examples.aiohttp_app import create_app
from per_user_db import InMemoryCredentialStore, Ok, Result, StartupError, UserDatabases
from per_user_db.testing import FakeTurso


@pytest.fixture
async def client(fake_turso: FakeTurso) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async def factory() -> Result[UserDatabases, StartupError]:
        return Ok(UserDatabases(store=InMemoryCredentialStore(), settings=fake_turso.settings))

    app = create_app(factory)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def test_sign_up_then_use_the_users_own_database(
    client: TestClient[web.Request, web.Application], fake_turso: FakeTurso
) -> None:
    signed_up = await client.post("/signup", json={"user_id": "alice"})
    assert signed_up.status == 201
    database = (await signed_up.json())["database"]
    again = await client.post("/signup", json={"user_id": "alice"})
    assert (again.status, (await again.json())["database"]) == (201, database)
    assert fake_turso.database_names() == [database]

    alice = {"X-User-Id": "alice"}
    assert await (await client.get("/me/programs", headers=alice)).json() == []
    added = await client.post("/me/programs", json={"id": "p1", "name": "Strength"}, headers=alice)
    assert added.status == 201
    listed = await client.get("/me/programs", headers=alice)
    assert await listed.json() == [{"id": "p1", "name": "Strength"}]

    rejected = await client.post("/me/programs", json={"id": "p2", "name": ""}, headers=alice)
    assert rejected.status == 400
    assert (await rejected.json())["code"].startswith("SQLITE_CONSTRAINT")


async def test_each_user_sees_only_their_database(
    client: TestClient[web.Request, web.Application],
) -> None:
    for user in ("alice", "bob"):
        assert (await client.post("/signup", json={"user_id": user})).status == 201
    await client.post(
        "/me/programs", json={"id": "p1", "name": "A"}, headers={"X-User-Id": "alice"}
    )
    bob = await client.get("/me/programs", headers={"X-User-Id": "bob"})
    assert await bob.json() == []


async def test_unknown_and_anonymous_users(
    client: TestClient[web.Request, web.Application],
) -> None:
    unknown = await client.get("/me/programs", headers={"X-User-Id": "nobody"})
    assert (unknown.status, await unknown.json()) == (
        404,
        {"error": "no database has been set up for this user"},
    )
    assert (await client.get("/me/programs")).status == 401
    assert (await client.post("/signup", json={})).status == 400
