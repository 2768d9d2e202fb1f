"""migrate-on-connect against a real SQLite file and the local HTTP server."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from libsql_client import InStatement

from per_user_db import (
    ConnectErrorCode,
    Database,
    DatabaseAhead,
    Drift,
    Err,
    ForeignKeyViolations,
    MigrationSet,
    Ok,
    OutOfOrder,
    StatementFailed,
    VerifiedCache,
    apply_migrations,
    connect,
    migration_status,
    open_database,
)

from .conftest import LocalServer, read_only
from .migration_sets import ADD_COLUMN, INIT, REBUILD, STANDARD, WHENS, make_set

TOKEN = "eyJhbGciOiJFZERTQSJ9.claims.secret-signature"


@dataclass
class Target:
    """A database reachable by URL whose file the test can also read directly."""

    kind: str
    url: str
    path: Path
    server: LocalServer | None

    def requests(self) -> int | None:
        """Pipeline POSTs the server saw (HTTP only)."""
        if self.server is None:
            return None
        return self.server.state.counts.count(route="v3/pipeline")

    def reset_requests(self) -> None:
        if self.server is not None:
            self.server.state.counts.reset()


@pytest.fixture(params=["file", "http"])
async def target(
    request: pytest.FixtureRequest, tmp_path: Path, server: LocalServer
) -> AsyncIterator[Target]:
    if request.param == "file":
        path = tmp_path / "user.db"
        yield Target(kind="file", url=f"file:{path}", path=path, server=None)
    else:
        url = await server.database("user")
        yield Target(kind="http", url=url, path=server.state.database_path("user"), server=server)


def snapshot(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows and the whole schema, read straight from the file."""
    conn = read_only(path)
    try:
        schema = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        tables = [r[1] for r in schema if r[0] == "table" and not r[1].startswith("sqlite_")]
        snap = {"__schema__": [tuple(r) for r in schema]}
        for table in tables:
            snap[table] = sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
        return snap
    finally:
        conn.close()


async def connect_ok(url: str, migrations: MigrationSet, **options: object) -> Database:
    result = await connect(url, migrations=migrations, **options)  # type: ignore[arg-type]
    assert isinstance(result, Ok), result
    return result.value


async def fill(db: Database, parents: int = 5, children: int = 3) -> None:
    statements: list[InStatement] = [
        ("INSERT INTO parent (id, name) VALUES (?, ?)", [p, f"parent {p}"])
        for p in range(1, parents + 1)
    ]
    await db.batch(
        statements
        + [
            ("INSERT INTO child (parent_id, v) VALUES (?, ?)", [p, f"child {p}.{c}"])
            for p in range(1, parents + 1)
            for c in range(children)
        ]
    )


# --- 1. cost ------------------------------------------------------------------------------


async def test_up_to_date_costs_one_request_and_pending_one_more(
    target: Target, tmp_path: Path
) -> None:
    migrations = make_set(tmp_path / "m", STANDARD)
    target.reset_requests()
    async with await connect_ok(target.url, migrations) as db:
        assert db.round_trips == 2  # read + one atomic apply of all four
        assert target.requests() in (None, 2)
    target.reset_requests()
    async with await connect_ok(target.url, migrations) as db:
        assert db.round_trips == 1
        assert target.requests() in (None, 1)
    rows = (
        read_only(target.path)
        .execute('SELECT hash, created_at FROM "__drizzle_migrations" ORDER BY created_at')
        .fetchall()
    )
    assert rows == [(m.hash, m.when) for m in migrations]


async def test_migrate_false_sends_nothing(target: Target, tmp_path: Path) -> None:
    target.reset_requests()
    async with (await connect(target.url, migrate=False)).unwrap() as db:
        assert db.round_trips == 0
        assert target.requests() in (None, 0)


async def test_verified_cache_skips_the_check_within_its_ttl(
    target: Target, tmp_path: Path
) -> None:
    now = [100.0]
    cache = VerifiedCache(ttl=30.0, clock=lambda: now[0])
    migrations = make_set(tmp_path / "m", STANDARD)
    async with await connect_ok(target.url, migrations, cache=cache):
        pass
    async with await connect_ok(target.url, migrations, cache=cache) as db:
        assert db.round_trips == 0
    now[0] += 31.0
    async with await connect_ok(target.url, migrations, cache=cache) as db:
        assert db.round_trips == 1
    changed = make_set(
        tmp_path / "m2", [*STANDARD, ["CREATE TABLE extra (x);"]], [*WHENS, WHENS[-1] + 1]
    )
    async with await connect_ok(target.url, changed, cache=cache) as db:
        assert db.round_trips == 2  # another fingerprint: checked, and the new one applied


# --- 2. atomic ----------------------------------------------------------------------------


async def test_a_failing_statement_leaves_the_database_exactly_as_before(
    target: Target, tmp_path: Path
) -> None:
    async with await connect_ok(target.url, make_set(tmp_path / "m0", [INIT])) as db:
        await fill(db)
    before = snapshot(target.path)
    broken = [
        "CREATE TABLE `extra` (`x` integer);",
        "INSERT INTO `parent` (`name`) VALUES ('fine');",
        "INSERT INTO `parent` (`name`) VALUES (NULL);",
    ]
    migrations = make_set(tmp_path / "m1", [INIT, ADD_COLUMN, broken])
    result = await connect(target.url, migrations=migrations)
    assert isinstance(result, Err)
    assert result.error.code is ConnectErrorCode.MIGRATION_FAILED
    failure = result.error.cause
    assert isinstance(failure, StatementFailed)
    assert failure.migration == "0002_step2"
    assert failure.statement == 3
    assert failure.sql == "INSERT INTO `parent` (`name`) VALUES (NULL);"
    assert failure.code.startswith("SQLITE_CONSTRAINT")
    assert "NOT NULL" in failure.message
    assert "0002_step2 failed at statement 3" in str(result.error)
    assert snapshot(target.path) == before


# --- 3. concurrency -----------------------------------------------------------------------


async def test_twenty_clients_in_one_process(
    target: Target, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    migrations = make_set(tmp_path / "m", STANDARD)
    caplog.set_level(logging.DEBUG, logger="per_user_db")
    results: list[object] = []

    async def one() -> None:
        result = await connect(target.url, migrations=migrations)
        if isinstance(result, Ok):
            await result.value.close()
        results.append(result)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(one)
    assert all(isinstance(r, Ok) for r in results), [r for r in results if isinstance(r, Err)]
    counts = (
        read_only(target.path)
        .execute(
            'SELECT created_at, count(*) FROM "__drizzle_migrations" GROUP BY created_at ORDER BY 1'
        )
        .fetchall()
    )
    assert counts == [(m.when, 1) for m in migrations]


CHILD = """
import asyncio, json, sys, time
from per_user_db import connect, load_migrations

async def main() -> None:
    url, folder, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    migrations = load_migrations(folder)
    await asyncio.sleep(max(0.0, start - time.time()))
    result = await connect(url, migrations=migrations)
    if result.is_ok():
        await result.unwrap().close()
        print(json.dumps({"ok": True}))
    else:
        print(json.dumps({"ok": False, "error": str(result.error)}))

asyncio.run(main())
"""


async def test_twenty_processes(target: Target, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    migrations = make_set(folder, STANDARD)
    start = time.time() + 3.0  # every child waits until the same moment, then races

    async def child() -> dict[str, object]:
        done = await anyio.run_process(
            [sys.executable, "-c", CHILD, target.url, str(folder), str(start)], check=False
        )
        assert done.returncode == 0, done.stderr.decode()
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    outcomes: list[dict[str, object]] = []

    async def run_one() -> None:
        outcomes.append(await child())

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(run_one)
    assert [o for o in outcomes if not o["ok"]] == []
    counts = (
        read_only(target.path)
        .execute(
            'SELECT created_at, count(*) FROM "__drizzle_migrations" GROUP BY created_at ORDER BY 1'
        )
        .fetchall()
    )
    assert counts == [(m.when, 1) for m in migrations]


# --- 4. foreign-key-safe rebuilds -------------------------------------------------------


async def test_a_rebuild_keeps_every_related_row(target: Target, tmp_path: Path) -> None:
    async with await connect_ok(target.url, make_set(tmp_path / "m0", [INIT, ADD_COLUMN])) as db:
        await fill(db, parents=20, children=5)
    before = snapshot(target.path)
    async with await connect_ok(
        target.url, make_set(tmp_path / "m1", [INIT, ADD_COLUMN, REBUILD])
    ) as db:
        # Foreign keys are enforced again afterwards.
        with pytest.raises(Exception, match="FOREIGN KEY"):
            await db.execute("INSERT INTO child (parent_id, v) VALUES (999, 'orphan')")
        assert (await db.execute("PRAGMA foreign_keys"))[0][0] == 1
    after = snapshot(target.path)
    assert after["child"] == before["child"]
    assert after["parent"] == before["parent"]
    parent_sql = next(str(row[3]) for row in after["__schema__"] if row[1] == "parent")
    assert "parent_name_length_check" in parent_sql


async def test_a_rebuild_that_orphans_rows_is_rolled_back(target: Target, tmp_path: Path) -> None:
    async with await connect_ok(target.url, make_set(tmp_path / "m0", [INIT, ADD_COLUMN])) as db:
        await fill(db, parents=3, children=2)
    before = snapshot(target.path)
    lossy = [s.replace("FROM `parent`;", "FROM `parent` WHERE `id` <> 2;") for s in REBUILD]
    result = await connect(
        target.url, migrations=make_set(tmp_path / "m1", [INIT, ADD_COLUMN, lossy])
    )
    assert isinstance(result, Err)
    violations = result.error.cause
    assert isinstance(violations, ForeignKeyViolations)
    assert violations.migrations == ("0002_step2",)
    assert {(v.table, v.parent) for v in violations.violations} == {("child", "parent")}
    assert len(violations.violations) == 2
    assert "child rowid" in str(violations)
    assert snapshot(target.path) == before


# --- 5. refuses to guess ------------------------------------------------------------------


async def test_drift_ahead_and_out_of_order_write_nothing(target: Target, tmp_path: Path) -> None:
    async with await connect_ok(target.url, make_set(tmp_path / "m0", [INIT, ADD_COLUMN])):
        pass
    before = snapshot(target.path)

    edited = make_set(tmp_path / "drift", [INIT, [*ADD_COLUMN, "CREATE TABLE sneaky (x);"]])
    drift = await connect(target.url, migrations=edited)
    assert isinstance(drift, Err)
    assert isinstance(drift.error.cause, Drift)
    assert "0001_step1" in str(drift.error)

    older = make_set(tmp_path / "ahead", [INIT])
    ahead = await connect(target.url, migrations=older)
    assert isinstance(ahead, Err)
    assert isinstance(ahead.error.cause, DatabaseAhead)
    assert "allow_ahead=True" in str(ahead.error)

    gap = make_set(
        tmp_path / "gap",
        [INIT, ["CREATE TABLE late (x);"], ADD_COLUMN],
        [1777014726134, 1777100000000, 1777273658768],
    )
    out_of_order = await connect(target.url, migrations=gap)
    assert isinstance(out_of_order, Err)
    assert isinstance(out_of_order.error.cause, OutOfOrder)

    assert snapshot(target.path) == before
    async with await connect_ok(target.url, older, allow_ahead=True) as db:
        assert (await db.execute("SELECT count(*) FROM child"))[0][0] == 0
    assert snapshot(target.path) == before


async def test_status_is_a_dry_run(target: Target, tmp_path: Path) -> None:
    migrations = make_set(tmp_path / "m", STANDARD)
    async with (await open_database(target.url)).unwrap() as db:
        status = await migration_status(db, migrations)
        assert isinstance(status, Ok)
        assert [m.tag for m in status.value.pending] == [m.tag for m in migrations]
        assert status.value.disables_foreign_keys
        report = (await apply_migrations(db, migrations)).unwrap()
        assert report.applied == tuple(m.tag for m in migrations)
        again = (await migration_status(db, migrations)).unwrap()
        assert again.up_to_date
    assert "__drizzle_migrations" in snapshot(target.path)


# --- 6. observability ---------------------------------------------------------------------


async def test_each_applied_migration_is_logged_without_the_token(
    target: Target, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    migrations = make_set(tmp_path / "m", STANDARD)
    url = f"{target.url}?authToken={TOKEN}" if target.kind == "http" else target.url
    with caplog.at_level(logging.INFO, logger="per_user_db"):
        async with await connect_ok(url, migrations):
            pass
    applied = [r.getMessage() for r in caplog.records if r.getMessage().startswith("applied")]
    assert len(applied) == 4
    for message, migration in zip(applied, migrations, strict=True):
        assert message.startswith(f"applied migration {migration.tag} to ")
        assert message.endswith(" ms")
    assert TOKEN not in caplog.text
