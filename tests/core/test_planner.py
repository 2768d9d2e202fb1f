from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from per_user_db import (
    DatabaseAhead,
    Drift,
    Err,
    InvalidVersionRow,
    MigrationSet,
    Ok,
    OutOfOrder,
    Plan,
    plan,
)
from per_user_db.core._planner import insert_version_row

from .strategies import build_set, migration_sets


def rows_of(plan_: Plan) -> list[tuple[object, object]]:
    """The version rows a database holds after running ``plan_``'s statements."""
    rows: list[tuple[object, object]] = [(r.hash, r.created_at) for r in plan_.rows]
    return rows + [(m.hash, m.when) for m in plan_.pending]


def ok(result: Ok[Plan] | Err[object]) -> Plan:
    assert isinstance(result, Ok), result
    return result.value


def test_fresh_database_gets_everything_in_order() -> None:
    migrations = build_set([["CREATE TABLE a (x);"], ["CREATE TABLE b (y);"]], [10, 20])
    planned = ok(plan([], migrations))
    first, second = migrations.migrations
    assert planned.pending == (first, second)
    assert planned.statements == (
        "CREATE TABLE a (x);",
        insert_version_row(first),
        "CREATE TABLE b (y);",
        insert_version_row(second),
    )
    assert insert_version_row(first) == (
        f'INSERT INTO "__drizzle_migrations" ("hash", "created_at") VALUES (\'{first.hash}\', 10)'
    )
    assert planned.describe() == "2 pending after 0 applied: 0000_m0, 0001_m1"
    assert not planned.disables_foreign_keys


def test_created_at_may_come_back_as_text_or_float_and_hash_empty() -> None:
    migrations = build_set([["CREATE TABLE a (x);"], ["CREATE TABLE b (y);"]], [10, 20])
    first = migrations.migrations[0]
    for created_at in (10, 10.0, "10", " 10 ", "10.0"):
        planned = ok(plan([(first.hash, created_at)], migrations))
        assert [m.tag for m in planned.pending] == ["0001_m1"]
    # drizzle's Expo migrator records an empty hash: accepted as applied.
    assert ok(plan([("", 10), (None, 20)], migrations)).up_to_date


def test_unreadable_rows_are_reported() -> None:
    migrations = build_set([["CREATE TABLE a (x);"]], [10])
    for created_at in ("ten", 10.5, None, True):
        result = plan([("h", created_at)], migrations)
        assert isinstance(result, Err)
        assert isinstance(result.error, InvalidVersionRow)
        assert "unreadable row in __drizzle_migrations" in str(result.error)


def test_rebuild_migrations_are_flagged() -> None:
    migrations = build_set(
        [["CREATE TABLE a (x);"], ["PRAGMA foreign_keys=OFF;", "CREATE TABLE __new_a (x);"]],
        [10, 20],
    )
    assert ok(plan([], migrations)).disables_foreign_keys
    assert not ok(plan([(migrations.migrations[1].hash, 20), ("", 10)], migrations)).pending


def test_messages_are_actionable() -> None:
    migrations = build_set([["CREATE TABLE a (x);"], ["CREATE TABLE b (y);"]], [10, 20])
    drift = plan([("f" * 64, 10)], migrations)
    assert isinstance(drift, Err)
    assert "0000_m0 (recorded ffffffffffff" in str(drift.error)
    assert "put the change in a new migration" in str(drift.error)
    ahead = plan([("", 10), ("", 20), ("", 30)], migrations)
    assert isinstance(ahead, Err)
    assert str(ahead.error).startswith("database is ahead: version rows created_at=30")
    assert "allow_ahead=True" in str(ahead.error)
    skipped = plan([("", 20)], migrations)
    assert isinstance(skipped, Err)
    assert "0000_m0 (when 10) are older than the newest applied row (created_at 20)" in str(
        skipped.error
    )


@given(migrations=migration_sets())
def test_applying_a_plan_then_replanning_yields_nothing(migrations: MigrationSet) -> None:
    first = ok(plan([], migrations))
    second = ok(plan(rows_of(first), migrations))
    assert second.up_to_date
    assert second.statements == ()
    assert second.applied == migrations.migrations


@given(migrations=migration_sets(), data=st.data())
def test_any_prefix_plans_exactly_the_rest(migrations: MigrationSet, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(migrations)))
    applied = [(m.hash, m.when) for m in migrations.migrations[:cut]]
    planned = ok(plan(applied, migrations))
    assert planned.pending == migrations.migrations[cut:]
    assert planned.applied == migrations.migrations[:cut]


@given(migrations=migration_sets(min_size=1), data=st.data())
def test_tampered_hash_is_always_drift_for_that_migration(
    migrations: MigrationSet, data: st.DataObject
) -> None:
    victim = data.draw(st.integers(0, len(migrations) - 1))
    fake = data.draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    rows: list[tuple[object, object]] = [(m.hash, m.when) for m in migrations]
    target = migrations.migrations[victim]
    if fake == target.hash:
        return
    rows[victim] = (fake, target.when)
    result = plan(rows, migrations)
    assert isinstance(result, Err)
    assert isinstance(result.error, Drift)
    assert [d.migration for d in result.error.drifted] == [target]
    assert result.error.drifted[0].recorded_hash == fake


@given(migrations=migration_sets(), data=st.data())
def test_shuffled_rows_give_the_same_plan(migrations: MigrationSet, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(migrations)))
    rows: list[tuple[object, object]] = [(m.hash, m.when) for m in migrations.migrations[:cut]]
    shuffled = data.draw(st.permutations(rows))
    assert plan(shuffled, migrations) == plan(rows, migrations)


@given(migrations=migration_sets(min_size=2), data=st.data())
def test_a_gap_below_the_newest_row_is_out_of_order(
    migrations: MigrationSet, data: st.DataObject
) -> None:
    missing = data.draw(st.integers(0, len(migrations) - 2))
    rows = [(m.hash, m.when) for i, m in enumerate(migrations) if i != missing]
    result = plan(rows, migrations)
    assert isinstance(result, Err)
    assert isinstance(result.error, OutOfOrder)
    assert result.error.migrations == (migrations.migrations[missing],)


@given(migrations=migration_sets(), extra=st.integers(1, 10**6))
def test_rows_unknown_to_the_set_are_database_ahead(migrations: MigrationSet, extra: int) -> None:
    head = migrations.head.when if migrations.head else 0
    rows = [(m.hash, m.when) for m in migrations] + [("", head + extra)]
    result = plan(rows, migrations)
    assert isinstance(result, Err)
    assert isinstance(result.error, DatabaseAhead)
    assert [r.created_at for r in result.error.unknown] == [head + extra]
