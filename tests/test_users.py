"""Credential stores, token refresh and the per-user scope."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import sqlite3
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from per_user_db import (
    ConnectErrorCode,
    Credentials,
    DatabaseCredentialStore,
    Err,
    InMemoryCredentialStore,
    NoDatabaseScope,
    NotProvisioned,
    Ok,
    RefreshFailed,
    StoreCorrupt,
    TokenCipher,
    UserDatabaseUnavailable,
    connect,
    current_database,
    get_valid_credentials,
    open_database,
    refresh_tokens,
    setup_user_database,
    user_database,
)
from per_user_db._seams import apply_migrations_doubles, create_database_doubles
from per_user_db.core._migration_errors import MigrationUnavailable

from .conftest import LocalTursoServer

KEY = bytes(range(32))
DAY = dt.timedelta(days=1)


def token_requests(turso: LocalTursoServer) -> int:
    return turso.turso.protocol.counts.count(route="platform/database_token")


def now_of(turso: LocalTursoServer) -> dt.datetime:
    return dt.datetime.fromtimestamp(turso.clock.now, tz=dt.UTC)


# --- the cipher ----------------------------------------------------------------------------


def test_tokens_are_sealed_in_the_originals_layout() -> None:
    cipher = TokenCipher(KEY)
    sealed = cipher.encrypt("eyJ.token.sig")
    raw = base64.b64decode(sealed)
    nonce, tag, ciphertext = raw[:12], raw[12:28], raw[28:]
    assert AESGCM(KEY).decrypt(nonce, ciphertext + tag, None) == b"eyJ.token.sig"
    assert cipher.decrypt(sealed) == Ok("eyJ.token.sig")
    assert cipher.encrypt("eyJ.token.sig") != sealed  # a fresh nonce every time
    assert "0001020304" not in repr(cipher)


def test_wrong_key_tampering_and_garbage_are_typed_errors() -> None:
    sealed = TokenCipher(KEY).encrypt("eyJ.token.sig")
    wrong = TokenCipher(bytes(32)).decrypt(sealed)
    assert isinstance(wrong, Err)
    assert wrong.error.reason == "wrong key, or the row was altered"
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 0x01
    tampered = TokenCipher(KEY).decrypt(base64.b64encode(bytes(raw)).decode())
    assert isinstance(tampered, Err)
    assert "altered" in str(tampered.error)
    for garbage, reason in (("%%%", "not base64"), ("AAAA", "too short")):
        result = TokenCipher(KEY).decrypt(garbage)
        assert isinstance(result, Err)
        assert reason in result.error.reason


def test_the_key_comes_from_the_environment() -> None:
    assert isinstance(TokenCipher.from_env({"PER_USER_DB_TOKEN_KEY": KEY.hex()}), Ok)
    for env in ({}, {"PER_USER_DB_TOKEN_KEY": "abc"}, {"PER_USER_DB_TOKEN_KEY": "zz" * 32}):
        result = TokenCipher.from_env(env)
        assert isinstance(result, Err)
        assert result.error.variable == "PER_USER_DB_TOKEN_KEY"


# --- the stores ----------------------------------------------------------------------------


@pytest.fixture
def auth_db(tmp_path: Path) -> Path:
    return tmp_path / "auth.db"


async def open_store(path: Path, key: bytes = KEY) -> DatabaseCredentialStore:
    db = (await open_database(f"file:{path}")).unwrap()
    return (await DatabaseCredentialStore.open(db, TokenCipher(key))).unwrap()


CREDENTIALS = Credentials(
    name="next-lift-ci-user-1",
    url="libsql://db.example",
    auth_token="eyJ.secret-token.sig",
    expires_at=dt.datetime(2026, 12, 27, tzinfo=dt.UTC),
)
T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


async def test_database_store_round_trip_encrypted_at_rest(auth_db: Path) -> None:
    store = await open_store(auth_db)
    assert (await store.load("u1")).unwrap() is None
    saved = (await store.save("u1", CREDENTIALS, now=T0)).unwrap()
    assert saved.credentials == CREDENTIALS
    loaded = (await store.load("u1")).unwrap()
    assert loaded is not None
    assert loaded.credentials == CREDENTIALS
    raw = (
        sqlite3.connect(auth_db)
        .execute("SELECT encrypted_token FROM per_user_database")
        .fetchone()[0]
    )
    assert "secret-token" not in raw
    later = dataclasses.replace(CREDENTIALS, auth_token="eyJ.newer.sig")
    updated = (await store.save("u1", later, now=T0 + DAY)).unwrap()
    assert (updated.created_at, updated.updated_at) == (T0, T0 + DAY)
    assert [s.user_id for s in (await store.expiring(CREDENTIALS.expires_at)).unwrap()] == ["u1"]  # type: ignore[arg-type]
    assert (await store.expiring(T0)).unwrap() == []


async def test_store_migrations_keep_to_their_own_version_table(auth_db: Path) -> None:
    await open_store(auth_db)
    # The app's own drizzle migrations in the same database see nothing of ours.
    async with (await connect(f"file:{auth_db}")).unwrap() as db:
        rows = await db.execute('SELECT count(*) FROM "__drizzle_migrations"')
        assert rows[0][0] == 4
    await open_store(auth_db)  # opening again applies nothing, and nothing conflicts
    conn = sqlite3.connect(auth_db)
    assert conn.execute('SELECT count(*) FROM "__per_user_db_migrations"').fetchone()[0] == 1


async def test_wrong_key_and_tampered_rows_are_store_corrupt(auth_db: Path) -> None:
    store = await open_store(auth_db)
    await store.save("u1", CREDENTIALS, now=T0)
    other_key = await open_store(auth_db, key=bytes(32))
    wrong = await other_key.load("u1")
    assert isinstance(wrong, Err)
    assert isinstance(wrong.error, StoreCorrupt)
    assert "secret-token" not in str(wrong.error)
    conn = sqlite3.connect(auth_db)
    conn.execute(
        "UPDATE per_user_database SET encrypted_token = 'AAAA' || substr(encrypted_token, 5)"
    )
    conn.commit()
    tampered = await store.load("u1")
    assert isinstance(tampered, Err)
    assert isinstance(tampered.error, StoreCorrupt)


# --- setup ---------------------------------------------------------------------------------


async def test_setup_creates_saves_migrates_and_is_idempotent(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    first = (await setup_user_database("user-1", store=store, settings=turso.settings)).unwrap()
    async with (await connect(first.url, first.auth_token, migrate=False)).unwrap() as db:
        assert (await db.execute('SELECT count(*) FROM "__drizzle_migrations"'))[0][0] == 4
    tokens = token_requests(turso)
    again = (await setup_user_database("user-1", store=store, settings=turso.settings)).unwrap()
    assert again == first
    assert token_requests(turso) == tokens  # nothing minted the second time
    assert len(turso.turso.registry.databases()) == 1


async def test_setup_resumes_after_a_failure_at_each_step(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    fast = dataclasses.replace(
        turso.settings, retry=dataclasses.replace(turso.settings.retry, attempts=1)
    )

    # 1. creating fails
    turso.turso.faults.fail_rate = 1.0
    assert isinstance(await setup_user_database("u", store=store, settings=fast), Err)
    turso.turso.faults.fail_rate = 0.0
    assert (await store.load("u")).unwrap() is None

    # 2. saving fails
    class FailingOnce(InMemoryCredentialStore):
        failed = False

        async def save(self, user_id: str, credentials: Credentials, *, now: dt.datetime):  # type: ignore[no-untyped-def]
            if not self.failed:
                self.failed = True
                from per_user_db import StoreUnavailable

                return Err(StoreUnavailable(message="disk full"))
            return await super().save(user_id, credentials, now=now)

    flaky = FailingOnce()
    failed_save = await setup_user_database("u", store=flaky, settings=fast)
    assert isinstance(failed_save, Err)
    assert "disk full" in str(failed_save.error)
    assert isinstance(await setup_user_database("u", store=flaky, settings=fast), Ok)

    # 3. migrating fails
    async def broken(*args: object, **kwargs: object) -> Err[MigrationUnavailable]:
        return Err(MigrationUnavailable(database="x", code="SERVER_ERROR", message="boom"))

    apply_migrations_doubles.append(broken)
    try:
        failed_migrate = await setup_user_database("v", store=store, settings=fast)
    finally:
        apply_migrations_doubles.remove(broken)
    assert isinstance(failed_migrate, Err)
    assert (await store.load("v")).unwrap() is not None  # saved before migrating
    done = (await setup_user_database("v", store=store, settings=fast)).unwrap()
    async with (await connect(done.url, done.auth_token, migrate=False)).unwrap() as db:
        assert (await db.execute('SELECT count(*) FROM "__drizzle_migrations"'))[0][0] == 4
    assert len(turso.turso.registry.databases()) == 2  # u and v, once each


# --- refresh -------------------------------------------------------------------------------


async def set_up(
    turso: LocalTursoServer, store: InMemoryCredentialStore, user: str = "user-1", days: int = 30
) -> Credentials:
    settings = dataclasses.replace(turso.settings, token_days=days)
    return (await setup_user_database(user, store=store, settings=settings)).unwrap()


async def test_not_provisioned(turso: LocalTursoServer) -> None:
    result = await get_valid_credentials(
        "nobody", store=InMemoryCredentialStore(), settings=turso.settings
    )
    assert isinstance(result, Err)
    assert result.error == NotProvisioned(user_id="nobody")


async def test_refresh_margin_edges(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store)
    assert created.expires_at is not None
    margin = 7 * DAY
    just_outside = created.expires_at - margin - dt.timedelta(seconds=1)
    kept = (
        await get_valid_credentials(
            "user-1", store=store, settings=turso.settings, now=just_outside
        )
    ).unwrap()
    assert kept == created
    on_the_edge = created.expires_at - margin
    turso.clock.now = on_the_edge.timestamp()
    renewed = (
        await get_valid_credentials("user-1", store=store, settings=turso.settings, now=on_the_edge)
    ).unwrap()
    assert renewed.auth_token != created.auth_token
    assert renewed.expires_at is not None
    assert renewed.expires_at > created.expires_at
    assert (await store.load("user-1")).unwrap().credentials == renewed  # type: ignore[union-attr]


async def test_a_hundred_concurrent_callers_mint_one_token(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store)
    assert created.expires_at is not None
    moment = created.expires_at - DAY
    turso.clock.now = moment.timestamp()
    before = token_requests(turso)
    tokens: list[str | None] = []

    async def caller() -> None:
        result = await get_valid_credentials(
            "user-1", store=store, settings=turso.settings, now=moment
        )
        tokens.append(result.unwrap().auth_token)

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(caller)
    assert token_requests(turso) - before == 1
    assert len(set(tokens)) == 1
    assert tokens[0] != created.auth_token


async def test_api_down_uses_a_still_valid_token_but_not_an_expired_one(
    turso: LocalTursoServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store)
    assert created.expires_at is not None
    down = dataclasses.replace(
        turso.settings, retry=dataclasses.replace(turso.settings.retry, attempts=1)
    )
    turso.turso.faults.fail_rate = 1.0
    soon = created.expires_at - DAY
    with caplog.at_level(logging.WARNING, logger="per_user_db"):
        kept = (
            await get_valid_credentials("user-1", store=store, settings=down, now=soon)
        ).unwrap()
    assert kept == created
    assert "using the current one" in caplog.text
    assert created.auth_token is not None
    assert created.auth_token not in caplog.text
    expired = await get_valid_credentials(
        "user-1", store=store, settings=down, now=created.expires_at + DAY
    )
    assert isinstance(expired, Err)
    assert isinstance(expired.error, RefreshFailed)
    assert created.auth_token not in str(expired.error)


async def test_refresh_sweep_reports_and_bounds_concurrency(turso: LocalTursoServer) -> None:
    loads_in_flight = 0
    most = 0

    class Counting(InMemoryCredentialStore):
        async def load(self, user_id: str):  # type: ignore[no-untyped-def]
            nonlocal loads_in_flight, most
            loads_in_flight += 1
            most = max(most, loads_in_flight)
            await anyio.sleep(0.01)
            try:
                return await super().load(user_id)
            finally:
                loads_in_flight -= 1

    store = Counting()
    for n in range(6):
        await set_up(turso, store, user=f"soon-{n}", days=3)
    await set_up(turso, store, user="later", days=30)
    moment = now_of(turso)
    report = (
        await refresh_tokens(
            store, within=7 * DAY, concurrency=2, settings=turso.settings, now=moment
        )
    ).unwrap()
    assert report.refreshed == tuple(f"soon-{n}" for n in range(6))
    assert (report.failed, report.skipped) == ((), ())
    assert most <= 2

    turso.turso.faults.fail_rate = 1.0
    down = dataclasses.replace(
        turso.settings, retry=dataclasses.replace(turso.settings.retry, attempts=1)
    )
    late = moment + 40 * DAY  # everything expired: "later" too
    report = (await refresh_tokens(store, within=7 * DAY, settings=down, now=late)).unwrap()
    assert report.refreshed == ()
    assert {user for user, _ in report.failed} == {*(f"soon-{n}" for n in range(6)), "later"}


# --- the scope -----------------------------------------------------------------------------


async def test_scope_opens_migrates_exposes_and_closes(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    await set_up(turso, store)
    with pytest.raises(NoDatabaseScope):
        current_database()
    seen: list[object] = []
    async with user_database("user-1", store=store, settings=turso.settings) as db:
        assert current_database() is db

        async def in_a_task() -> None:
            await anyio.lowlevel.checkpoint()
            seen.append(current_database())

        async with anyio.create_task_group() as group:
            group.start_soon(in_a_task)
        await db.execute("INSERT INTO programs (id, name) VALUES ('p1', 'A')")
    assert seen == [db]
    assert db.closed
    with pytest.raises(NoDatabaseScope):
        current_database()


async def test_body_errors_propagate_unchanged_and_close(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    await set_up(turso, store)
    opened: list[object] = []

    class AppError(Exception):
        pass

    async def body() -> None:
        async with user_database("user-1", store=store, settings=turso.settings) as db:
            opened.append(db)
            raise AppError("handler failed")

    with pytest.raises(AppError, match="handler failed"):
        await body()
    assert opened[0].closed  # type: ignore[attr-defined]

    with anyio.move_on_after(0.2):
        async with user_database("user-1", store=store, settings=turso.settings) as db:
            opened.append(db)
            await anyio.sleep(10)
    assert opened[1].closed  # type: ignore[attr-defined]


async def test_open_failures_are_reported_as_such(turso: LocalTursoServer) -> None:
    with pytest.raises(UserDatabaseUnavailable) as missing:
        async with user_database(
            "nobody", store=InMemoryCredentialStore(), settings=turso.settings
        ):
            pass
    assert isinstance(missing.value.error, NotProvisioned)
    bad = Credentials(
        name="x", url="libsql://127.0.0.1:1/db/x/?tls=0", auth_token="t", expires_at=None
    )
    with pytest.raises(UserDatabaseUnavailable) as unreachable:
        async with user_database(bad):
            pass
    assert unreachable.value.error.code is ConnectErrorCode.NETWORK_ERROR  # type: ignore[attr-defined]


async def test_a_rotated_token_is_replaced_mid_flight(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store)
    async with user_database("user-1", store=store, settings=turso.settings) as db:
        await db.execute("INSERT INTO programs (id, name) VALUES ('p1', 'A')")
        async with turso.client() as api:
            (await api.invalidate_tokens(created.name)).unwrap()
        rows = await db.execute("SELECT name FROM programs")  # 401, new token, sent again
        assert [r[0] for r in rows] == ["A"]
    stored = (await store.load("user-1")).unwrap()
    assert stored is not None
    assert stored.credentials.auth_token != created.auth_token


async def test_mocked_create_database_is_seen_by_setup(tmp_path: Path) -> None:
    async def fake(user_id: str, **kwargs: object) -> Ok[Credentials]:
        return Ok(
            Credentials(
                name="mock", url=f"file:{tmp_path / 'mock.db'}", auth_token=None, expires_at=None
            )
        )

    create_database_doubles.append(fake)
    try:
        store = InMemoryCredentialStore()
        result = await setup_user_database("u", store=store)
    finally:
        create_database_doubles.remove(fake)
    assert result.unwrap().name == "mock"
