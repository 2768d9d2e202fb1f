"""The bundled per-user schema: its four migrations, and ``schema/`` that declares their result.

``schema/<table>.sql`` is what a reader consults for the current shape; ``per-user-db
check`` keeps it equal to what the migrations build (tested in ``test_schema.py``). These
tests check the schema's conventions, that upgrading from every earlier version keeps
every row, and that the CHECK constraints hold at the head.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from per_user_db import MigrationSet, connect, load_migrations
from per_user_db.core._migrations import split_statements
from per_user_db.schema import load_schema

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
SCHEMA = ROOT / "schema"

WHENS = (1777014726134, 1777273658768, 1777342025930, 1777699652593)

# Parents before children, so rows can be inserted in this order with foreign keys on.
TABLES = (
    "programs",
    "days",
    "exercises",
    "exercise_plans",
    "exercise_plan_exercises",
    "set_plans",
    "weight_reps_params",
    "weight_rpe_params",
    "reps_rpe_params",
    "one_rep_maxes",
    "workouts",
    "workout_day_links",
    "workout_completions",
    "exercise_logs",
    "set_logs",
)

Row = dict[str, object]


# --- helpers ------------------------------------------------------------------------------


def user_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name != '__drizzle_migrations' "
        "ORDER BY name"
    ).fetchall()
    return [str(r[0]) for r in rows]


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_xinfo(`{table}`)").fetchall()]


def key(prefix: str, n: int) -> str:
    """A 12-character text id, as the app makes them."""
    return f"{prefix}{n:0{12 - len(prefix)}d}"


def sample_rows(n: int = 3) -> dict[str, list[Row]]:
    """Related rows for every table, with every column any version has; each is valid at
    the head too (the CHECK rebuild must copy them, not reject them). Edge values on
    purpose: NULL optional text, display_order 0, set_logs with 0 kg and 0 reps."""
    t0 = 1_777_000_000_000
    rows: dict[str, list[Row]] = {t: [] for t in TABLES}
    for i in range(1, n + 1):
        meta = None if i == 1 else f"meta {i}"
        rows["programs"].append({"id": key("prg", i), "name": f"Program {i}", "meta_info": meta})
        rows["days"].append(
            {
                "id": key("day", i),
                "program_id": key("prg", i),
                "label": "D" * (200 if i == 2 else 1),
                "display_order": i - 1,
                "meta_info": meta,
            }
        )
        rows["exercises"].append(
            {
                "id": key("exe", i),
                "name": f"Exercise {i}",
                "default_weight_input_unit": "lbs" if i == 2 else "kg",
                "weight_step": 1.25 * i,
            }
        )
        rows["exercise_plans"].append(
            {
                "id": key("epl", i),
                "day_id": key("day", i),
                "display_order": i - 1,
                "meta_info": meta,
            }
        )
        rows["exercise_plan_exercises"].append(
            {"exercise_plan_id": key("epl", i), "exercise_id": key("exe", i)}
        )
        rows["set_plans"].append(
            {
                "id": key("spl", i),
                "exercise_plan_id": key("epl", i),
                "plan_type": ("weight_reps", "weight_rpe", "reps_rpe")[(i - 1) % 3],
                "display_order": i - 1,
                "meta_info": meta,
            }
        )
        rows["weight_reps_params"].append(
            {
                "set_plan_id": key("spl", i),
                "weight_value": 60.0 + i,
                "weight_type": "kg",
                "weight_input_unit": "kg",
                "reps": i,
            }
        )
        rows["weight_rpe_params"].append(
            {
                "set_plan_id": key("spl", i),
                "weight_value": 70.5,
                "weight_type": "percent_1rm",
                "weight_input_unit": "lbs",
                "rpe": 1.0 if i == 1 else 10.0,
            }
        )
        rows["reps_rpe_params"].append({"set_plan_id": key("spl", i), "reps": 8 + i, "rpe": 7.5})
        rows["one_rep_maxes"].append(
            {
                "id": key("orm", i),
                "exercise_id": key("exe", i),
                "weight_kg": 100.0 + i,
                "weight_input_unit": "kg",
                "achieved_at": t0 + i,
                "registered_at": t0 + i + (0 if i == 2 else 60_000),  # may equal achieved_at
            }
        )
        rows["workouts"].append({"id": key("wko", i), "started_at": t0 + 1000 * i})
        rows["workout_day_links"].append(
            {"id": key("wdl", i), "workout_id": key("wko", i), "day_id": key("day", i)}
        )
        rows["workout_completions"].append(
            {"id": key("wkc", i), "workout_id": key("wko", i), "completed_at": t0 + 5000 * i}
        )
        rows["exercise_logs"].append(
            {
                "id": key("elg", i),
                "workout_id": key("wko", i),
                "exercise_id": key("exe", i),
                "memo": None if i == 1 else "m" * 10000,
                "display_order": i - 1,
            }
        )
        rows["set_logs"].append(
            {
                "id": key("slg", i),
                "exercise_log_id": key("elg", i),
                "weight_kg": 0.0 if i == 1 else 50.0 * i,
                "weight_input_unit": "kg",
                "reps": i - 1,
                "rpe": None if i == 1 else 9.5,
                "memo": meta,
                "display_order": i - 1,
            }
        )
    return rows


def fill(conn: sqlite3.Connection, rows: dict[str, list[Row]]) -> None:
    """Insert the rows of every table that exists, with only the columns it has now."""
    present = set(user_tables(conn))
    with conn:
        for table in TABLES:
            if table not in present:
                continue
            have = columns(conn, table)
            for row in rows[table]:
                names = [c for c in row if c in have]
                conn.execute(
                    f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in names)}) "
                    f"VALUES ({', '.join('?' for _ in names)})",
                    [row[c] for c in names],
                )


def dump(conn: sqlite3.Connection) -> dict[str, tuple[list[str], list[tuple[object, ...]]]]:
    return {
        table: (
            columns(conn, table),
            sorted(conn.execute(f"SELECT * FROM `{table}`").fetchall(), key=repr),
        )
        for table in user_tables(conn)
    }


def project(
    table_dump: tuple[list[str], list[tuple[object, ...]]], keep: list[str]
) -> list[tuple[object, ...]]:
    names, rows = table_dump
    positions = [names.index(c) for c in keep]
    return sorted((tuple(row[p] for p in positions) for row in rows), key=repr)


@pytest.fixture
async def head(tmp_path: Path) -> AsyncIterator[sqlite3.Connection]:
    """A database at the head, migrated by the library itself, holding sample rows."""
    path = tmp_path / "head.db"
    async with (await connect(f"file:{path}", migrations=load_migrations(MIGRATIONS))).unwrap():
        pass
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        fill(conn, sample_rows())
        yield conn


# --- 1. the files -------------------------------------------------------------------------


def test_four_migrations_load_with_the_original_whens() -> None:
    loaded = load_migrations(MIGRATIONS)
    assert [m.when for m in loaded] == list(WHENS)
    assert [m.idx for m in loaded] == [0, 1, 2, 3]
    assert [m.tag[:5] for m in loaded] == ["0000_", "0001_", "0002_", "0003_"]
    assert all(m.statements for m in loaded)
    assert [path.name for path in sorted(MIGRATIONS.glob("*.sql"))] == [m.filename for m in loaded]


def test_one_schema_file_per_table() -> None:
    assert sorted(path.stem for path in SCHEMA.glob("*.sql")) == sorted(TABLES)
    for path in SCHEMA.glob("*.sql"):
        first = split_statements(path.read_text(encoding="utf-8"))[0]
        assert first.startswith(f"CREATE TABLE `{path.stem}` (")


# --- 2. the declared schema's conventions --------------------------------------------------
# (That the migrations build exactly schema/ is per-user-db check's job: tests/test_schema.py.)


def test_every_check_is_named_after_its_table_and_column() -> None:
    for table in load_schema():
        names = {c.name for c in table.columns}
        for check in table.checks:
            assert check.name is not None, (table.name, check.sql)
            named = re.fullmatch(rf"{table.name}_(\w+?)(_length)?_check", check.name)
            assert named is not None, check.name
            assert named.group(1) in names, check.name


def test_foreign_keys_are_all_no_action_and_resolve() -> None:
    schema = load_schema()
    assert sorted(t.name for t in schema) == sorted(TABLES)
    for table in schema:
        for key in table.foreign_keys:
            assert (key.on_update, key.on_delete) == ("NO ACTION", "NO ACTION")
            parent = schema[key.table]
            assert all(parent.column(c) for c in key.references)


# --- 3. upgrading keeps every row, from every version ------------------------------------


async def test_connect_applies_the_bundled_migrations(tmp_path: Path) -> None:
    full = load_migrations(MIGRATIONS)
    async with (await connect(f"file:{tmp_path / 'u.db'}", migrations=full)).unwrap() as db:
        result = await db.execute('SELECT created_at FROM "__drizzle_migrations" ORDER BY 1')
        assert [row[0] for row in result.rows] == list(WHENS)
    with closing(sqlite3.connect(tmp_path / "u.db")) as conn:
        assert user_tables(conn) == sorted(TABLES)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
async def test_upgrade_from_each_version_keeps_every_row(tmp_path: Path, version: int) -> None:
    full = load_migrations(MIGRATIONS)
    path = tmp_path / "u.db"
    url = f"file:{path}"
    partial = MigrationSet(migrations=full.migrations[: version + 1])
    async with (await connect(url, migrations=partial)).unwrap():
        pass
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        fill(conn, sample_rows())
        before = dump(conn)
    assert set(before) == set(TABLES)
    assert all(rows for _, rows in before.values())

    async with (await connect(url, migrations=full)).unwrap():
        pass

    with closing(sqlite3.connect(path)) as conn:
        after = dump(conn)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert set(after) == set(before)
    for table in TABLES:
        kept = [c for c in before[table][0] if c in after[table][0]]
        assert project(after[table], kept) == project(before[table], kept), table
    exercises_names, exercises = after["exercises"]
    if version < 1:
        unit = exercises_names.index("default_weight_input_unit")
        assert {row[unit] for row in exercises} == {"kg"}
    if version < 3:
        step = exercises_names.index("weight_step")
        assert {row[step] for row in exercises} == {2.5}


# --- 4. the CHECK constraints hold at the head ---------------------------------------------

BAD_VALUES = [
    ("programs", "name", "", "programs_name_length_check"),
    ("programs", "name", "p" * 201, "programs_name_length_check"),
    ("programs", "meta_info", "", "programs_meta_info_length_check"),
    ("days", "label", "", "days_label_length_check"),
    ("days", "display_order", -1, "days_display_order_check"),
    ("days", "meta_info", "x" * 10001, "days_meta_info_length_check"),
    ("exercise_plans", "display_order", -1, "exercise_plans_display_order_check"),
    ("exercise_plans", "meta_info", "", "exercise_plans_meta_info_length_check"),
    ("set_plans", "display_order", -1, "set_plans_display_order_check"),
    ("set_plans", "meta_info", "", "set_plans_meta_info_length_check"),
    ("weight_reps_params", "weight_value", -0.5, "weight_reps_params_weight_value_check"),
    ("weight_reps_params", "reps", 0, "weight_reps_params_reps_check"),
    ("weight_rpe_params", "rpe", 11, "weight_rpe_params_rpe_check"),
    ("weight_rpe_params", "rpe", 0.5, "weight_rpe_params_rpe_check"),
    ("reps_rpe_params", "reps", 0, "reps_rpe_params_reps_check"),
    ("reps_rpe_params", "rpe", 10.5, "reps_rpe_params_rpe_check"),
    ("exercises", "name", "", "exercises_name_length_check"),
    ("exercises", "weight_step", 0, "exercises_weight_step_check"),
    ("exercises", "weight_step", -2.5, "exercises_weight_step_check"),
    ("one_rep_maxes", "weight_kg", 0, "one_rep_maxes_weight_kg_check"),
    ("one_rep_maxes", "achieved_at", 1_800_000_000_000, "one_rep_maxes_achieved_at_check"),
    ("exercise_logs", "memo", "", "exercise_logs_memo_length_check"),
    ("exercise_logs", "display_order", -1, "exercise_logs_display_order_check"),
    ("set_logs", "weight_kg", -1, "set_logs_weight_kg_check"),
    ("set_logs", "reps", -1, "set_logs_reps_check"),
    ("set_logs", "rpe", 11, "set_logs_rpe_check"),
    ("set_logs", "rpe", 0, "set_logs_rpe_check"),
    ("set_logs", "memo", "", "set_logs_memo_length_check"),
    ("set_logs", "display_order", -1, "set_logs_display_order_check"),
]


@pytest.mark.parametrize(
    ("table", "column", "value", "constraint"),
    BAD_VALUES,
    ids=[f"{t}.{c}={v!r:.12}" for t, c, v, _ in BAD_VALUES],
)
def test_checks_reject_bad_values(
    head: sqlite3.Connection, table: str, column: str, value: object, constraint: str
) -> None:
    with pytest.raises(sqlite3.IntegrityError, match=f"CHECK constraint failed: {constraint}$"):
        head.execute(f"UPDATE `{table}` SET `{column}` = ?", (value,))


def test_checks_reject_a_bad_insert(head: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="programs_name_length_check"):
        head.execute("INSERT INTO programs (id, name) VALUES (?, '')", (key("prg", 99),))
    head.execute("INSERT INTO programs (id, name) VALUES (?, ?)", (key("prg", 99), "p" * 200))


def test_new_exercises_get_the_defaults(head: sqlite3.Connection) -> None:
    head.execute("INSERT INTO exercises (id, name) VALUES (?, 'Squat')", (key("exe", 99),))
    row = head.execute(
        "SELECT default_weight_input_unit, weight_step FROM exercises WHERE id = ?",
        (key("exe", 99),),
    ).fetchone()
    assert row == ("kg", 2.5)


def test_unique_workout_links_and_completions(head: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        head.execute(
            "INSERT INTO workout_day_links (id, workout_id, day_id) VALUES (?, ?, ?)",
            (key("wdl", 99), key("wko", 1), key("day", 2)),
        )
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        head.execute(
            "INSERT INTO workout_completions (id, workout_id, completed_at) VALUES (?, ?, 1)",
            (key("wkc", 99), key("wko", 1)),
        )


def test_foreign_keys_are_enforced_at_the_head(head: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        head.execute(
            "INSERT INTO exercise_plan_exercises (exercise_plan_id, exercise_id) VALUES (?, ?)",
            (key("epl", 99), key("exe", 1)),
        )
