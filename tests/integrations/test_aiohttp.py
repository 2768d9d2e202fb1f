"""The aiohttp glue: start-up and cleanup, the per-request scope, safe 401/404/503."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from per_user_db import Credentials, InMemoryCredentialStore, Ok, UserDatabases, current_database
from per_user_db.integrations.aiohttp import USER_DATABASES, setup, user_databases_middleware

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..conftest import LocalTursoServer

DOWN = Credentials(
    name="x", url="libsql://127.0.0.1:1/db/x/?tls=0", auth_token="t0ken-down", expires_at=None
)


async def programs(request: web.Request) -> web.Response:
    rows = await current_database().execute("SELECT id, name FROM programs")
    return web.json_response([row.asdict() for row in rows])


async def signup(request: web.Request) -> web.Response:
    dbs = request.app[USER_DATABASES]
    credentials = (await dbs.setup(request.headers["X-User-Id"])).unwrap()
    return web.json_response({"database": credentials.name})


@pytest.fixture
async def client(
    turso: LocalTursoServer,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    store = InMemoryCredentialStore()
    await store.save("down", DOWN, now=dt.datetime.now(dt.UTC))
    dbs = UserDatabases(store=store, settings=turso.settings)

    async def factory() -> Ok[UserDatabases]:
        return Ok(dbs)

    app = web.Application(
        middlewares=[
            user_databases_middleware(
                user_id=lambda request: request.headers.get("X-User-Id"), prefix="/me/"
            )
        ]
    )
    setup(app, factory)
    app.router.add_post("/signup", signup)
    app.router.add_get("/me/programs", programs)
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        yield http
    assert dbs._closed  # closed at the app's cleanup


async def test_signed_up_users_reach_their_database(
    client: TestClient[web.Request, web.Application],
) -> None:
    me = {"X-User-Id": "user-1"}
    assert (await client.post("/signup", headers=me)).status == 200
    response = await client.get("/me/programs", headers=me)
    assert response.status == 200
    assert await response.json() == []


async def test_anonymous_missing_and_unavailable_get_401_404_503(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    assert (await client.get("/me/programs")).status == 401
    missing = await client.get("/me/programs", headers={"X-User-Id": "nobody"})
    assert missing.status == 404
    assert await missing.json() == {"error": "no database has been set up for this user"}
    with caplog.at_level(logging.WARNING, logger="per_user_db"):
        down = await client.get("/me/programs", headers={"X-User-Id": "down"})
    assert down.status == 503
    assert "127.0.0.1" not in await down.text()
    assert "127.0.0.1:1" in caplog.text
    assert "t0ken-down" not in caplog.text


def test_what_counts_as_unavailable_rather_than_an_sql_error() -> None:
    from per_user_db import DatabaseError, MigrationFailedError
    from per_user_db.core._planner import DatabaseAhead
    from per_user_db.integrations import is_temporary

    for code in ("NETWORK_ERROR", "TIMEOUT", "UNAUTHORIZED", "NOT_FOUND", "FORBIDDEN"):
        assert is_temporary(DatabaseError("down", code))
    for code in ("SQLITE_CONSTRAINT_UNIQUE", "SQL_PARSE_ERROR", "SQLITE_ERROR"):
        assert not is_temporary(DatabaseError("the app's own SQL", code))
    ahead = DatabaseAhead(unknown=(), known_head=None)
    assert is_temporary(MigrationFailedError("behind", ahead))
    assert not is_temporary(ValueError("anything else"))
