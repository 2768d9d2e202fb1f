from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from per_user_db import (
    AppliedRow,
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
from per_user_db.core._planner import (
    create_version_table,
    disables_foreign_keys,
    insert_version_row,
    select_version_rows,
)

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


# --- what the mutation run found unpinned (issue #15) ----------------------------------------

TWO = build_set([["CREATE TABLE a (x);"], ["CREATE TABLE b (y);"]], [10, 20])


def test_version_table_sql_is_drizzles() -> None:
    assert create_version_table() == (
        'CREATE TABLE IF NOT EXISTS "__drizzle_migrations" '
        "(id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)"
    )
    assert select_version_rows("own_table") == 'SELECT hash, created_at FROM "own_table"'


@pytest.mark.parametrize("created_at", ["10.5", "9.99", "NaN", "Infinity", "-inf", "", "0x0a"])
def test_text_created_at_that_is_not_a_whole_number_is_unreadable(created_at: str) -> None:
    # "10.5" must not be rounded to 10 and taken for migration 10.
    result = plan([(TWO.migrations[0].hash, created_at)], TWO)
    assert isinstance(result, Err)
    assert result.error == InvalidVersionRow(hash=TWO.migrations[0].hash, created_at=created_at)


def test_invalid_version_row_keeps_both_values_and_names_the_hash_type() -> None:
    result = plan([(b"\x00", 10)], TWO)
    assert isinstance(result, Err)
    assert result.error == InvalidVersionRow(hash=b"\x00", created_at=10)
    assert str(result.error) == (
        "unreadable row in __drizzle_migrations: created_at=10, hash of type bytes. "
        "Fix or delete the row by hand"
    )


def test_foreign_keys_flag_looks_at_pending_migrations_only() -> None:
    migrations = build_set(
        [["PRAGMA foreign_keys=OFF;", "CREATE TABLE __new_a (x);"], ["CREATE TABLE b (y);"]],
        [10, 20],
    )
    assert ok(plan([], migrations)).disables_foreign_keys
    rest = ok(plan([(migrations.migrations[0].hash, 10)], migrations))
    assert [m.tag for m in rest.pending] == ["0001_m1"]
    # The rebuild already ran: turning foreign keys off again would be for nothing.
    assert not rest.disables_foreign_keys


@pytest.mark.parametrize(
    "statement",
    [
        "PRAGMA foreign_keys=OFF;",
        "PRAGMA foreign_keys=0;",
        "PRAGMA foreign_keys=false;",
        "PRAGMA foreign_keys = no",
        "  pragma FOREIGN_KEYS =  Off ;  ",
    ],
)
def test_every_spelling_of_foreign_keys_off_is_a_rebuild(statement: str) -> None:
    assert disables_foreign_keys(statement)
    migrations = build_set([[statement, "CREATE TABLE a (x);"]], [10])
    assert ok(plan([], migrations)).disables_foreign_keys


@pytest.mark.parametrize(
    "statement",
    [
        "PRAGMA foreign_keys=ON;",
        "PRAGMA foreign_keys=1;",
        "PRAGMA foreign_keys;",
        "PRAGMA foreign_key_check;",
        "PRAGMA foreign_keys=OFF; DROP TABLE a;",
        "SELECT 'PRAGMA foreign_keys=OFF';",
    ],
)
def test_other_statements_are_not_rebuilds(statement: str) -> None:
    assert not disables_foreign_keys(statement)


def test_database_ahead_names_the_newest_known_migration() -> None:
    result = plan([("", 10), ("", 20), ("", 31), ("", 30)], TWO)
    assert isinstance(result, Err)
    assert isinstance(result.error, DatabaseAhead)
    assert result.error.known_head == 20
    assert [r.created_at for r in result.error.unknown] == [30, 31]
    assert str(result.error) == (
        "database is ahead: version rows created_at=30, 31 match no migration known here "
        "(newest known: 20). Deploy the newer code, or connect with allow_ahead=True to run "
        "without migrating"
    )
    empty = build_set([], [])
    nothing_known = plan([("", 30)], empty)
    assert isinstance(nothing_known, Err)
    assert nothing_known.error == DatabaseAhead(
        unknown=(AppliedRow(hash="", created_at=30),), known_head=None
    )
    assert "(newest known: none)" in str(nothing_known.error)


def test_drift_below_an_unknown_row_is_still_drift() -> None:
    # Drift wins over "ahead": an edited file is a bug here, whatever newer code did.
    result = plan([("", 5), ("f" * 64, 10), ("", 20)], TWO)
    assert isinstance(result, Err)
    assert isinstance(result.error, Drift)
    assert [d.migration.tag for d in result.error.drifted] == ["0000_m0"]


def test_every_drifted_migration_is_reported_once_in_order() -> None:
    three = build_set(
        [["CREATE TABLE a (x);"], ["CREATE TABLE b (y);"], ["SELECT 1;"]], [10, 20, 30]
    )
    rows = [("b" * 64, 30), ("a" * 64, 10), ("c" * 64, 10), (three.migrations[1].hash, 20)]
    result = plan(rows, three)
    assert isinstance(result, Err)
    assert isinstance(result.error, Drift)
    drifted = result.error.drifted
    assert [(d.migration.tag, d.recorded_hash) for d in drifted] == [
        ("0000_m0", "a" * 64),
        ("0002_m2", "b" * 64),
    ]
    first, third = three.migrations[0].hash, three.migrations[2].hash
    assert str(result.error) == (
        f"migration drift: 0000_m0 (recorded {'a' * 12}…, file {first[:12]}…); "
        f"0002_m2 (recorded {'b' * 12}…, file {third[:12]}…). These migrations were edited "
        "after they were applied; restore the original files and put the change in a new "
        "migration"
    )


def test_out_of_order_says_what_to_do() -> None:
    three = build_set(
        [["CREATE TABLE a (x);"], ["CREATE TABLE b (y);"], ["SELECT 1;"]], [10, 20, 30]
    )
    result = plan([("", 30)], three)
    assert isinstance(result, Err)
    assert isinstance(result.error, OutOfOrder)
    assert result.error.newest_applied == 30
    assert str(result.error) == (
        "out-of-order migrations: 0000_m0 (when 10), 0001_m1 (when 20) are older than the "
        "newest applied row (created_at 30) but were never applied. Give them a 'when' newer "
        "than every applied migration (regenerate them after merging)"
    )


def test_plan_keeps_the_rows_sorted_and_describes_an_up_to_date_database() -> None:
    planned = ok(plan([("", 20), (TWO.migrations[0].hash, 10)], TWO))
    assert planned.rows == (
        AppliedRow(hash=TWO.migrations[0].hash, created_at=10),
        AppliedRow(hash="", created_at=20),
    )
    assert planned.applied == TWO.migrations
    assert planned.describe() == "up to date (2 applied)"


def test_a_set_with_its_own_version_table_plans_inserts_into_it() -> None:
    own = MigrationSet(migrations=TWO.migrations, version_table="store_migrations")
    planned = ok(plan([], own))
    assert planned.version_table == "store_migrations"
    assert planned.statements[1] == (
        f'INSERT INTO "store_migrations" ("hash", "created_at") '
        f"VALUES ('{TWO.migrations[0].hash}', 10)"
    )
