"""The FastAPI glue: lifespan, the per-request dependency, and safe 404/503 answers."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping  # at run time: FastAPI reads handler annotations
from typing import TYPE_CHECKING, Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Header

from per_user_db import Credentials, Database, InMemoryCredentialStore, Ok, UserDatabases
from per_user_db.integrations.fastapi import install, lifespan, user_database, user_databases

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..conftest import LocalTursoServer

DOWN = Credentials(
    name="x", url="libsql://127.0.0.1:1/db/x/?tls=0", auth_token="t", expires_at=None
)


async def signed_in(x_user_id: Annotated[str, Header()]) -> str:
    return x_user_id


# At module level: FastAPI reads the annotations of the handlers below by name.
UserDb = Annotated[Database, Depends(user_database(signed_in))]
Dbs = Annotated[UserDatabases, Depends(user_databases)]


def make_app(dbs: UserDatabases) -> FastAPI:
    async def factory() -> Ok[UserDatabases]:
        return Ok(dbs)

    app = FastAPI(lifespan=lifespan(factory))
    install(app)

    @app.post("/signup")
    async def signup(dbs: Dbs, x_user_id: Annotated[str, Header()]) -> dict[str, str]:
        return {"database": (await dbs.setup(x_user_id)).unwrap().name}

    @app.get("/programs")
    async def programs(db: UserDb) -> list[Mapping[str, object]]:
        return [row.asdict() for row in await db.execute("SELECT id, name FROM programs")]

    @app.post("/programs/{program_id}")
    async def add(db: UserDb, program_id: str) -> dict[str, str]:
        await db.execute("INSERT INTO programs (id, name) VALUES (?, 'A')", [program_id])
        return {"id": program_id}

    return app


@pytest.fixture
async def client(turso: LocalTursoServer) -> AsyncIterator[httpx.AsyncClient]:
    store = InMemoryCredentialStore()
    await store.save("down", DOWN, now=dt.datetime.now(dt.UTC))
    dbs = UserDatabases(store=store, settings=turso.settings)
    app = make_app(dbs)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://app",
        ) as http,
    ):
        yield http
    assert dbs._closed  # the lifespan closed it at shutdown


async def test_a_user_signs_up_then_uses_their_database(client: httpx.AsyncClient) -> None:
    me = {"X-User-Id": "user-1"}
    assert (await client.post("/signup", headers=me)).status_code == 200
    assert (await client.post("/programs/p1", headers=me)).status_code == 200
    response = await client.get("/programs", headers=me)
    assert response.json() == [{"id": "p1", "name": "A"}]


async def test_a_user_never_set_up_gets_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/programs", headers={"X-User-Id": "nobody"})
    assert response.status_code == 404
    assert response.json() == {"error": "no database has been set up for this user"}


async def test_an_unreachable_database_gets_503_and_the_details_go_to_the_log(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="per_user_db"):
        response = await client.get("/programs", headers={"X-User-Id": "down"})
    assert response.status_code == 503
    assert "127.0.0.1" not in response.text
    assert "127.0.0.1:1" in caplog.text
    assert DOWN.auth_token != "t" or "Bearer" not in caplog.text


async def test_an_sql_error_is_not_mistaken_for_unavailability(
    client: httpx.AsyncClient,
) -> None:
    me = {"X-User-Id": "user-2"}
    await client.post("/signup", headers=me)
    await client.post("/programs/p1", headers=me)
    duplicate = await client.post("/programs/p1", headers=me)
    assert duplicate.status_code == 500  # the app's own bug, not a 503
