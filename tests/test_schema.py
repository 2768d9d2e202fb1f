"""per_user_db.schema (typed values from schema/), per-user-db check, migration new."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import anyio
import pytest

from per_user_db import MigrationFileError, load_migrations
from per_user_db._check import check_schema
from per_user_db._migration_files import add_migration
from per_user_db.schema import SchemaError, load_schema, parse_schema

ROOT = Path(__file__).parent.parent


def test_the_schema_has_its_fifteen_tables() -> None:
    schema = load_schema()
    assert len(schema) == 15
    programs = schema["programs"]
    assert programs.primary_key == ("id",)
    name = programs.column("name")
    assert (name.type, name.not_null, name.required) == ("text", True, True)
    assert (name.bounds.min_length, name.bounds.max_length) == (1, 200)
    meta = programs.column("meta_info")
    assert (meta.not_null, meta.bounds.max_length) == (False, 10_000)


def test_defaults_bounds_and_relations() -> None:
    schema = load_schema()
    step = schema["exercises"].column("weight_step")
    assert (step.type, step.default, step.required) == ("real", "2.5", False)
    assert (step.bounds.minimum, step.bounds.minimum_inclusive) == (0, False)
    rpe = schema["set_logs"].column("rpe")
    assert (rpe.not_null, rpe.bounds.minimum, rpe.bounds.maximum) == (False, 1, 10)
    assert schema["one_rep_maxes"].relations == (("achieved_at", "<=", "registered_at"),)
    assert {c.name for c in schema["one_rep_maxes"].checks} == {
        "one_rep_maxes_weight_kg_check",
        "one_rep_maxes_achieved_at_check",
    }


def test_keys_indexes_and_dependency_order() -> None:
    schema = load_schema()
    links = schema["workout_day_links"]
    assert {(k.columns, k.table, k.references) for k in links.foreign_keys} == {
        (("workout_id",), "workouts", ("id",)),
        (("day_id",), "days", ("id",)),
    }
    assert all(k.on_delete == "NO ACTION" for t in schema for k in t.foreign_keys)
    assert "workout_id" in links.unique_columns
    assert schema["exercise_plan_exercises"].primary_key == ("exercise_plan_id",)
    order = [t.name for t in schema.in_dependency_order()]
    for table in schema:
        for key in table.foreign_keys:
            assert order.index(key.table) < order.index(table.name), (table.name, key.table)


def test_unsupported_statements_are_schema_errors() -> None:
    with pytest.raises(SchemaError, match="only CREATE TABLE and CREATE INDEX"):
        parse_schema({"x.sql": "INSERT INTO t VALUES (1)"})
    with pytest.raises(SchemaError, match="index i is on unknown table nope"):
        parse_schema({"x.sql": "CREATE INDEX i ON nope (a)"})


async def test_the_bundled_migrations_build_the_declared_schema() -> None:
    assert await check_schema() == []


async def test_check_reports_every_kind_of_difference(tmp_path: Path) -> None:
    schema = tmp_path / "schema"
    shutil.copytree(ROOT / "schema", schema)
    exercises = schema / "exercises.sql"
    exercises.write_text(
        exercises.read_text()
        .replace("DEFAULT 2.5", "DEFAULT 2.0")
        .replace("BETWEEN 1 AND 200", "BETWEEN 1 AND 100")
    )
    days = schema / "days.sql"
    days.write_text(days.read_text().split("--> statement-breakpoint")[0])  # drop its index
    (schema / "extra.sql").write_text("CREATE TABLE `extra` (`id` text PRIMARY KEY NOT NULL);")
    problems = await check_schema(schema_dir=schema)
    assert problems == [
        "table days: index days_program_id_idx: migrations give (False, False, ('program_id',)), "
        "schema/ declares 'nothing'",
        "table exercises: column weight_step: migrations give ('real', True, '2.5', 0), "
        "schema/ declares ('real', True, '2.0', 0)",
        "table exercises: check exercises_name_length_check: migrations give "
        "'LENGTH(\"name\") BETWEEN 1 AND 200', "
        "schema/ declares 'LENGTH(\"name\") BETWEEN 1 AND 100'",
        "table extra: declared in schema/, not created by the migrations",
    ]


async def run_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "per_user_db", *args], cwd=cwd, check=False
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_check_command(tmp_path: Path) -> None:
    code, out, _ = await run_cli("check", cwd=tmp_path)
    assert (code, out.strip()) == (0, "the migrations build exactly what schema/ declares")
    broken = tmp_path / "schema"
    shutil.copytree(ROOT / "schema", broken)
    (broken / "workouts.sql").unlink()
    code, _, err = await run_cli("check", "--schema", str(broken), cwd=tmp_path)
    assert code == 1
    assert "table workouts: created by the migrations, missing from schema/" in err


def test_migration_new_appends_a_file_and_a_journal_entry(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", folder)
    before = load_migrations(folder)
    assert before.head is not None
    created = add_migration(folder, "add_notes", now_ms=before.head.when - 5)  # clock behind
    assert created.name == "0004_add_notes.sql"
    entries = json.loads((folder / "meta" / "_journal.json").read_text())["entries"]
    assert entries[-1] == {
        "idx": 4,
        "version": "6",
        "when": before.head.when + 1,
        "tag": "0004_add_notes",
        "breakpoints": True,
    }
    with pytest.raises(MigrationFileError, match=r"0004_add_notes\.sql: statement 1"):
        load_migrations(folder)  # a new migration has no statements until you write them
    created.write_text("ALTER TABLE `programs` ADD `color` text;\n")
    after = load_migrations(folder)
    assert [m.tag for m in after][:4] == [m.tag for m in before]
    assert after.migrations[-1].statements == ("ALTER TABLE `programs` ADD `color` text;",)
    later = add_migration(folder, "more", now_ms=after.migrations[-1].when + 1000)
    assert later.name == "0005_more.sql"
    with pytest.raises(ValueError, match="lowercase letters"):
        add_migration(folder, "Bad-Name", now_ms=0)


async def test_migration_new_command(tmp_path: Path) -> None:
    code, out, _ = await run_cli("migration", "new", "first", cwd=tmp_path)
    assert code == 0
    assert "0000_first.sql" in out
    assert (tmp_path / "migrations" / "0000_first.sql").exists()


async def test_check_notices_a_partial_index(tmp_path: Path) -> None:
    schema = tmp_path / "schema"
    shutil.copytree(ROOT / "schema", schema)
    days = schema / "days.sql"
    days.write_text(
        days.read_text().replace(
            "ON `days` (`program_id`);", "ON `days` (`program_id`) WHERE `display_order` > 0;"
        )
    )
    assert await check_schema(schema_dir=schema) == [
        "table days: index days_program_id_idx: migrations give (False, False, ('program_id',)), "
        "schema/ declares (False, True, ('program_id',))"
    ]
