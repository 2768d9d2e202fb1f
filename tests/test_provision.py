"""create_database against the local Turso on 127.0.0.1, and the embedded default."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

import anyio
import pytest

from per_user_db import (
    ConnectErrorCode,
    CreateStep,
    Credentials,
    Err,
    Ok,
    ProvisionFailed,
    Settings,
    SettingsError,
    UserIdRejected,
    connect,
    create_database,
)
from per_user_db.core._platform import (
    BadRequest,
    InvalidResponse,
    NetworkError,
    PlatformError,
    QuotaExceeded,
    ServerError,
    Timeout,
)
from per_user_db.core._tokens import decode_claims

from .conftest import LocalTursoServer

UNKNOWN = "the database may or may not have been created; call again to finish"


async def create_ok(user_id: str, settings: Settings) -> Credentials:
    result = await create_database(user_id, settings=settings)
    assert isinstance(result, Ok), result
    return result.value


async def test_create_connect_write_read(turso: LocalTursoServer) -> None:
    credentials = await create_ok("user-1", turso.settings)
    assert credentials.name == "next-lift-ci-user-c6c289e49e9c05b2"
    assert credentials.url.startswith("libsql://127.0.0.1:")
    assert credentials.auth_token is not None
    assert credentials.auth_token not in repr(credentials) + str(credentials)
    async with (await connect(credentials.url, credentials.auth_token)).unwrap() as db:
        await db.execute("INSERT INTO programs (id, name) VALUES ('p1', 'Strength')")
        rows = await db.execute("SELECT name FROM programs")
        assert [r[0] for r in rows] == ["Strength"]


async def test_expiry_is_read_from_the_token(turso: LocalTursoServer) -> None:
    credentials = await create_ok("user-1", turso.settings)
    assert credentials.auth_token is not None
    claims = decode_claims(credentials.auth_token).unwrap()
    assert credentials.expires_at == claims.expires_at
    assert credentials.expires_at is not None
    issued = dt.datetime.fromtimestamp(turso.clock.now, tz=dt.UTC)
    assert abs((credentials.expires_at - issued) - dt.timedelta(days=30)) < dt.timedelta(seconds=2)
    never = dataclasses.replace(turso.settings, token_days=None)
    assert (await create_ok("user-1", never)).expires_at is None


async def test_idempotent_same_name_and_url_one_database(turso: LocalTursoServer) -> None:
    first = await create_ok("User_42", turso.settings)
    second = await create_ok("user-42", turso.settings)
    assert (first.name, first.url) == (second.name, second.url)
    assert first.auth_token is not None
    assert second.auth_token is not None
    ids = {decode_claims(t).unwrap().database_id for t in (first.auth_token, second.auth_token)}
    assert len(ids) == 1  # both tokens open the one database
    async with turso.client() as api:
        names = [d.name for d in (await api.list_databases()).unwrap()]
    assert names.count(first.name) == 1


async def test_expired_and_rotated_tokens_are_refused(turso: LocalTursoServer) -> None:
    credentials = await create_ok("user-1", dataclasses.replace(turso.settings, token_days=1))
    assert credentials.auth_token is not None
    turso.clock.now += 2 * 86400
    expired = await connect(credentials.url, credentials.auth_token)
    assert isinstance(expired, Err)
    assert expired.error.code is ConnectErrorCode.UNAUTHORIZED
    assert credentials.auth_token not in str(expired.error)

    fresh = await create_ok("user-1", turso.settings)  # a retry mints a new token
    async with (await connect(fresh.url, fresh.auth_token)).unwrap():
        pass
    async with turso.client() as api:
        assert isinstance(await api.invalidate_tokens(fresh.name), Ok)
    rotated = await connect(fresh.url, fresh.auth_token)
    assert isinstance(rotated, Err)
    assert rotated.error.code is ConnectErrorCode.UNAUTHORIZED
    again = await create_ok("user-1", turso.settings)
    async with (await connect(again.url, again.auth_token)).unwrap():
        pass


async def test_read_only_tokens_cannot_write(turso: LocalTursoServer) -> None:
    full = await create_ok("user-1", turso.settings)
    async with (await connect(full.url, full.auth_token)).unwrap():
        pass  # migrated with the full-access token
    read_only = await create_ok(
        "user-1", dataclasses.replace(turso.settings, authorization="read-only")
    )
    async with (await connect(read_only.url, read_only.auth_token)).unwrap() as db:
        assert (await db.execute("SELECT count(*) FROM programs"))[0][0] == 0
        with pytest.raises(Exception, match="read-only"):
            await db.execute("INSERT INTO programs (id, name) VALUES ('p', 'x')")


async def test_two_hundred_creates_under_a_thirty_percent_fault_rate(tmp_path: Path) -> None:
    from per_user_db.dev import create_local_turso_app, local_turso, serve

    app = create_local_turso_app(tmp_path / "faulty", fail_rate=0.3, seed=20261127)
    async with serve(app) as address:
        state = local_turso(app)
        settings = Settings(
            api_token=state.api_token,
            organization=state.org,
            api_url=address.url,
            app_env="ci",
        )
        settings = dataclasses.replace(
            settings,
            retry=dataclasses.replace(settings.retry, attempts=4, base_delay=0.01, max_delay=0.05),
        )
        results: dict[str, Credentials] = {}
        failures = 0
        limiter = anyio.CapacityLimiter(25)

        async def provision(user_id: str) -> None:
            nonlocal failures
            async with limiter:
                while True:  # the app's own retry: call again until it succeeds
                    match await create_database(user_id, settings=settings):
                        case Ok(credentials):
                            results[user_id] = credentials
                            return
                        case Err(_):
                            failures += 1

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for n in range(200):
                    group.start_soon(provision, f"user-{n}")
        assert sum(state.faults.injected.values()) > 50  # the faults really happened
        assert len(results) == 200
        databases = {r.name: r for r in state.registry.databases()}
        assert len(databases) == 200  # no duplicates, none extra
        for credentials in results.values():
            assert credentials.auth_token is not None
            claims = decode_claims(credentials.auth_token).unwrap()
            assert claims.database_id == databases[credentials.name].db_id


async def test_quota_is_a_typed_error(tmp_path: Path) -> None:
    from per_user_db.dev import create_local_turso_app, local_turso, serve

    app = create_local_turso_app(tmp_path / "small", max_databases=1)
    async with serve(app) as address:
        state = local_turso(app)
        settings = Settings(
            api_token=state.api_token, organization=state.org, api_url=address.url, app_env="ci"
        )
        await create_ok("first", settings)
        result = await create_database("second", settings=settings)
        assert isinstance(result, Err)
        assert isinstance(result.error, ProvisionFailed)
        assert isinstance(result.error.error, QuotaExceeded)
        assert result.error.step is CreateStep.CREATE
        assert not result.error.database_created
        assert state.api_token not in str(result.error)


async def test_embedded_default(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="per_user_db"):
        first = await create_ok("alice@example.com", settings)
        second = await create_ok("Alice@example.com", settings)
    assert first == second
    assert first.url == f"file:{(tmp_path / 'data' / (first.name + '.db')).resolve()}"
    assert (first.auth_token, first.expires_at) == (None, None)
    announcements = [r for r in caplog.records if "embedded SQLite files" in r.getMessage()]
    assert len(announcements) == 1  # once per data dir, however many calls
    async with (await connect(first.url)).unwrap() as db:
        assert (await db.execute("SELECT count(*) FROM __drizzle_migrations"))[0][0] == 4


async def test_bad_user_ids_are_values(tmp_path: Path) -> None:
    result = await create_database("   ", settings=Settings(data_dir=tmp_path))
    assert isinstance(result, Err)
    assert isinstance(result.error, UserIdRejected)
    assert "user_id must be a non-blank str" in str(result.error)


@pytest.mark.parametrize(
    ("env", "variable", "reason"),
    [
        ({"TURSO_PLATFORM_API_TOKEN": "t"}, "TURSO_ORGANIZATION", "required"),
        ({"TURSO_PLATFORM_API_TOKEN": "t", "TURSO_ORGANIZATION": "o"}, "APP_ENV", "required"),
        ({"APP_ENV": "Prod"}, "APP_ENV", "app_env must be lowercase"),
        ({"PER_USER_DB_PREFIX": "my_app"}, "PER_USER_DB_PREFIX", "prefix must be lowercase"),
        ({"APP_ENV": "e" * 60}, "APP_ENV", "over Turso's 64"),
        ({"PER_USER_DB_TOKEN_DAYS": "0"}, "PER_USER_DB_TOKEN_DAYS", "at least 1"),
        ({"PER_USER_DB_TOKEN_DAYS": "soon"}, "PER_USER_DB_TOKEN_DAYS", "'never'"),
        (
            {"PER_USER_DB_TOKEN_AUTHORIZATION": "admin"},
            "PER_USER_DB_TOKEN_AUTHORIZATION",
            "read-only",
        ),
        ({"TURSO_API_URL": "ftp://x"}, "TURSO_API_URL", "http(s) URL"),
    ],
)
def test_settings_errors_name_the_variable(env: dict[str, str], variable: str, reason: str) -> None:
    result = Settings.from_env(env)
    assert isinstance(result, Err)
    assert isinstance(result.error, SettingsError)
    assert result.error.variable == variable
    assert reason in result.error.reason
    assert str(result.error) != "t"


def test_settings_from_env_reads_everything() -> None:
    settings = Settings.from_env(
        {
            "TURSO_PLATFORM_API_TOKEN": "api-secret",
            "TURSO_ORGANIZATION": "acme",
            "TURSO_GROUP": "eu",
            "TURSO_API_URL": "http://127.0.0.1:9",
            "APP_ENV": "preview-pr12",
            "PER_USER_DB_PREFIX": "acme",
            "PER_USER_DB_NAME_SECRET": "name-secret",
            "PER_USER_DB_TOKEN_DAYS": "never",
            "PER_USER_DB_TOKEN_AUTHORIZATION": "read-only",
            "PER_USER_DB_DATA_DIR": "/tmp/x",
        }
    ).unwrap()
    assert (settings.organization, settings.group, settings.app_env) == (
        "acme",
        "eu",
        "preview-pr12",
    )
    assert (settings.token_days, settings.authorization) == (None, "read-only")
    assert settings.name_secret == b"name-secret"
    assert settings.backend.value == "turso"
    assert "api-secret" not in repr(settings)
    assert "name-secret" not in repr(settings)
    embedded = Settings.from_env({}).unwrap()
    assert (embedded.backend.value, embedded.app_env) == ("embedded", "development")


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (
            QuotaExceeded(operation="create database", status=402, message="limit"),
            "no database was created",
        ),
        (
            BadRequest(operation="create database", status=400, message="bad name"),
            "no database was created",
        ),
        (Timeout(operation="create database", status=None, message="no answer in 10 s"), UNKNOWN),
        (NetworkError(operation="create database", status=None, message="reset"), UNKNOWN),
        (ServerError(operation="create database", status=502, message="bad gateway"), UNKNOWN),
        (InvalidResponse(operation="create database", status=200, message="not JSON"), UNKNOWN),
    ],
)
def test_a_failed_create_says_whether_the_database_exists_only_when_it_knows(
    error: PlatformError, state: str
) -> None:
    failed = ProvisionFailed(
        name="next-lift-ci-user-x", step=CreateStep.CREATE, error=error, database_created=False
    )
    assert str(failed) == f"could not create the database next-lift-ci-user-x: {error} ({state})"
