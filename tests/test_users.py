"""Credential stores, token refresh and the per-user scope."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import datetime as dt
import logging
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import per_user_db._users
from per_user_db import (
    ConnectError,
    ConnectErrorCode,
    CreateStep,
    Credentials,
    DatabaseCredentialStore,
    Err,
    InMemoryCredentialStore,
    NoDatabaseScope,
    NotProvisioned,
    Ok,
    ProvisionFailed,
    RefreshFailed,
    RefreshReport,
    Result,
    Settings,
    StoreCorrupt,
    StoredCredentials,
    StoreUnavailable,
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
from per_user_db._provision import issue_token
from per_user_db._seams import apply_migrations_doubles, create_database_doubles
from per_user_db.core._migration_errors import MigrationUnavailable
from per_user_db.core._platform import InvalidResponse, RateLimited, ServerError

from .conftest import LocalTursoServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from per_user_db import Database, StoreError
    from per_user_db.turso import PlatformClient

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
    for user, reason in report.failed:
        assert reason.startswith(f"could not refresh the token of user {user!r}: ")


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
    assert isinstance(unreachable.value.error, ConnectError)  # typed: the Unavailable union
    assert unreachable.value.error.code is ConnectErrorCode.NETWORK_ERROR


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


# --- refresh: each decision, and what goes wrong without it --------------------------------


def api_down(turso: LocalTursoServer) -> Settings:
    """Settings whose every Platform API call fails at once (one attempt, always a fault)."""
    turso.turso.faults.fail_rate = 1.0
    return dataclasses.replace(
        turso.settings, retry=dataclasses.replace(turso.settings.retry, attempts=1)
    )


async def mint(turso: LocalTursoServer, credentials: Credentials, days: int) -> Credentials:
    """A token for the same database, minted behind our back (another process)."""
    tick(turso)
    settings = dataclasses.replace(turso.settings, token_days=days)
    async with turso.client() as api:
        return (
            await issue_token(
                api, name=credentials.name, url=credentials.url, settings=settings, now=None
            )
        ).unwrap()


def tick(turso: LocalTursoServer) -> None:
    """One second later on the server: tokens are signed deterministically, so two minted
    within the same second for one database are the same token."""
    turso.clock.now += 1


class Gated(InMemoryCredentialStore):
    """A store that runs ``hooks[n]`` (if any) before answering its n-th ``load`` (from 1),
    to put another caller or process exactly between two reads."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.hooks: dict[int, Callable[[], Awaitable[object]]] = {}

    async def load(self, user_id: str) -> Result[StoredCredentials | None, StoreError]:
        self.loads += 1
        hook = self.hooks.get(self.loads)
        if hook is not None:
            await hook()
        return await super().load(user_id)


async def stored_token(store: InMemoryCredentialStore, user: str = "user-1") -> str | None:
    found = (await store.load(user)).unwrap()
    assert found is not None
    return found.credentials.auth_token


async def test_embedded_credentials_have_no_token_to_refresh(
    turso: LocalTursoServer, tmp_path: Path
) -> None:
    store = InMemoryCredentialStore()
    embedded = Credentials(
        name="local", url=f"file:{tmp_path / 'u.db'}", auth_token=None, expires_at=None
    )
    await store.save("user-1", embedded, now=T0)
    for ask in ({"force_refresh": True}, {"rejected_token": "eyJ.old.sig"}, {}):
        result = await get_valid_credentials(
            "user-1",
            store=store,
            settings=turso.settings,
            **ask,
        )
        assert result == Ok(embedded)
    assert token_requests(turso) == 0
    assert store.saves == 1


async def test_a_token_another_process_replaced_meanwhile_is_used_not_minted_again(
    turso: LocalTursoServer,
) -> None:
    store = Gated()
    created = await set_up(turso, store, days=3)  # expires within the 7-day margin
    fresher = await mint(turso, created, days=30)
    minted = token_requests(turso)

    async def other_process_refreshes() -> None:
        await InMemoryCredentialStore.save(store, "user-1", fresher, now=now_of(turso))

    store.hooks[store.loads + 2] = other_process_refreshes  # between our two reads
    result = await get_valid_credentials(
        "user-1", store=store, settings=turso.settings, now=now_of(turso)
    )
    assert result == Ok(fresher)
    assert token_requests(turso) == minted


async def test_a_forced_refresh_mints_even_when_the_stored_token_is_fresh(
    turso: LocalTursoServer,
) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store)
    minted = token_requests(turso)
    tokens = set()
    for _ in range(2):  # a finished flight is not reused: the second mints again
        tick(turso)
        forced = (
            await get_valid_credentials(
                "user-1", store=store, settings=turso.settings, force_refresh=True
            )
        ).unwrap()
        tokens.add(forced.auth_token)
        assert (forced.name, forced.url) == (created.name, created.url)
        assert await stored_token(store) == forced.auth_token
    assert created.auth_token not in tokens
    assert len(tokens) == 2
    assert token_requests(turso) == minted + 2


async def test_a_token_expiring_exactly_now_is_replaced_and_never_served_after_a_failure(
    turso: LocalTursoServer,
) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store)
    assert created.expires_at is not None
    turso.clock.now = created.expires_at.timestamp()
    renewed = await get_valid_credentials(
        "user-1",
        store=store,
        settings=turso.settings,
        now=created.expires_at,
        margin=dt.timedelta(0),
    )
    assert renewed.unwrap().auth_token != created.auth_token

    await store.save("user-1", created, now=created.expires_at)  # back to the old token
    failed = await get_valid_credentials(
        "user-1", store=store, settings=api_down(turso), now=created.expires_at, margin=DAY
    )
    assert isinstance(failed, Err)
    assert isinstance(failed.error, RefreshFailed)
    # A second earlier, the same failure keeps the old token: it is still valid.
    kept = await get_valid_credentials(
        "user-1",
        store=store,
        settings=api_down(turso),
        now=created.expires_at - dt.timedelta(seconds=1),
        margin=DAY,
    )
    assert kept == Ok(created)


@pytest.mark.parametrize("ask", ["force_refresh", "rejected_token"])
async def test_a_failed_forced_or_rejected_refresh_is_an_error_not_the_old_token(
    turso: LocalTursoServer, ask: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store)  # valid for 30 days: fine by expiry
    assert created.auth_token is not None
    how = (
        {"force_refresh": True}
        if ask == "force_refresh"
        else {"rejected_token": created.auth_token}
    )
    with caplog.at_level(logging.WARNING, logger="per_user_db"):
        result = await get_valid_credentials(
            "user-1",
            store=store,
            settings=api_down(turso),
            **how,
        )
    assert isinstance(result, Err)
    assert isinstance(result.error, RefreshFailed)
    assert isinstance(result.error.error, ServerError | RateLimited)
    assert str(result.error).startswith("could not refresh the token of user 'user-1': ")
    assert created.auth_token not in str(result.error)
    assert "using the current one" not in caplog.text
    assert await stored_token(store) == created.auth_token


@pytest.mark.parametrize("second", ["force_refresh", "rejected_token"])
async def test_forced_and_rejected_refreshes_do_not_join_an_expiry_driven_flight(
    turso: LocalTursoServer, second: str
) -> None:
    # An expiry-driven refresh that fails keeps a still-valid token; a caller who forced
    # a refresh, or whose token was refused, must not be handed that same old token.
    store = Gated()
    created = await set_up(turso, store, days=3)
    assert created.auth_token is not None
    down = api_down(turso)
    release = anyio.Event()
    store.hooks[store.loads + 2] = release.wait  # the expiring flight's re-read waits
    store.hooks[store.loads + 3] = _setter(release)  # until the second caller reads
    results: dict[str, object] = {}

    async def expiring() -> None:
        results["expiring"] = await get_valid_credentials("user-1", store=store, settings=down)

    how = (
        {"force_refresh": True}
        if second == "force_refresh"
        else {"rejected_token": created.auth_token}
    )
    with anyio.fail_after(30):  # a hang guard, not a time limit under test
        async with anyio.create_task_group() as group:
            group.start_soon(expiring)
            await anyio.lowlevel.checkpoint()
            results[second] = await get_valid_credentials(
                "user-1",
                store=store,
                settings=down,
                **how,
            )
    assert results["expiring"] == Ok(created)
    failed = results[second]
    assert isinstance(failed, Err)
    assert isinstance(failed.error, RefreshFailed)


def _setter(event: anyio.Event) -> Callable[[], Awaitable[None]]:
    async def set_it() -> None:
        event.set()

    return set_it


class Flight:
    """A refresh whose first caller is stuck in its re-read of the store, and ``waiters``
    more callers waiting for that flight; each caller runs in its own cancel scope."""

    def __init__(self, turso: LocalTursoServer, store: Gated, waiters: int) -> None:
        self.turso, self.store = turso, store
        self.scopes = [anyio.CancelScope() for _ in range(1 + waiters)]
        self.results: list[object] = [None] * (1 + waiters)
        self.first_stuck = anyio.Event()
        self.all_waiting = anyio.Event()

        async def stuck() -> None:
            self.first_stuck.set()
            await anyio.sleep_forever()

        reads = store.loads
        store.hooks[reads + 2] = stuck  # the first caller's re-read never returns
        store.hooks[reads + 2 + waiters] = _setter(self.all_waiting)  # the last waiter's read

    async def caller(self, n: int) -> None:
        with self.scopes[n]:
            self.results[n] = await get_valid_credentials(
                "user-1", store=self.store, settings=self.turso.settings
            )

    async def start(self, group: anyio.abc.TaskGroup) -> None:
        group.start_soon(self.caller, 0)
        await self.first_stuck.wait()
        for n in range(1, len(self.scopes)):
            group.start_soon(self.caller, n)
        await self.all_waiting.wait()
        await anyio.lowlevel.checkpoint()  # every waiter now awaits the flight


async def test_when_the_first_caller_is_cancelled_one_waiter_takes_over(
    turso: LocalTursoServer,
) -> None:
    store = Gated()
    created = await set_up(turso, store, days=3)
    minted = token_requests(turso)
    flight = Flight(turso, store, waiters=2)
    with anyio.fail_after(30):  # a hang guard, not a time limit under test
        async with anyio.create_task_group() as group:
            await flight.start(group)
            flight.scopes[0].cancel()
    assert flight.scopes[0].cancelled_caught
    _, second, third = flight.results
    assert isinstance(second, Ok)
    assert second.value.auth_token != created.auth_token
    assert third == second  # the other waiter waited for the one that took over
    assert await stored_token(store) == second.value.auth_token
    assert token_requests(turso) == minted + 1


async def test_a_waiter_cancelled_with_the_first_caller_does_not_take_over(
    turso: LocalTursoServer,
) -> None:
    store = Gated()
    created = await set_up(turso, store, days=3)
    minted = token_requests(turso)
    flight = Flight(turso, store, waiters=1)
    with anyio.fail_after(30):  # a hang guard, not a time limit under test
        async with anyio.create_task_group() as group:
            await flight.start(group)
            reads = store.loads
            for scope in flight.scopes:
                scope.cancel()
    assert all(scope.cancelled_caught for scope in flight.scopes)
    assert store.loads == reads  # nobody went on to read the store again
    assert token_requests(turso) == minted
    # Nothing is left behind: the next caller refreshes.
    renewed = (await get_valid_credentials("user-1", store=store, settings=turso.settings)).unwrap()
    assert renewed.auth_token != created.auth_token


def test_flights_on_different_event_loops_are_separate(tmp_path: Path) -> None:
    # A future belongs to one loop: a caller on another loop must not wait for it.
    store = Gated()
    expiring = dataclasses.replace(CREDENTIALS, expires_at=T0 + DAY)
    asyncio.run(store.save("user-1", expiring, now=T0))
    first_stuck, release = threading.Event(), threading.Event()

    async def stuck() -> None:
        first_stuck.set()
        await anyio.to_thread.run_sync(release.wait, 30)

    store.hooks[2] = stuck  # the first loop's re-read waits for the second loop's answer
    embedded = Settings(data_dir=tmp_path)  # nothing can be minted: both keep the token

    def refresh() -> object:
        return asyncio.run(get_valid_credentials("user-1", store=store, settings=embedded, now=T0))

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(refresh)
        assert first_stuck.wait(30)
        try:
            second = refresh()
        finally:
            release.set()
        assert first.result(30) == Ok(expiring)
    assert second == Ok(expiring)
    assert store.loads == 4  # each loop read twice: two flights


async def test_a_rejected_token_already_replaced_by_someone_else_is_not_replaced_again(
    turso: LocalTursoServer,
) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store)
    replaced = await mint(turso, created, days=30)
    await store.save("user-1", replaced, now=now_of(turso))
    minted = token_requests(turso)
    stale = await get_valid_credentials(
        "user-1", store=store, settings=turso.settings, rejected_token=created.auth_token
    )
    assert stale == Ok(replaced)
    assert token_requests(turso) == minted
    # The token in the store itself refused: that one is replaced.
    tick(turso)
    fresh = (
        await get_valid_credentials(
            "user-1", store=store, settings=turso.settings, rejected_token=replaced.auth_token
        )
    ).unwrap()
    assert fresh.auth_token not in (created.auth_token, replaced.auth_token)
    assert await stored_token(store) == fresh.auth_token
    assert token_requests(turso) == minted + 1


async def test_a_store_that_fails_to_read_is_an_error_but_a_failed_re_read_does_not_block(
    turso: LocalTursoServer,
) -> None:
    class Unreadable(InMemoryCredentialStore):
        async def load(self, user_id: str) -> Result[StoredCredentials | None, StoreError]:
            return Err(StoreUnavailable(message="disk gone"))

    unreadable = await get_valid_credentials("user-1", store=Unreadable(), settings=turso.settings)
    assert unreadable == Err(StoreUnavailable(message="disk gone"))
    setup = await setup_user_database("user-1", store=Unreadable(), settings=turso.settings)
    assert setup == Err(StoreUnavailable(message="disk gone"))

    class BlipsOnTheReRead(InMemoryCredentialStore):
        loads = 0

        async def load(self, user_id: str) -> Result[StoredCredentials | None, StoreError]:
            self.loads += 1
            if self.loads == 3:  # 1: setup's, 2: the first read, 3: the re-read
                return Err(StoreUnavailable(message="blip"))
            return await super().load(user_id)

    store = BlipsOnTheReRead()
    created = await set_up(turso, store, days=3)
    renewed = (await get_valid_credentials("user-1", store=store, settings=turso.settings)).unwrap()
    assert renewed.auth_token != created.auth_token
    assert await stored_token(store) == renewed.auth_token


async def test_an_exception_in_a_flight_reaches_every_caller_of_it(
    turso: LocalTursoServer,
) -> None:
    store = Gated()
    await set_up(turso, store, days=3)
    second_read = anyio.Event()

    async def breaks() -> None:
        await second_read.wait()
        raise RuntimeError("store bug")

    store.hooks[store.loads + 2] = breaks  # the first caller's re-read raises
    store.hooks[store.loads + 3] = _setter(second_read)  # once the second caller has read
    caught: list[BaseException] = []

    async def caller() -> None:
        try:
            await get_valid_credentials("user-1", store=store, settings=turso.settings)
        except RuntimeError as exc:
            caught.append(exc)

    with anyio.fail_after(30):  # a hang guard, not a time limit under test
        async with anyio.create_task_group() as group:
            group.start_soon(caller)
            await anyio.lowlevel.checkpoint()
            group.start_soon(caller)
    assert [str(e) for e in caught] == ["store bug", "store bug"]
    assert store.loads == 4  # nobody read again: the second caller shared the failure


async def test_setup_replaces_a_stored_token_that_expires_soon(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store, days=3)
    minted = token_requests(turso)
    tick(turso)
    again = (await setup_user_database("user-1", store=store, settings=turso.settings)).unwrap()
    assert again.auth_token != created.auth_token
    assert again.expires_at is not None
    assert created.expires_at is not None
    assert again.expires_at > created.expires_at
    assert await stored_token(store) == again.auth_token
    assert token_requests(turso) == minted + 1
    assert len(turso.turso.registry.databases()) == 1
    # With a margin shorter than its life, the same token is kept.
    kept = await setup_user_database("user-1", store=store, settings=turso.settings, margin=DAY)
    assert kept == Ok(again)
    assert token_requests(turso) == minted + 1


async def test_refresh_uses_the_client_it_is_given_and_leaves_it_open(
    turso: LocalTursoServer,
) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store, days=3)
    tick(turso)
    async with turso.client() as api:
        renewed = (
            await get_valid_credentials("user-1", store=store, settings=turso.settings, client=api)
        ).unwrap()
        assert api.requests_sent == 1
        assert (await api.get_database(created.name)).unwrap().name == created.name
    assert renewed.auth_token != created.auth_token
    assert (renewed.name, renewed.url) == (created.name, created.url)


async def test_a_new_token_already_expired_at_the_callers_now_is_refused(
    turso: LocalTursoServer,
) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store)
    assert created.expires_at is not None
    later = created.expires_at + 40 * DAY  # the server's clock says 40 days earlier
    for client in (None, turso.client()):
        result = await get_valid_credentials(
            "user-1", store=store, settings=turso.settings, now=later, client=client
        )
        if client is not None:
            await client.close()
        assert isinstance(result, Err)
        assert isinstance(result.error, RefreshFailed)
        assert isinstance(result.error.error, InvalidResponse)
        assert "the new token expired already" in str(result.error)
    assert await stored_token(store) == created.auth_token


def test_error_messages_name_the_user_and_what_to_do() -> None:
    assert str(NotProvisioned(user_id="u1")) == (
        "user 'u1' has no database yet; call setup_user_database"
    )
    failed = RefreshFailed(user_id="u1", error=StoreUnavailable(message="disk full"))
    assert str(failed) == (
        "could not refresh the token of user 'u1': credential store unavailable: disk full"
    )


async def test_the_warning_for_a_kept_token_says_why_and_until_when(
    turso: LocalTursoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store, days=3)
    assert created.expires_at is not None
    embedded = Settings(data_dir=tmp_path / "embedded")
    with caplog.at_level(logging.WARNING, logger="per_user_db"):
        kept = await get_valid_credentials("user-1", store=store, settings=embedded)
    assert kept == Ok(created)
    [record] = [r for r in caplog.records if r.name == "per_user_db"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "could not refresh the token of user 'user-1' (no TURSO_PLATFORM_API_TOKEN: tokens "
        f"cannot be issued); using the current one, valid until {created.expires_at.isoformat()}"
    )


async def test_without_a_platform_api_token_nothing_can_be_minted(
    turso: LocalTursoServer, tmp_path: Path
) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store, days=3)
    embedded = Settings(data_dir=tmp_path / "embedded")
    kept = await get_valid_credentials("user-1", store=store, settings=embedded)
    assert kept == Ok(created)  # still valid: kept, with a warning
    assert created.expires_at is not None
    expired = await get_valid_credentials(
        "user-1", store=store, settings=embedded, now=created.expires_at
    )
    assert isinstance(expired, Err)
    assert expired.error == RefreshFailed(
        user_id="user-1", error="no TURSO_PLATFORM_API_TOKEN: tokens cannot be issued"
    )


async def test_settings_come_from_the_environment_when_not_given(
    turso: LocalTursoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store, days=3)
    monkeypatch.setenv("TURSO_PLATFORM_API_TOKEN", "a-token-without-an-organization")
    monkeypatch.delenv("TURSO_ORGANIZATION", raising=False)
    assert created.expires_at is not None
    expired = await get_valid_credentials("user-1", store=store, now=created.expires_at)
    assert isinstance(expired, Err)
    assert isinstance(expired.error, RefreshFailed)
    assert "TURSO_ORGANIZATION" in str(expired.error)
    swept = await refresh_tokens(store)
    assert isinstance(swept, Err)
    assert "TURSO_ORGANIZATION" in str(swept.error)


async def test_the_sweep_skips_tokens_it_kept_sorts_its_report_and_lists_corrupt_rows(
    turso: LocalTursoServer,
) -> None:
    class WithACorruptRow(InMemoryCredentialStore):
        async def expiring(
            self, before: dt.datetime
        ) -> Result[list[StoredCredentials | StoreCorrupt], StoreError]:
            rows = (await super().expiring(before)).unwrap()
            return Ok([StoreCorrupt(user_id="broken", reason="wrong key"), *rows])

    store = WithACorruptRow()
    for user in ("c", "b", "a"):
        await set_up(turso, store, user=user, days=3)
    tick(turso)
    report = (await refresh_tokens(store, concurrency=1, settings=turso.settings)).unwrap()
    assert report.refreshed == ("a", "b", "c")
    assert report.failed == (
        ("broken", "stored credentials of user 'broken' are unusable: wrong key"),
    )
    assert report.skipped == ()

    for user in ("c", "b", "a"):
        await set_up(turso, store, user=f"soon-{user}", days=3)
    report = (await refresh_tokens(store, settings=api_down(turso))).unwrap()
    assert report.refreshed == ()
    assert report.skipped == ("soon-a", "soon-b", "soon-c")  # still valid: kept
    assert [user for user, _ in report.failed] == ["broken"]


async def test_the_sweep_needs_a_worker_and_reports_a_store_failure(
    turso: LocalTursoServer,
) -> None:
    with pytest.raises(ValueError, match=r"^concurrency must be at least 1$"):
        await refresh_tokens(InMemoryCredentialStore(), concurrency=0, settings=turso.settings)

    class Unlistable(InMemoryCredentialStore):
        async def expiring(
            self, before: dt.datetime
        ) -> Result[list[StoredCredentials | StoreCorrupt], StoreError]:
            return Err(StoreUnavailable(message="offline"))

    failed = await refresh_tokens(Unlistable(), settings=turso.settings)
    assert failed == Err(StoreUnavailable(message="offline"))
    empty = await refresh_tokens(InMemoryCredentialStore(), concurrency=1, settings=turso.settings)
    assert empty == Ok(RefreshReport(refreshed=(), failed=(), skipped=()))


class SaveFails(InMemoryCredentialStore):
    """Saves succeed until ``broken`` is set, then fail."""

    broken = False

    async def save(
        self, user_id: str, credentials: Credentials, *, now: dt.datetime
    ) -> Result[StoredCredentials, StoreError]:
        if self.broken:
            return Err(StoreUnavailable(message="read-only"))
        return await super().save(user_id, credentials, now=now)


async def test_a_new_token_that_cannot_be_saved_is_not_used(turso: LocalTursoServer) -> None:
    store = SaveFails()
    created = await set_up(turso, store, days=3)
    assert created.expires_at is not None
    store.broken = True
    tick(turso)
    kept = await get_valid_credentials("user-1", store=store, settings=turso.settings)
    assert kept == Ok(created)  # still valid: the old token, as saved
    for ask in ({"force_refresh": True}, {"now": created.expires_at}):
        tick(turso)
        failed = await get_valid_credentials(
            "user-1",
            store=store,
            settings=turso.settings,
            **ask,
        )
        assert failed == Err(
            RefreshFailed(user_id="user-1", error=StoreUnavailable(message="read-only"))
        )
    assert await stored_token(store) == created.auth_token


async def test_a_refreshed_token_is_saved_at_the_callers_now(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store, days=3)
    assert created.expires_at is not None
    moment = created.expires_at - DAY
    turso.clock.now = moment.timestamp()
    renewed = (
        await get_valid_credentials("user-1", store=store, settings=turso.settings, now=moment)
    ).unwrap()
    found = (await store.load("user-1")).unwrap()
    assert found is not None
    assert found.credentials == renewed
    assert found.updated_at == moment


async def test_the_sweep_refreshes_within_its_own_window_over_one_client(
    turso: LocalTursoServer,
) -> None:
    clients = 0

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Counted(Settings):
        def platform_client(
            self, *, clock: Callable[[], dt.datetime] | None = None
        ) -> PlatformClient:
            nonlocal clients
            clients += 1
            return Settings.platform_client(self, clock=clock)

    store = InMemoryCredentialStore()
    for user in ("a", "b", "c"):
        await set_up(turso, store, user=user, days=20)
    tick(turso)
    counted = Counted(
        **{f.name: getattr(turso.settings, f.name) for f in dataclasses.fields(Settings)}
    )
    report = (await refresh_tokens(store, within=30 * DAY, settings=counted)).unwrap()
    assert report.refreshed == ("a", "b", "c")  # 20 days left is within 30: refreshed
    assert clients == 1


async def test_the_sweep_runs_eight_at_a_time_by_default() -> None:
    in_flight = most = 0

    class Counting(InMemoryCredentialStore):
        async def load(self, user_id: str) -> Result[StoredCredentials | None, StoreError]:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            for _ in range(3):  # every worker gets here before any goes on
                await anyio.lowlevel.checkpoint()
            in_flight -= 1
            return await super().load(user_id)

    store = Counting()
    for n in range(12):
        await store.save(f"u{n:02}", dataclasses.replace(CREDENTIALS, expires_at=T0 + DAY), now=T0)
    report = (await refresh_tokens(store, settings=Settings(), now=T0)).unwrap()
    assert len(report.skipped) == 12  # nothing can be minted here; all still valid
    assert most == 8


async def test_flights_of_different_stores_are_separate(turso: LocalTursoServer) -> None:
    # Two stores (two apps, two tenants) may both know a "user-1": different databases.
    ours, theirs = Gated(), Gated()
    mine = await set_up(turso, ours, days=3)
    other = await set_up(turso, theirs, user="user-2", days=3)
    await theirs.save("user-1", other, now=now_of(turso))
    down = api_down(turso)
    release = anyio.Event()
    ours.hooks[ours.loads + 2] = release.wait  # our flight's re-read waits
    theirs.hooks[theirs.loads + 1] = _setter(release)  # until their caller has read
    results: list[object] = []

    async def our_refresh() -> None:
        results.append(await get_valid_credentials("user-1", store=ours, settings=down))

    with anyio.fail_after(30):  # a hang guard, not a time limit under test
        async with anyio.create_task_group() as group:
            group.start_soon(our_refresh)
            await anyio.lowlevel.checkpoint()
            theirs_now = await get_valid_credentials("user-1", store=theirs, settings=down)
    assert theirs_now == Ok(other)
    assert results == [Ok(mine)]


async def test_setup_decides_and_saves_at_the_callers_now(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    created = await set_up(turso, store)  # 30 days: fresh today
    assert created.expires_at is not None
    moment = created.expires_at - DAY  # expiring then
    turso.clock.now = moment.timestamp()
    again = (
        await setup_user_database("user-1", store=store, settings=turso.settings, now=moment)
    ).unwrap()
    assert again.auth_token != created.auth_token
    found = (await store.load("user-1")).unwrap()
    assert found is not None
    assert found.credentials == again
    assert found.updated_at == moment
    # A token the server mints already expired at the caller's now is refused.
    late = await setup_user_database(
        "user-1", store=store, settings=turso.settings, now=moment + 60 * DAY
    )
    assert isinstance(late, Err)
    assert isinstance(late.error, ProvisionFailed)
    assert isinstance(late.error.error, InvalidResponse)
    assert "the new token expired already" in str(late.error)


async def test_setup_returns_the_failure_of_each_step(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    failed_create = await setup_user_database("u", store=store, settings=api_down(turso))
    assert isinstance(failed_create, Err)
    assert isinstance(failed_create.error, ProvisionFailed)
    assert failed_create.error.step is CreateStep.CREATE
    turso.turso.faults.fail_rate = 0.0

    async def broken(*args: object, **kwargs: object) -> Err[MigrationUnavailable]:
        return Err(MigrationUnavailable(database="x", code="SERVER_ERROR", message="boom"))

    apply_migrations_doubles.append(broken)
    try:
        failed_migrate = await setup_user_database("u", store=store, settings=turso.settings)
    finally:
        apply_migrations_doubles.remove(broken)
    assert isinstance(failed_migrate, Err)
    assert isinstance(failed_migrate.error, ConnectError)
    assert "boom" in str(failed_migrate.error)


async def test_setup_closes_the_connection_it_migrated_through(
    turso: LocalTursoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Database] = []
    real_connect = connect  # the one setup_user_database calls

    async def recording(*args: Any, **kwargs: Any) -> Any:
        result = await real_connect(*args, **kwargs)
        if isinstance(result, Ok):
            opened.append(result.value)
        return result

    monkeypatch.setattr(per_user_db._users, "connect", recording)
    store = InMemoryCredentialStore()
    await set_up(turso, store)  # creates, then migrates
    await set_up(turso, store)  # only checks the schema
    assert len(opened) == 2
    assert all(db.closed for db in opened)
