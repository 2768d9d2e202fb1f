"""Regression tests for problems found in review: concurrency, cancellation, leaks,
secrets on the wire, and error paths that used to raise instead of returning values."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import gc
import socket
import sqlite3
import threading
import time
from pathlib import Path

import anyio
import pytest

from per_user_db import (
    ConnectErrorCode,
    DatabaseCredentialStore,
    DatabaseError,
    Err,
    InMemoryCredentialStore,
    Ok,
    Settings,
    TokenCipher,
    connect,
    get_valid_credentials,
    open_database,
    refresh_tokens,
    setup_user_database,
)
from per_user_db._check import check_schema
from per_user_db._transports._sqlite import SqliteWorker
from per_user_db._users import _single_flight
from per_user_db.core._platform import parse_token, retry_after_seconds
from per_user_db.turso import PlatformClient, RetryPolicy

from .conftest import LocalServer, LocalTursoServer
from .migration_sets import INIT, make_set
from .scripted_server import Reply, scripted_server


async def test_concurrent_statements_of_one_local_transaction(tmp_path: Path) -> None:
    async with (await open_database(f"file:{tmp_path / 'tx.db'}", busy_timeout=0.5)).unwrap() as db:
        await db.execute("CREATE TABLE t (x)")
        tx = db.transaction()
        async with anyio.create_task_group() as group:
            group.start_soon(tx.execute, "INSERT INTO t VALUES (1)")
            group.start_soon(tx.execute, "INSERT INTO t VALUES (2)")
        await tx.commit()
        # The connection is free again and both rows are there, once.
        assert [r[0] for r in await db.execute("SELECT x FROM t ORDER BY x")] == [1, 2]


async def test_cancelling_inside_an_http_transaction_stays_a_cancellation(
    server: LocalServer,
) -> None:
    url = await server.database("cancel")
    async with (await open_database(url)).unwrap() as db:
        await db.execute("CREATE TABLE t (x)")
        slow = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000000) "
            "SELECT count(*) FROM c"
        )

        async def cancelled_mid_transaction() -> None:
            async with asyncio.timeout(0.3), db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")
                await tx.execute(slow)

        with pytest.raises(TimeoutError):
            await cancelled_mid_transaction()
        assert (await db.execute("SELECT count(*) FROM t"))[0][0] == 0


def open_workers() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, SqliteWorker) and not o.closed)


async def test_a_cancelled_connect_leaves_nothing_open(tmp_path: Path) -> None:
    before = open_workers()
    for n in range(10):
        with anyio.move_on_after(0.002 * n):
            result = await connect(f"file:{tmp_path / f'{n}.db'}")
            result.unwrap()
            await result.unwrap().close()
    assert open_workers() == before


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_websocket_failures_are_values_and_remote_ws_needs_tls() -> None:
    result = await connect(f"ws://127.0.0.1:{closed_port()}", "token")
    assert isinstance(result, Err)
    assert result.error.code is ConnectErrorCode.NETWORK_ERROR
    insecure = await open_database("ws://db.example.com", "eyJ.secret")
    assert isinstance(insecure, Err)
    assert insecure.error.code is ConnectErrorCode.INSECURE_URL


async def test_single_flight_shares_an_exception_instead_of_rerunning() -> None:
    calls = 0

    async def boom() -> int:
        nonlocal calls
        calls += 1
        await anyio.sleep(0.02)
        raise RuntimeError("boom")

    failures: list[str] = []

    async def caller() -> None:
        try:
            await _single_flight(("k",), boom)
        except RuntimeError as exc:
            failures.append(str(exc))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(caller)
    assert (calls, failures) == (1, ["boom"] * 5)


def test_single_flight_in_two_event_loops_at_once() -> None:
    results: dict[str, object] = {}

    async def work(label: str) -> str:
        await asyncio.sleep(0.05)
        return label

    def run(label: str) -> None:
        results[label] = asyncio.run(_single_flight(("same",), lambda: work(label)))

    threads = [threading.Thread(target=run, args=(label,)) for label in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"A": "A", "B": "B"}


async def test_a_rejected_token_is_replaced_only_once(turso: LocalTursoServer) -> None:
    store = InMemoryCredentialStore()
    created = (await setup_user_database("u", store=store, settings=turso.settings)).unwrap()
    count = turso.turso.protocol.counts.count
    before = count(route="platform/database_token")
    turso.clock.now += 1  # tokens minted in the same second with the same claims are equal
    first = await get_valid_credentials(
        "u", store=store, settings=turso.settings, rejected_token=created.auth_token
    )
    second = await get_valid_credentials(
        "u", store=store, settings=turso.settings, rejected_token=created.auth_token
    )
    assert first.unwrap().auth_token != created.auth_token
    assert second.unwrap() == first.unwrap()  # already replaced: nothing minted
    assert count(route="platform/database_token") - before == 1


async def test_a_corrupt_row_does_not_stop_the_sweep(
    turso: LocalTursoServer, tmp_path: Path
) -> None:
    auth = tmp_path / "auth.db"
    db = (await open_database(f"file:{auth}")).unwrap()
    async with db:
        store = (await DatabaseCredentialStore.open(db, TokenCipher(bytes(32)))).unwrap()
        short = dataclasses.replace(turso.settings, token_days=2)
        for user in ("a", "b", "c"):
            await setup_user_database(user, store=store, settings=short)
        raw = sqlite3.connect(auth)
        raw.execute("UPDATE per_user_database SET encrypted_token = 'AAAA' WHERE user_id = 'b'")
        raw.commit()
        raw.close()
        turso.clock.now += 1  # a new token must differ from the old one
        moment = dt.datetime.fromtimestamp(turso.clock.now, tz=dt.UTC)
        report = (await refresh_tokens(store, settings=short, now=moment)).unwrap()
    assert report.refreshed == ("a", "c")
    assert [user for user, _ in report.failed] == ["b"]
    assert "unusable" in report.failed[0][1]


async def test_check_reports_broken_migrations_and_schema_files(tmp_path: Path) -> None:
    broken = make_set(tmp_path / "m", [INIT, ["CREATE INDEX i ON missing_table (x);"]])
    problems = await check_schema(broken)
    assert len(problems) == 1
    assert problems[0].startswith("the migrations do not apply:")
    assert "missing_table" in problems[0]
    schema = tmp_path / "schema"
    schema.mkdir()
    (schema / "x.sql").write_text("CREATE TABLE `x` (`a` text REFERENCES);")
    problems = await check_schema(schema_dir=schema)
    assert problems[0].startswith("schema/x.sql: statement 1 fails:")


def test_plain_http_platform_api_only_on_loopback() -> None:
    remote = Settings.from_env({"TURSO_API_URL": "http://api.example.com"})
    assert isinstance(remote, Err)
    assert remote.error.variable == "TURSO_API_URL"
    assert isinstance(Settings.from_env({"TURSO_API_URL": "http://127.0.0.1:8080"}), Ok)


def test_non_ascii_digits_are_not_numbers() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert retry_after_seconds("²", now=now) is None
    assert isinstance(Settings.from_env({"PER_USER_DB_TOKEN_DAYS": "²"}), Err)


def test_tokens_in_results_keep_out_of_repr() -> None:
    token = parse_token({"jwt": "eyJ.payload.secret-signature"}, "x").unwrap()
    assert "secret" not in repr(Ok(token))
    assert f"Bearer {token}" == "Bearer eyJ.payload.secret-signature"
    sealed = TokenCipher(bytes(32)).encrypt("eyJ.secret")
    assert "secret" not in repr(TokenCipher(bytes(32)).decrypt(sealed))


async def test_streams_do_not_follow_the_token_to_another_origin() -> None:
    async with scripted_server() as fake:
        moved = {"baton": "b1", "base_url": "http://127.0.0.2:9/evil/", "results": []}

        def answer(request: object) -> Reply:
            return Reply(
                body={
                    **moved,
                    "results": [
                        {
                            "type": "ok",
                            "response": {
                                "type": "execute",
                                "result": {
                                    "cols": [],
                                    "rows": [],
                                    "affected_row_count": 0,
                                    "last_insert_rowid": None,
                                },
                            },
                        }
                    ]
                    * 2,  # BEGIN and the statement
                }
            )

        fake.on("POST", "/db/a/v3/pipeline", answer)
        async with (await open_database(f"{fake.url}/db/a", "token")).unwrap() as db:
            tx = db.transaction()
            with pytest.raises(DatabaseError) as info:
                await tx.execute("SELECT 1")
            assert info.value.code == "PROTOCOL_ERROR"
            assert "another origin" in str(info.value)
        assert len(fake.requests) == 1


async def test_no_attempt_runs_past_the_deadline() -> None:
    async with scripted_server() as fake:
        fake.on("GET", "/v1/organizations/o/databases/x", Reply(delay=5.0, body={}), repeat=True)
        retry = RetryPolicy(attempts=3, deadline=0.6, request_timeout=5.0, base_delay=0.01)
        started = time.monotonic()
        async with PlatformClient(
            api_token="t", organization="o", api_url=fake.url, retry=retry
        ) as api:
            result = await api.get_database("x")
        assert isinstance(result, Err)
        assert time.monotonic() - started < 3.0  # far below one 5 s request timeout


async def test_a_stale_rejected_token_does_not_hide_an_expiring_one(
    turso: LocalTursoServer,
) -> None:
    store = InMemoryCredentialStore()
    short = dataclasses.replace(turso.settings, token_days=2)
    created = (await setup_user_database("u", store=store, settings=short)).unwrap()
    turso.clock.now += 1
    moment = dt.datetime.fromtimestamp(turso.clock.now, tz=dt.UTC)
    # The caller reports an old token the store no longer holds; the stored one expires
    # within the margin, so it is still refreshed.
    result = await get_valid_credentials(
        "u", store=store, settings=short, now=moment, rejected_token="an-older-token"
    )
    assert result.unwrap().auth_token != created.auth_token
