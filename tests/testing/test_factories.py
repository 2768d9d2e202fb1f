"""Schema-driven factories: valid rows for every table, parents, overrides, sequences."""

from __future__ import annotations

from typing import Any

import pytest

from per_user_db import Database, DatabaseError
from per_user_db.schema import Column, Table, load_schema
from per_user_db.testing import (
    ENUM_CHOICES,
    EPOCH_MS_BASE,
    Factories,
    factories,
)

SCHEMA = load_schema()


async def count(db: Database, table: str) -> int:
    rows = await db.execute(f'SELECT count(*) FROM "{table}"')
    value = rows[0][0]
    assert isinstance(value, int)
    return value


def within_bounds(column: Column, value: Any) -> bool:
    b = column.bounds
    if isinstance(value, str):
        return (b.min_length is None or len(value) >= b.min_length) and (
            b.max_length is None or len(value) <= b.max_length
        )
    if b.minimum is not None and (
        value < b.minimum or (value == b.minimum and not b.minimum_inclusive)
    ):
        return False
    return not (
        b.maximum is not None
        and (value > b.maximum or (value == b.maximum and not b.maximum_inclusive))
    )


def check_row(table: Table, row: dict[str, Any]) -> None:
    assert set(row) == {c.name for c in table.columns}
    for column in table.columns:
        value = row[column.name]
        if column.not_null or column.primary_key:
            assert value is not None, (table.name, column.name)
        elif column.default is None:
            assert value is None, (table.name, column.name)  # nullable: left NULL
        if value is None:
            continue
        assert within_bounds(column, value), (table.name, column.name, value)
        if column.name in ENUM_CHOICES:
            assert value in ENUM_CHOICES[column.name]
        if column.type == "real":
            assert isinstance(value, float), (table.name, column.name, value)
        if column.name.endswith("_at"):
            assert isinstance(value, int)
            assert value >= EPOCH_MS_BASE
        if column.primary_key and table.foreign_key_of(column.name) is None:
            assert isinstance(value, str)
            assert len(value) == 12


@pytest.mark.parametrize("table", [t.name for t in SCHEMA], ids=str)
async def test_three_valid_rows_of_every_table(
    per_user_database: Database, per_user_db_factories: Factories, table: str
) -> None:
    rows = await per_user_db_factories[table].create(3)
    assert len(rows) == 3
    assert await count(per_user_database, table) == 3
    for row in rows:
        check_row(SCHEMA[table], row)
    # Everything the factories wrote satisfies the real constraints (they were enforced
    # on insert); the foreign keys too:
    assert list(await per_user_database.execute("PRAGMA foreign_key_check")) == []


def test_covers_all_fifteen_tables(per_user_database: Database) -> None:
    f = factories(per_user_database)
    assert len(f.tables) == 15
    assert set(f.tables) == {t.name for t in SCHEMA}


async def test_set_logs_make_their_parent_chain(per_user_db_factories: Factories) -> None:
    f = per_user_db_factories
    db = f.db
    logs = await f.set_logs.create(3)
    assert {r["exercise_log_id"] for r in logs} == {logs[0]["exercise_log_id"]}  # shared
    for table, expected in [("exercise_logs", 1), ("workouts", 1), ("exercises", 1)]:
        assert await count(db, table) == expected
    joined = await db.execute(
        "SELECT w.id, e.name FROM set_logs s JOIN exercise_logs l ON l.id = s.exercise_log_id "
        "JOIN workouts w ON w.id = l.workout_id JOIN exercises e ON e.id = l.exercise_id"
    )
    assert len(joined) == 3
    assert joined[0][1] == "Exercise 1"


async def test_unique_foreign_keys_get_distinct_parents(per_user_db_factories: Factories) -> None:
    f = per_user_db_factories
    links = await f.workout_day_links.create(3)
    assert len({r["workout_id"] for r in links}) == 3
    assert len({r["day_id"] for r in links}) == 1
    completions = await f.workout_completions.create(2)
    assert len({r["workout_id"] for r in completions}) == 2
    params = await f.weight_reps_params.create(3)  # the key is the parent's key
    assert len({r["set_plan_id"] for r in params}) == 3


async def test_params_rows_belong_to_plans_of_their_type(per_user_db_factories: Factories) -> None:
    f = per_user_db_factories
    for table, plan_type in [
        ("weight_reps_params", "weight_reps"),
        ("weight_rpe_params", "weight_rpe"),
        ("reps_rpe_params", "reps_rpe"),
    ]:
        (row,) = await f[table].create()
        plans = await f.db.execute(
            "SELECT plan_type FROM set_plans WHERE id = ?", [row["set_plan_id"]]
        )
        assert plans[0][0] == plan_type


async def test_overrides(per_user_db_factories: Factories) -> None:
    f = per_user_db_factories
    program = await f.programs.create_one(name="Strength", meta_info="{}")
    assert (program["name"], program["meta_info"]) == ("Strength", "{}")
    by_row = await f.days.create(2, program_id=program)  # a parent row
    by_id = await f.days.create(1, program_id=program["id"])  # or its key
    assert {d["program_id"] for d in [*by_row, *by_id]} == {program["id"]}
    assert await count(f.db, "programs") == 1
    named = await f.exercises.create(2, name=lambda n: f"Lift {n}", weight_step=1.25)
    assert [r["name"] for r in named] == ["Lift 1", "Lift 2"]
    assert {r["weight_step"] for r in named} == {1.25}
    lbs = await f.one_rep_maxes.create_one(weight_input_unit="lbs", weight_kg=100.0)
    assert (lbs["weight_input_unit"], lbs["weight_kg"]) == ("lbs", 100.0)


async def test_defaults_from_the_database(per_user_db_factories: Factories) -> None:
    exercise = await per_user_db_factories.exercises.create_one()
    assert exercise["default_weight_input_unit"] == "kg"
    assert exercise["weight_step"] == 2.5


async def test_misuse_is_refused(per_user_db_factories: Factories) -> None:
    f = per_user_db_factories
    with pytest.raises(TypeError, match="no column"):
        await f.programs.create(colour="red")
    with pytest.raises(ValueError, match="at least 1"):
        await f.programs.create(0)
    with pytest.raises(AttributeError, match="no table"):
        _ = f.nonexistent
    with pytest.raises(DatabaseError, match="FOREIGN KEY"):
        await f.days.create(program_id="missing-id")
    with pytest.raises(DatabaseError, match="CHECK"):
        await f.programs.create(name="")


async def test_sequences_and_reset(per_user_db_factories: Factories) -> None:
    f = per_user_db_factories
    programs = await f.programs.create(2)
    assert [p["name"] for p in programs] == ["Program 1", "Program 2"]
    days = await f.days.create(3, program_id=programs[0])
    assert [d["label"] for d in days] == ["Day 1", "Day 2", "Day 3"]
    assert [d["display_order"] for d in days] == [0, 1, 2]
    assert f.sequence("days") == 3
    more = await f.days.create(1)  # its auto-made program counts in the sequence
    assert more[0]["label"] == "Day 4"
    assert f.sequence("programs") == 3
    maxes = await f.one_rep_maxes.create(2)
    assert [m["achieved_at"] for m in maxes] == [EPOCH_MS_BASE, EPOCH_MS_BASE + 60_000]
    f.reset_sequences()
    again = await f.programs.create_one()
    assert again["name"] == "Program 1"
    assert again["id"] not in {p["id"] for p in programs}  # ids are not sequences
    assert await count(f.db, "programs") == 4


async def test_relations_are_repaired_around_overrides(per_user_db_factories: Factories) -> None:
    f = per_user_db_factories
    late = await f.one_rep_maxes.create_one(achieved_at=EPOCH_MS_BASE + 10**9)
    assert late["registered_at"] >= late["achieved_at"]
    early = await f.one_rep_maxes.create_one(registered_at=EPOCH_MS_BASE - 10**9)
    assert early["achieved_at"] <= early["registered_at"] == EPOCH_MS_BASE - 10**9
    with pytest.raises(DatabaseError, match="CHECK"):
        await f.one_rep_maxes.create(achieved_at=2, registered_at=1)  # both given: as given


async def test_singular_labels() -> None:
    from per_user_db.testing._factories import _singular

    assert [_singular(t) for t in ("programs", "days", "one_rep_maxes", "exercises")] == [
        "Program",
        "Day",
        "One rep max",
        "Exercise",
    ]
