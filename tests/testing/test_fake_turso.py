"""``fake_turso``: the local Turso on 127.0.0.1, reached through settings or the env."""

from __future__ import annotations

import os

from per_user_db import Backend, Settings, connect, create_database
from per_user_db.testing import FakeTurso

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
