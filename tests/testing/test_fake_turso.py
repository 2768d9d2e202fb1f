"""``fake_turso``: the local Turso on 127.0.0.1, reached through settings or the env."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from per_user_db import (
    Backend,
    Database,
    InMemoryCredentialStore,
    Ok,
    Settings,
    UserDatabases,
    connect,
    create_database,
)
from per_user_db.integrations.fastapi import install, lifespan, user_database, user_databases
from per_user_db.testing import FakeTurso, running_fake_turso
from per_user_db.testing._fake_turso import FakeTursoError

if TYPE_CHECKING:
    from pathlib import Path

from . import app


async def test_create_connect_write_read_from_the_environment(fake_turso: FakeTurso) -> None:
    credentials = await app.sign_up("user-1")  # no settings: read from the environment
    assert not isinstance(credentials, str), credentials
    assert credentials.name == "next-lift-ci-user-c6c289e49e9c05b2"
    assert fake_turso.database_names() == [credentials.name]
    async with (await connect(credentials.url, credentials.auth_token)).unwrap() as db:
        await db.execute("INSERT INTO programs (id, name) VALUES ('p1', 'Strength')")
        rows = await db.execute("SELECT name FROM programs")
        assert [r[0] for r in rows] == ["Strength"]
    again = (await create_database("user-1", settings=fake_turso.settings)).unwrap()
    assert again.name == credentials.name
    assert fake_turso.database_names() == [credentials.name]  # idempotent


async def test_settings_and_environment_agree(fake_turso: FakeTurso) -> None:
    assert fake_turso.api_url.startswith("http://127.0.0.1:")
    assert fake_turso.settings.backend is Backend.TURSO
    assert fake_turso.settings.api_url == fake_turso.api_url
    assert fake_turso.settings.organization == fake_turso.org == os.environ["TURSO_ORGANIZATION"]
    assert os.environ["TURSO_PLATFORM_API_TOKEN"] == fake_turso.api_token
    assert os.environ["TURSO_API_URL"] == fake_turso.api_url
    from_env = Settings.from_env().unwrap()
    assert from_env.name_of("someone") == fake_turso.settings.name_of("someone")
    assert fake_turso.api_token not in repr(fake_turso)
    assert fake_turso.database_names() == []


def test_the_environment_is_restored() -> None:
    # Runs after the tests above: monkeypatch took the variables back out (unless the
    # environment running the suite set them itself).
    assert not os.environ.get("TURSO_API_URL", "").startswith("http://127.0.0.1:")


def test_a_synchronous_test_client_signs_up_and_reads_without_hanging(
    fake_turso: FakeTurso,
) -> None:
    # FastAPI's TestClient blocks this thread while its app waits on the fake Turso: the
    # server must run on a thread of its own, or sign-up waits for itself until a timeout.
    app = FastAPI(
        lifespan=lifespan(
            lambda: _ready(UserDatabases(store=InMemoryCredentialStore()))  # settings: env
        )
    )
    install(app)

    @app.post("/signup")
    async def signup(dbs: Annotated[UserDatabases, Depends(user_databases)]) -> dict[str, str]:
        return {"database": (await dbs.setup("user-1")).unwrap().name}

    @app.post("/programs")
    async def add(db: UserDb) -> None:
        await db.execute("INSERT INTO programs (id, name) VALUES ('p1', 'Strength')")

    @app.get("/programs")
    async def names(db: UserDb) -> list[str]:
        return [str(row[0]) for row in await db.execute("SELECT name FROM programs")]

    with TestClient(app) as client:
        first = client.get("/programs")
        assert first.status_code == 404, first.text  # not signed up yet
        signed_up = client.post("/signup")
        assert signed_up.status_code == 200, signed_up.text
        assert fake_turso.database_names() == [signed_up.json()["database"]]
        assert client.post("/programs").status_code == 200
        assert client.get("/programs").json() == ["Strength"]


async def _ready(dbs: UserDatabases) -> Ok[UserDatabases]:
    return Ok(dbs)


def _signed_in() -> str:
    return "user-1"


# At module level: FastAPI resolves the handlers' (string) annotations in this namespace.
UserDb = Annotated[Database, Depends(user_database(_signed_in))]


def test_the_server_runs_on_a_thread_of_its_own(fake_turso: FakeTurso) -> None:
    assert fake_turso.on_server(threading.current_thread) is not threading.current_thread()
    made = fake_turso.on_server(lambda: fake_turso.turso.create_database("made-by-the-test"))
    assert made.unwrap().name == "made-by-the-test"
    assert fake_turso.database_names() == ["made-by-the-test"]
    with pytest.raises(ZeroDivisionError):
        fake_turso.on_server(lambda: 1 // 0)


async def test_an_async_test_may_block_on_the_server_too(fake_turso: FakeTurso) -> None:
    credentials = (await create_database("user-2")).unwrap()
    assert fake_turso.database_names() == [credentials.name]  # waits on the server's thread


def test_stopping_closes_the_port_and_ends_the_thread(tmp_path: Path) -> None:
    with (
        running_fake_turso(tmp_path) as turso,
        urllib.request.urlopen(f"{turso.api_url}/health", timeout=5) as answer,
    ):
        assert answer.status == 200
    assert not [t for t in threading.enumerate() if t.name == "fake-turso"]
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(f"{turso.api_url}/health", timeout=5)
    with pytest.raises(FakeTursoError, match="the fake Turso is not running"):
        turso.database_names()


async def test_async_with_starts_and_stops_it_off_the_loop(tmp_path: Path) -> None:
    async with running_fake_turso(tmp_path) as turso:
        credentials = (await create_database("user-1", settings=turso.settings)).unwrap()
        assert turso.database_names() == [credentials.name]
    assert not [t for t in threading.enumerate() if t.name == "fake-turso"]


def test_a_server_that_cannot_start_raises_its_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(FileExistsError), running_fake_turso(not_a_folder):
        pytest.fail("the block must not run")
