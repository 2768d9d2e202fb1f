"""connect(..., lazy=True): the schema check rides in the first request, as a guard.

Against a real SQLite file and the local protocol server over HTTP. Each test pins one
promise: no request of its own, nothing the app sent runs twice or on the old schema, and
a failing migration surfaces from the first call with nothing of the app's applied.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import TYPE_CHECKING

import pytest

from per_user_db import (
    DatabaseAhead,
    DatabaseError,
    MigrationFailedError,
    StatementFailed,
    VerifiedCache,
    open_database,
)
from per_user_db.core._deferred import HEAD_GUARD_MARKER

from .conftest import read_only
from .migration_sets import ADD_COLUMN, INIT, STANDARD, make_set
from .test_migrate import Target, connect_ok, snapshot, target

if TYPE_CHECKING:
    from pathlib import Path

    from libsql_client import InValue

__all__ = ["target"]  # the fixture, shared with test_migrate

NEW_COLUMN_INSERT: tuple[str, list[InValue]] = (
    "INSERT INTO child (parent_id, v, note) VALUES (?, ?, ?)",
    [1, "c", "n"],
)


def version_rows(path: Path) -> list[tuple[object, ...]]:
    conn = read_only(path)
    try:
        return conn.execute(
            'SELECT hash, created_at FROM "__drizzle_migrations" ORDER BY created_at'
        ).fetchall()
    finally:
        conn.close()


async def migrate_to(target: Target, tmp_path: Path, steps: list[list[str]]) -> None:
    async with await connect_ok(target.url, make_set(tmp_path / f"m{len(steps)}", steps)) as db:
        await db.execute("INSERT INTO parent (id, name) VALUES (1, 'p')")


async def test_up_to_date_connect_and_first_query_are_one_request(
    target: Target, tmp_path: Path
) -> None:
    migrations = make_set(tmp_path / "m", STANDARD)
    await connect_ok(target.url, migrations)  # bring it to the head once
    target.reset_requests()
    async with await connect_ok(target.url, migrations, lazy=True) as db:
        assert db.round_trips == 0
        assert target.requests() in (None, 0)
        rows = await db.execute("SELECT count(*) FROM parent")
        assert rows[0][0] == 0
        assert db.round_trips == 1
        assert target.requests() in (None, 1)
        await db.execute("SELECT 1")  # verified: later statements carry no guard
        assert db.round_trips == 2


async def test_a_database_behind_is_migrated_and_the_statement_runs_once_on_the_new_schema(
    target: Target, tmp_path: Path
) -> None:
    await migrate_to(target, tmp_path, [INIT])
    migrations = make_set(tmp_path / "m", [INIT, ADD_COLUMN])
    async with await connect_ok(target.url, migrations, lazy=True) as db:
        # Only valid on the new schema: it must not run before the migration, and once.
        result = await db.execute(*NEW_COLUMN_INSERT)
        assert result.rows_affected == 1
        assert db.round_trips == 4  # guarded try, read, apply, the statement again
    snap = snapshot(target.path)
    assert snap["child"] == [(1, 1, "c", "n")]
    assert version_rows(target.path) == [(m.hash, m.when) for m in migrations]


async def test_a_statement_valid_on_both_schemas_still_runs_once(
    target: Target, tmp_path: Path
) -> None:
    await migrate_to(target, tmp_path, [INIT])
    migrations = make_set(tmp_path / "m", [INIT, ADD_COLUMN])
    async with await connect_ok(target.url, migrations, lazy=True) as db:
        await db.execute("INSERT INTO parent (id, name) VALUES (2, 'second')")
    assert snapshot(target.path)["parent"] == [(1, "p"), (2, "second")]


async def test_a_fresh_database_gets_the_whole_set_before_a_batch(
    target: Target, tmp_path: Path
) -> None:
    migrations = make_set(tmp_path / "m", [INIT, ADD_COLUMN])
    async with await connect_ok(target.url, migrations, lazy=True) as db:
        results = await db.batch(
            ["INSERT INTO parent (id, name) VALUES (1, 'p')", NEW_COLUMN_INSERT]
        )
        assert [r.rows_affected for r in results] == [1, 1]
    snap = snapshot(target.path)
    assert snap["parent"] == [(1, "p")]
    assert snap["child"] == [(1, 1, "c", "n")]


async def test_the_guard_travels_inside_the_batch_transaction(
    target: Target, tmp_path: Path
) -> None:
    migrations = make_set(tmp_path / "m", [INIT])
    await connect_ok(target.url, migrations)
    async with await connect_ok(target.url, migrations, lazy=True) as db:
        # An app statement that fails rolls back the whole batch, guard and all, and the
        # error is the app's, not the guard's.
        with pytest.raises(DatabaseError) as info:
            await db.batch(
                [
                    "INSERT INTO parent (id, name) VALUES (1, 'p')",
                    "INSERT INTO parent (id, name) VALUES (1, 'duplicate')",
                ]
            )
        assert HEAD_GUARD_MARKER not in str(info.value)
        assert db.round_trips == 1
    assert snapshot(target.path)["parent"] == []


async def test_an_app_error_under_a_holding_guard_is_the_apps(
    target: Target, tmp_path: Path
) -> None:
    migrations = make_set(tmp_path / "m", [INIT])
    await connect_ok(target.url, migrations)
    async with await connect_ok(target.url, migrations, lazy=True) as db:
        with pytest.raises(DatabaseError, match="no such table"):
            await db.execute("SELECT * FROM nowhere")
        assert db.round_trips == 1
        await db.execute("SELECT 1")
        assert db.round_trips == 2  # the guard held, so the check is done


async def test_a_failing_migration_raises_from_the_first_call_and_runs_nothing(
    target: Target, tmp_path: Path
) -> None:
    await migrate_to(target, tmp_path, [INIT])
    before = snapshot(target.path)
    broken = make_set(tmp_path / "m", [INIT, ["ALTER TABLE `nowhere` ADD `x` text;"]])
    async with await connect_ok(target.url, broken, lazy=True) as db:
        with pytest.raises(MigrationFailedError) as info:
            await db.execute("INSERT INTO parent (id, name) VALUES (2, 'never')")
        assert isinstance(info.value.error, StatementFailed)
        assert info.value.code == "MIGRATION_FAILED"
        assert isinstance(info.value, DatabaseError)
    assert snapshot(target.path) == before


async def test_a_database_ahead_is_refused_unless_allowed(target: Target, tmp_path: Path) -> None:
    await migrate_to(target, tmp_path, [INIT, ADD_COLUMN])
    older = make_set(tmp_path / "older", [INIT])
    async with await connect_ok(target.url, older, lazy=True) as db:
        with pytest.raises(MigrationFailedError) as info:
            await db.execute("INSERT INTO parent (id, name) VALUES (2, 'never')")
        assert isinstance(info.value.error, DatabaseAhead)
    async with await connect_ok(target.url, older, lazy=True, allow_ahead=True) as db:
        await db.execute("INSERT INTO parent (id, name) VALUES (2, 'allowed')")
    assert snapshot(target.path)["parent"] == [(1, "p"), (2, "allowed")]


async def test_concurrent_first_statements_migrate_once_and_each_runs_once(
    target: Target, tmp_path: Path
) -> None:
    migrations = make_set(tmp_path / "m", STANDARD)
    async with await connect_ok(target.url, migrations, lazy=True) as db:
        await asyncio.gather(
            *(
                db.execute("INSERT INTO parent (id, name) VALUES (?, ?)", [i, "p"])
                for i in range(20)
            )
        )
    assert len(snapshot(target.path)["parent"]) == 20
    assert version_rows(target.path) == [(m.hash, m.when) for m in migrations]


async def test_a_transaction_settles_the_check_before_its_first_statement(
    target: Target, tmp_path: Path
) -> None:
    migrations = make_set(tmp_path / "m", [INIT, ADD_COLUMN])
    db = await connect_ok(target.url, migrations, lazy=True)
    async with db, db.transaction() as tx:
        await tx.execute("INSERT INTO parent (id, name) VALUES (1, 'p')")
        await tx.execute(*NEW_COLUMN_INSERT)
        await tx.commit()
    assert snapshot(target.path)["child"] == [(1, 1, "c", "n")]


async def test_rows_of_drizzles_expo_migrator_pass_the_guard(
    target: Target, tmp_path: Path
) -> None:
    migrations = make_set(tmp_path / "m", [INIT])
    await connect_ok(target.url, migrations)
    # As the Expo migrator does; through the target's own SQLite (a sqlite3 writer beside
    # the local server in this process would delete the WAL under it: conftest.read_only).
    async with (await open_database(target.url)).unwrap() as raw:
        await raw.execute("UPDATE __drizzle_migrations SET hash = ''")
    async with await connect_ok(target.url, migrations, lazy=True) as db:
        await db.execute("SELECT 1")
        assert db.round_trips == 1


async def test_a_held_guard_fills_the_verified_cache(target: Target, tmp_path: Path) -> None:
    migrations = make_set(tmp_path / "m", [INIT])
    await connect_ok(target.url, migrations)
    cache = VerifiedCache(ttl=60)
    async with await connect_ok(target.url, migrations, lazy=True, cache=cache) as db:
        await db.execute("SELECT 1")
    assert len(cache) == 1
    async with await connect_ok(target.url, migrations, lazy=True, cache=cache) as db:
        await db.execute("SELECT 1")  # fresh in the cache: no guard at all
    if target.server is not None:
        target.reset_requests()
        async with await connect_ok(target.url, migrations, lazy=True, cache=cache) as db:
            await db.execute("SELECT 1")
        sent = target.server.state.counts.count(route="v3/pipeline")
        assert sent == 1


async def test_the_guard_is_sent_in_the_first_request_only(tmp_path: Path) -> None:
    from .scripted_server import Reply, scripted_server

    async with scripted_server() as fake:
        ok = {"cols": [], "rows": [], "affected_row_count": 0, "last_insert_rowid": None}
        batch = {"type": "batch", "result": {"step_results": [ok, ok], "step_errors": [None, None]}}
        close = {"type": "close"}
        fake.on(
            "POST",
            "/db/a/v3/pipeline",
            Reply(
                body=json.dumps(
                    {"results": [{"type": "ok", "response": r} for r in (batch, close)]}
                )
            ),
        )
        migrations = make_set(tmp_path / "m", [INIT])
        db = await connect_ok(f"{fake.url}/db/a", migrations, lazy=True)
        await db.execute("SELECT 42")
        body = fake.requests[0].json()
        assert isinstance(body, dict)
        steps = body["requests"][0]["batch"]["steps"]
        assert "__drizzle_migrations" in steps[0]["stmt"]["sql"]
        assert steps[1]["stmt"]["sql"] == "SELECT 42"
        assert steps[1]["condition"] == {"type": "ok", "step": 0}
        await db.close()


async def test_a_busy_begin_leaves_the_check_pending(tmp_path: Path) -> None:
    path = tmp_path / "user.db"
    url = f"file:{path}"
    async with await connect_ok(url, make_set(tmp_path / "old", [INIT])):
        pass
    migrations = make_set(tmp_path / "m", [INIT, ADD_COLUMN])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        db = await connect_ok(url, migrations, lazy=True, busy_timeout=0.05)
        with pytest.raises(DatabaseError) as info:
            await db.batch(["INSERT INTO parent (id, name) VALUES (1, 'p')"])
        assert info.value.code is not None
        assert info.value.code.startswith("SQLITE_BUSY")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    async with db:  # the guard was never evaluated, so it goes with the next batch
        await db.batch(["INSERT INTO parent (id, name) VALUES (1, 'p')", NEW_COLUMN_INSERT])
    assert snapshot(path)["child"] == [(1, 1, "c", "n")]
