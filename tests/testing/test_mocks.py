"""Mocks of create_database / apply_migrations reach code that imported them by name."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from per_user_db import (
    ConnectErrorCode,
    CreateStep,
    Credentials,
    Database,
    Err,
    MigrationUnavailable,
    ProvisionFailed,
    Settings,
    StatementFailed,
    UserIdRejected,
    _seams,
    apply_migrations,
    connect,
    create_database,
)
from per_user_db._bundled import bundled_migrations
from per_user_db.core._platform import ServerError
from per_user_db.testing import (
    MOCK_AUTH_TOKEN,
    MOCK_DATABASE_NAME,
    MOCK_DATABASE_URL,
    MOCK_EXPIRES_AT,
    MOCK_ISSUED_AT,
    PerUserDbMocks,
    mock_apply_migrations_error,
    mock_apply_migrations_ok,
    mock_create_database_error,
    mock_create_database_ok,
)

from . import app

TAGS = tuple(m.tag for m in bundled_migrations())


@pytest.fixture(autouse=True)
def no_double_left_behind() -> Iterator[None]:
    assert _seams.create_database_doubles == []
    assert _seams.apply_migrations_doubles == []
    yield
    assert _seams.create_database_doubles == []
    assert _seams.apply_migrations_doubles == []


async def test_create_database_ok_defaults_and_recorded_calls() -> None:
    settings = Settings(app_env="ci")
    with mock_create_database_ok() as mock:
        assert _seams.create_database_doubles != []
        credentials = await app.sign_up("user-1")
        await create_database("user-2", settings=settings)
    assert _seams.create_database_doubles == []
    assert credentials == Credentials(
        name="mock-per-user-db-name",
        url="libsql://mock-per-user-db.turso.io",
        auth_token="mock-auth-token",
        expires_at=MOCK_EXPIRES_AT,
    )
    assert isinstance(credentials, Credentials)
    assert (credentials.name, credentials.url, credentials.auth_token) == (
        MOCK_DATABASE_NAME,
        MOCK_DATABASE_URL,
        MOCK_AUTH_TOKEN,
    )
    assert dt.timedelta(days=30) == MOCK_EXPIRES_AT - MOCK_ISSUED_AT
    assert MOCK_EXPIRES_AT.tzinfo is not None
    assert mock.call_count == 2
    assert mock.user_ids == ["user-1", "user-2"]
    assert mock.calls[0].args == ("user-1",)
    assert mock.calls[1].kwargs == {"settings": settings, "now": None, "client": None}


async def test_create_database_ok_overrides() -> None:
    with mock_create_database_ok(name="db-7", url="libsql://x.turso.io", expires_at=None):
        credentials = await app.sign_up("user-7")
    assert isinstance(credentials, Credentials)
    assert (credentials.name, credentials.url, credentials.expires_at) == (
        "db-7",
        "libsql://x.turso.io",
        None,
    )


async def test_create_database_error() -> None:
    with mock_create_database_error() as mock:
        message = await app.sign_up("user-1")
    assert isinstance(message, str)
    assert message.startswith("sign-up failed: could not create")
    assert mock.user_ids == ["user-1"]
    rejected = UserIdRejected(reason="mock")
    with mock_create_database_error(rejected):
        assert await create_database("user-1") == Err(rejected)


async def test_create_database_mocks_are_undone_on_errors_and_nest() -> None:
    with pytest.raises(RuntimeError), mock_create_database_ok():
        raise RuntimeError("boom")
    with mock_create_database_ok(name="outer") as outer:
        with mock_create_database_error() as inner:
            assert isinstance(await create_database("a"), Err)
        assert (await create_database("b")).unwrap().name == "outer"
    assert (outer.user_ids, inner.user_ids) == (["b"], ["a"])
    started = mock_create_database_ok().install()
    try:
        with pytest.raises(RuntimeError, match="already installed"):
            started.install()
    finally:
        started.uninstall()
    started.uninstall()  # idempotent


async def test_apply_migrations_ok_reaches_connect_and_callers(per_user_database: Database) -> None:
    with mock_apply_migrations_ok() as mock:
        assert await app.upgrade(per_user_database) == ()
        report = (await apply_migrations(per_user_database)).unwrap()
        db = (await connect(":memory:")).unwrap()  # nothing migrated: the mock answered
        try:
            tables = await db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
            assert tables[0][0] == 0
        finally:
            await db.close()
    assert (report.applied, report.already_applied) == ((), TAGS)
    assert report.database == per_user_database.url
    assert mock.call_count == 3
    assert mock.databases[:2] == [per_user_database, per_user_database]
    assert mock.calls[1].kwargs == {"allow_ahead": False, "max_attempts": 12}


async def test_apply_migrations_ok_overrides(per_user_database: Database) -> None:
    with mock_apply_migrations_ok(applied=("0004_next",), attempts=3):
        assert await app.upgrade(per_user_database) == ("0004_next",)
    with pytest.raises(TypeError, match="no field"):
        mock_apply_migrations_ok(bogus=1)


async def test_apply_migrations_error_fails_connect() -> None:
    with mock_apply_migrations_error() as mock:
        result = await connect(":memory:")
    assert isinstance(result, Err)
    assert result.error.code is ConnectErrorCode.MIGRATION_FAILED
    assert isinstance(result.error.cause, StatementFailed)
    assert result.error.cause.migration == TAGS[-1]
    assert mock.call_count == 1
    given = MigrationUnavailable(database="x", code="SQLITE_BUSY", message="busy")
    with mock_apply_migrations_error(given):
        db = (await connect(":memory:", migrate=False)).unwrap()
        try:
            assert await app.upgrade(db) == f"upgrade failed: {given}"
        finally:
            await db.close()


async def test_the_fixture_installs_and_undoes(
    per_user_db_mocks: PerUserDbMocks, per_user_database: Database
) -> None:
    created = per_user_db_mocks.create_database_ok(name="from-fixture")
    failing = per_user_db_mocks.apply_migrations_error()
    assert (await create_database("u")).unwrap().name == "from-fixture"
    assert isinstance(await app.upgrade(per_user_database), str)
    assert created.call_count == failing.call_count == 1
    assert len(_seams.create_database_doubles) == len(_seams.apply_migrations_doubles) == 1
    per_user_db_mocks.undo()
    assert _seams.create_database_doubles == _seams.apply_migrations_doubles == []
    per_user_db_mocks.create_database_error(
        ProvisionFailed(
            name="n",
            step=CreateStep.ISSUE_TOKEN,
            error=ServerError(operation="op", status=503, message="m"),
            database_created=True,
        )
    )
    per_user_db_mocks.apply_migrations_ok()
    # left installed on purpose: the autouse fixture checks the teardown removed them


def test_repr_never_lies() -> None:
    mock = mock_create_database_ok()
    assert "not installed" in repr(mock)
    with mock:
        assert "installed, 0 call(s)" in repr(mock)
