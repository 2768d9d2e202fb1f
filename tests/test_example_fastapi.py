"""examples/fastapi_app.py under FastAPI's synchronous TestClient, against fake_turso."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from examples.fastapi_app import create_app
from per_user_db import InMemoryCredentialStore, Ok, Result, StartupError, UserDatabases
from per_user_db.testing import FakeTurso


@pytest.fixture
def client(fake_turso: FakeTurso) -> Iterator[TestClient]:
    async def factory() -> Result[UserDatabases, StartupError]:
        return Ok(UserDatabases(store=InMemoryCredentialStore(), settings=fake_turso.settings))

    with TestClient(create_app(factory)) as test_client:
        yield test_client


def test_sign_up_then_use_the_users_own_database(client: TestClient, fake_turso: FakeTurso) -> None:
    signed_up = client.post("/signup", json={"user_id": "alice"})
    assert signed_up.status_code == 201, signed_up.text
    database = signed_up.json()["database"]
    again = client.post("/signup", json={"user_id": "alice"})
    assert (again.status_code, again.json()["database"]) == (201, database)
    assert fake_turso.database_names() == [database]

    alice = {"X-User-Id": "alice"}
    assert client.get("/me/programs", headers=alice).json() == []
    added = client.post("/me/programs", json={"id": "p1", "name": "Strength"}, headers=alice)
    assert (added.status_code, added.json()) == (201, {"id": "p1", "name": "Strength"})
    client.post("/me/programs", json={"id": "p0", "name": "Cardio"}, headers=alice)
    listed = client.get("/me/programs", headers=alice)
    assert listed.json() == [{"id": "p0", "name": "Cardio"}, {"id": "p1", "name": "Strength"}]

    rejected = client.post("/me/programs", json={"id": "p2", "name": ""}, headers=alice)
    assert rejected.status_code == 400
    assert rejected.json()["code"].startswith("SQLITE_CONSTRAINT")
    duplicate = client.post("/me/programs", json={"id": "p1", "name": "Again"}, headers=alice)
    assert duplicate.status_code == 400


def test_each_user_sees_only_their_database(client: TestClient, fake_turso: FakeTurso) -> None:
    for user in ("alice", "bob"):
        assert client.post("/signup", json={"user_id": user}).status_code == 201
    assert len(fake_turso.database_names()) == 2
    client.post("/me/programs", json={"id": "p1", "name": "A"}, headers={"X-User-Id": "alice"})
    assert client.get("/me/programs", headers={"X-User-Id": "bob"}).json() == []


def test_unknown_anonymous_and_bad_requests(client: TestClient) -> None:
    unknown = client.get("/me/programs", headers={"X-User-Id": "nobody"})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "no database has been set up for this user"}
    assert client.get("/me/programs").status_code == 401
    assert client.post("/signup", json={"user_id": " "}).status_code == 400
    assert client.post("/signup", json={}).status_code == 422
