"""``per-user-db check``: do the migrations produce exactly the declared schema?

The migrations are replayed by the real migrator (``connect(":memory:")``), the files of
``schema/`` are executed into a second in-memory database, and both are compared as
SQLite itself reports them (``PRAGMA table_xinfo``, ``foreign_key_list``, ``index_list``,
``index_info``) plus the CHECK constraints, by name and normalised expression.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from libsql_client import LibsqlError

from ._bundled import bundled_migrations, bundled_path
from ._connect import connect
from ._open import open_database
from .core._migrations import split_statements
from .core._planner import VERSION_TABLE
from .core._result import Err, Ok
from .schema import SchemaError, parse_schema, read_schema_files

if TYPE_CHECKING:
    from ._database import Database
    from .core._migrations import MigrationSet

__all__ = ["check_schema"]

Facts = dict[str, dict[str, object]]


async def _facts(db: Database) -> Facts:
    master = await db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
        f"AND name NOT LIKE 'sqlite_%' AND name <> '{VERSION_TABLE}' ORDER BY name"
    )
    texts = {str(row[0]): str(row[1]) for row in master}
    parsed = parse_schema({f"{name}.sql": sql for name, sql in texts.items()})
    facts: Facts = {}
    for name in texts:
        columns = await db.execute(f'PRAGMA table_xinfo("{name}")')
        keys = await db.execute(f'PRAGMA foreign_key_list("{name}")')
        index_rows = await db.execute(f'PRAGMA index_list("{name}")')
        indexes: dict[str, object] = {}
        for row in index_rows:
            index = str(row["name"])
            if index.startswith("sqlite_autoindex"):
                continue
            info = await db.execute(f'PRAGMA index_info("{index}")')
            columns_of = tuple(str(r["name"]) for r in info)
            indexes[index] = (bool(row["unique"]), bool(row["partial"]), columns_of)
        table = parsed[name]
        facts[name] = {
            "columns": {
                str(r["name"]): (
                    str(r["type"]).lower(),
                    bool(r["notnull"]),
                    r["dflt_value"],
                    r["pk"],
                )
                for r in columns
            },
            "foreign keys": sorted(
                (
                    str(r["from"]),
                    str(r["table"]),
                    str(r["to"]),
                    str(r["on_update"]),
                    str(r["on_delete"]),
                )
                for r in keys
            ),
            "indexes": indexes,
            "checks": {check.name or f"(unnamed) {check.sql}": check.sql for check in table.checks},
        }
    return facts


def _diff(migrated: Facts, declared: Facts) -> list[str]:
    problems: list[str] = []
    for table in sorted(set(migrated) | set(declared)):
        if table not in declared:
            problems.append(f"table {table}: created by the migrations, missing from schema/")
            continue
        if table not in migrated:
            problems.append(f"table {table}: declared in schema/, not created by the migrations")
            continue
        for aspect, singular in (("columns", "column"), ("indexes", "index"), ("checks", "check")):
            ours, theirs = migrated[table][aspect], declared[table][aspect]
            assert isinstance(ours, dict)
            assert isinstance(theirs, dict)
            for key in sorted(set(ours) | set(theirs)):
                built, wanted = ours.get(key, "nothing"), theirs.get(key, "nothing")
                if built != wanted:
                    problems.append(
                        f"table {table}: {singular} {key}: migrations give {built!r}, "
                        f"schema/ declares {wanted!r}"
                    )
        built_keys, wanted_keys = migrated[table]["foreign keys"], declared[table]["foreign keys"]
        if built_keys != wanted_keys:
            problems.append(
                f"table {table}: foreign keys: migrations give {built_keys!r}, "
                f"schema/ declares {wanted_keys!r}"
            )
    return problems


async def check_schema(
    migrations: MigrationSet | None = None, schema_dir: str | Path | None = None
) -> list[str]:
    """The differences between what ``migrations`` build and what ``schema_dir`` declares
    (both default to the bundled ones); an empty list when they agree."""
    match await connect(":memory:", migrations=migrations or bundled_migrations()):
        case Err(failed):
            return [f"the migrations do not apply: {failed}"]
        case Ok(replayed):
            pass
    declared = (await open_database(":memory:")).unwrap()  # :memory: always opens
    async with replayed, declared:
        folder = Path(schema_dir) if schema_dir is not None else bundled_path("schema")
        for filename, text in read_schema_files(folder).items():
            for number, statement in enumerate(split_statements(text), start=1):
                try:
                    await declared.execute(statement)
                except LibsqlError as exc:
                    return [f"schema/{filename}: statement {number} fails: {exc}"]
        try:
            return _diff(await _facts(replayed), await _facts(declared))
        except SchemaError as exc:
            return [f"cannot read the resulting schema: {exc}"]
