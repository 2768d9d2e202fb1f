"""UserDatabases: the app object, against the local Turso over real HTTP on 127.0.0.1.

What it promises on the request path: an up-to-date user's scope plus its first query is
one request on a kept-alive connection, with no store read once the credentials are
cached; what cannot be cached safely is not (a token near expiry, a rejected token).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

import anyio
import pytest

from per_user_db import (
    Credentials,
    DatabaseAhead,
    DatabaseError,
    InMemoryCredentialStore,
    MigrationFailedError,
    NotProvisioned,
    Ok,
    StartupError,
    UserDatabases,
    UserDatabaseUnavailable,
    current_database,
)
from per_user_db._bundled import bundled_migrations

if TYPE_CHECKING:
    from pathlib import Path

    from per_user_db import Result, StoredCredentials, StoreError

    from .conftest import LocalTursoServer


class CountingStore(InMemoryCredentialStore):
    """The in-memory store, counting reads (each is a round trip for a real store)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def load(self, user_id: str) -> Result[StoredCredentials | None, StoreError]:
        self.loads += 1
        return await super().load(user_id)


def sql_requests(turso: LocalTursoServer) -> int:
    return turso.turso.protocol.counts.count(route="v3/pipeline")


async def test_an_up_to_date_scope_and_its_query_cost_one_request_and_no_store_read(
    turso: LocalTursoServer,
) -> None:
    store = CountingStore()
    async with UserDatabases(store=store, settings=turso.settings) as dbs:
        (await dbs.setup("user-1")).unwrap()  # creates and migrates; fills the caches
        loads = store.loads
        for _ in range(3):
            before = sql_requests(turso)
            async with dbs.scope("user-1") as db:
                assert current_database() is db
                rows = await db.execute("SELECT count(*) FROM programs")
                assert rows[0][0] == 0
            assert sql_requests(turso) - before == 1
        assert store.loads == loads  # credentials came from memory


async def test_the_first_scope_verifies_in_its_query_and_later_ones_skip_it(
    turso: LocalTursoServer,
) -> None:
    store = InMemoryCredentialStore()
    setup = UserDatabases(store=store, settings=turso.settings)
    (await setup.setup("user-1")).unwrap()
    await setup.aclose()
    dbs = UserDatabases(store=store, settings=turso.settings, verified_ttl=60)
    async with dbs.scope("user-1") as db:
        await db.execute("SELECT 1")
        assert db.round_trips == 1  # the guard rode in it
    async with dbs.scope("user-1") as db:
        await db.execute("SELECT 1")
        assert db.round_trips == 1
    await dbs.aclose()


async def test_eager_checking_costs_the_check_request(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    async with UserDatabases(
        store=store, settings=turso.settings, lazy=False, verified_ttl=0
    ) as dbs:
        (await dbs.setup("user-1")).unwrap()
        async with dbs.scope("user-1") as db:
            await db.execute("SELECT 1")
            assert db.round_trips == 2  # the version check, then the query


async def test_a_token_expiring_within_the_margin_is_not_served_from_memory(
    turso: LocalTursoServer,
) -> None:
    store = CountingStore()
    short = dataclasses.replace(turso.settings, token_days=3)  # inside the 7-day margin
    async with UserDatabases(store=store, settings=short) as dbs:
        (await dbs.setup("user-1")).unwrap()
        loads = store.loads
        async with dbs.scope("user-1") as db:
            await db.execute("SELECT 1")
        # Not the cached token: the store was asked, and the refresh path ran.
        assert store.loads > loads


async def test_a_rejected_token_is_replaced_and_the_cache_follows(
    turso: LocalTursoServer,
) -> None:
    store = InMemoryCredentialStore()
    async with UserDatabases(store=store, settings=turso.settings) as dbs:
        created = (await dbs.setup("user-1")).unwrap()
        async with turso.client() as api:
            (await api.invalidate_tokens(created.name)).unwrap()
        async with dbs.scope("user-1") as db:  # the cached token is refused: 401, replaced
            await db.execute("INSERT INTO programs (id, name) VALUES ('p1', 'A')")
        replaced = (await dbs.credentials("user-1")).unwrap()
        assert replaced.auth_token != created.auth_token
        async with dbs.scope("user-1") as db:
            await db.execute("SELECT 1")
            assert db.round_trips == 1  # the cache holds the new token: no second 401


async def test_unavailable_says_404_or_503_without_details_for_the_client(
    turso: LocalTursoServer,
) -> None:
    async with UserDatabases(store=InMemoryCredentialStore(), settings=turso.settings) as dbs:
        with pytest.raises(UserDatabaseUnavailable) as missing:
            async with dbs.scope("nobody"):
                pass
        assert isinstance(missing.value.error, NotProvisioned)
        assert missing.value.status == 404
        bad = Credentials(
            name="x", url="libsql://127.0.0.1:1/db/x/?tls=0", auth_token="t", expires_at=None
        )
        eager = UserDatabases(store=InMemoryCredentialStore(), lazy=False)
        with pytest.raises(UserDatabaseUnavailable) as down:
            async with eager.scope(bad):
                pass
        await eager.aclose()
        assert down.value.status == 503
        assert "127.0.0.1" in str(down.value)  # the details, for the log
        assert "127.0.0.1" not in down.value.public_message  # not for the client
        # Lazy (the default) sends nothing on opening: the first query finds it down.
        async with dbs.scope(bad) as db:
            with pytest.raises(DatabaseError) as first:
                await db.execute("SELECT 1")
            assert first.value.code == "NETWORK_ERROR"


async def test_scopes_close_on_errors_and_cancellation(turso: LocalTursoServer) -> None:
    async with UserDatabases(store=InMemoryCredentialStore(), settings=turso.settings) as dbs:
        (await dbs.setup("user-1")).unwrap()
        opened = []
        with anyio.move_on_after(0.2):
            async with dbs.scope("user-1") as db:
                opened.append(db)
                await anyio.sleep(10)
        with pytest.raises(LookupError):  # noqa: PT012 - the scope is what is tested
            async with dbs.scope("user-1") as db:
                opened.append(db)
                raise LookupError("the handler's own error")
        assert all(db.closed for db in opened)


async def test_closing_closes_its_connections_and_refuses_new_scopes(
    turso: LocalTursoServer,
) -> None:
    dbs = UserDatabases(store=InMemoryCredentialStore(), settings=turso.settings)
    (await dbs.setup("user-1")).unwrap()
    async with dbs.scope("user-1") as db:
        await db.execute("SELECT 1")
    session = dbs._pool.session()
    await dbs.aclose()
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        async with dbs.scope("user-1"):
            pass


async def test_from_env_names_what_is_missing(tmp_path: Path) -> None:
    env = {"PER_USER_DB_DATA_DIR": str(tmp_path / "data")}
    result = await UserDatabases.from_env(env=env)
    assert not isinstance(result, Ok)
    assert isinstance(result.error, StartupError)
    assert "PER_USER_DB_TOKEN_KEY" in str(result.error)
    env["PER_USER_DB_TOKEN_KEY"] = "ab" * 32
    result = await UserDatabases.from_env(env=env)
    assert not isinstance(result, Ok)
    assert "PER_USER_DB_STORE_URL" in str(result.error)


async def test_from_env_builds_a_working_app_on_the_embedded_default(tmp_path: Path) -> None:
    env = {
        "PER_USER_DB_DATA_DIR": str(tmp_path / "data"),
        "PER_USER_DB_TOKEN_KEY": "ab" * 32,
        "PER_USER_DB_STORE_URL": f"file:{tmp_path / 'auth.db'}",
    }
    dbs = (await UserDatabases.from_env(env=env)).unwrap()
    async with dbs:
        (await dbs.setup("user-1")).unwrap()
        async with dbs.scope("user-1") as db:
            await db.execute("INSERT INTO programs (id, name) VALUES ('p1', 'A')")
    again = (await UserDatabases.from_env(env=env)).unwrap()
    async with again, again.scope("user-1") as db:  # the store kept the credentials
        rows = await db.execute("SELECT name FROM programs")
        assert [r[0] for r in rows] == ["A"]


def test_credentials_stay_out_of_reprs() -> None:
    dbs = UserDatabases(store=InMemoryCredentialStore())
    dbs._credentials.put(
        "user-1",
        Credentials(
            name="n", url="file:x.db", auth_token="secret-token", expires_at=dt.datetime.now(dt.UTC)
        ),
    )
    assert "secret-token" not in repr(dbs)
    assert "user-1" not in repr(dbs._credentials)


async def test_a_database_ahead_is_refused_unless_allowed(tmp_path: Path) -> None:
    head = bundled_migrations()
    older = dataclasses.replace(head, migrations=head.migrations[:-1])
    user = Credentials(name="u", url=f"file:{tmp_path / 'u.db'}", auth_token=None, expires_at=None)
    newer = UserDatabases(store=InMemoryCredentialStore())
    async with newer, newer.scope(user) as db:  # newer code migrated it to the head
        await db.execute("SELECT 1")
    strict = UserDatabases(store=InMemoryCredentialStore(), migrations=older)
    async with strict, strict.scope(user) as db:
        with pytest.raises(MigrationFailedError) as info:
            await db.execute("SELECT count(*) FROM programs")
        assert isinstance(info.value.error, DatabaseAhead)
    rolling = UserDatabases(store=InMemoryCredentialStore(), migrations=older, allow_ahead=True)
    async with rolling, rolling.scope(user) as db:
        assert (await db.execute("SELECT count(*) FROM programs"))[0][0] == 0
