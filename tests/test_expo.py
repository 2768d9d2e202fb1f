"""``per-user-db export expo``: drizzle-kit's Expo layout, read back by Node and by drizzle.

The Node tests import the exported ``migrations.js`` with a small loader
(``tests/interop/js/expo/loader.mjs``) standing in for the app's bundler, and apply it
with drizzle's own Expo migrator on better-sqlite3. They skip when node or the npm
packages are missing.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from per_user_db import connect, migration_status
from per_user_db._bundled import bundled_migrations, bundled_path
from per_user_db._expo import (
    ExportProblem,
    expo_files,
    expo_module,
    is_previous_export,
    write_expo_export,
)
from per_user_db.cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, main
from per_user_db.core._migrations import JOURNAL_PATH, MigrationSet, parse_migrations
from per_user_db.core._result import Err, Ok

SOURCE = bundled_path("migrations")
JS = Path(__file__).parent / "interop" / "js"
NODE = shutil.which("node")
NPM_PACKAGES = ("drizzle-orm", "better-sqlite3", "react")

# What drizzle-kit's embeddedMigrations() writes for driver "expo", whitespace and all.
EXPECTED_MODULE = """\
// This file is required for Expo/React Native SQLite migrations - https://orm.drizzle.team/quick-sqlite/expo

import journal from './meta/_journal.json';
import m0000 from './0000_initial_schema.sql';
import m0001 from './0001_exercise_default_weight_unit.sql';
import m0002 from './0002_check_constraints.sql';
import m0003 from './0003_exercise_weight_step.sql';

  export default {
    journal,
    migrations: {
      m0000,
m0001,
m0002,
m0003
    }
  }
  """


def export(out: Path, *, inline: bool = False, migrations: MigrationSet | None = None) -> Path:
    chosen = migrations if migrations is not None else bundled_migrations()
    journal = (SOURCE / JOURNAL_PATH).read_text() if migrations is None else None
    files = expo_files(chosen, inline=inline, journal_text=journal)
    match write_expo_export(out, files):
        case Ok(_):
            return out
        case Err(error):
            raise AssertionError(str(error))


# -- the files ------------------------------------------------------------------------


def test_export_copies_sql_and_journal_byte_for_byte(tmp_path: Path) -> None:
    out = export(tmp_path / "drizzle")
    migrations = bundled_migrations()
    for m in migrations:
        assert (out / m.filename).read_bytes() == (SOURCE / m.filename).read_bytes()
    assert (out / JOURNAL_PATH).read_bytes() == (SOURCE / JOURNAL_PATH).read_bytes()
    module = (out / "migrations.js").read_text()
    assert module == EXPECTED_MODULE
    imports = re.findall(r"^import (m\d{4}) from '\./(.+)\.sql';$", module, re.M)
    assert imports == [(f"m{m.idx:04d}", m.tag) for m in migrations]
    assert [key for key, _ in imports] == ["m0000", "m0001", "m0002", "m0003"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        [*(m.filename for m in migrations), JOURNAL_PATH, "migrations.js"]
    )


def test_inline_module_needs_no_imports() -> None:
    module = expo_module(bundled_migrations(), inline=True)
    assert not re.search(r"^\s*import\b", module, re.M)
    assert module.isascii()
    assert "export default {\n  journal,\n  migrations: {\n    m0000," in module


def test_a_tag_that_is_no_file_stem_is_refused() -> None:
    (good,) = tricky_set().migrations
    forged = MigrationSet(migrations=(dataclasses.replace(good, tag="0000_x';alert(1);'"),))
    with pytest.raises(ValueError, match="not a file name stem"):
        expo_module(forged)


# -- the writer -----------------------------------------------------------------------


def test_writing_over_a_previous_export_removes_stale_sql(tmp_path: Path) -> None:
    out = export(tmp_path / "drizzle")
    (out / "0009_gone.sql").write_text("SELECT 1;")
    (out / "meta" / "0000_snapshot.json").write_text("{}")  # drizzle-kit's, left alone
    assert is_previous_export(out)
    files = expo_files(bundled_migrations())
    report = write_expo_export(out, files).unwrap()
    assert report.removed == ("0009_gone.sql",)
    assert report.written[-1] == "migrations.js"
    assert not (out / "0009_gone.sql").exists()
    assert (out / "meta" / "0000_snapshot.json").exists()


def test_a_foreign_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "src"
    out.mkdir()
    (out / "App.tsx").write_text("export default null;")
    files = expo_files(bundled_migrations())
    match write_expo_export(out, files):
        case Err(error):
            assert error.problem is ExportProblem.NOT_EMPTY
            assert "'App.tsx'" in str(error)
            assert "--force" in str(error)
        case Ok(_):
            raise AssertionError("wrote into a folder that is not an export")
    assert sorted(p.name for p in out.iterdir()) == ["App.tsx"]
    report = write_expo_export(out, files, force=True).unwrap()
    assert report.removed == ()
    assert (out / "App.tsx").exists()
    assert (out / "migrations.js").read_text() == EXPECTED_MODULE


def test_a_file_is_no_output_folder(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    match write_expo_export(target, expo_files(bundled_migrations()), force=True):
        case Err(error):
            assert error.problem is ExportProblem.NOT_A_FOLDER
        case Ok(_):
            raise AssertionError("exported into a file")


# -- the command line -----------------------------------------------------------------


def test_cli_exports_and_reexports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "drizzle"
    done = subprocess.run(
        [sys.executable, "-m", "per_user_db", "export", "expo", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert f"exported 4 migrations for Expo to {out}" in done.stdout
    assert (out / "migrations.js").read_text() == EXPECTED_MODULE
    assert main(["export", "expo", str(out), "--json"]) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert document["migrations"] == [m.tag for m in bundled_migrations()]
    assert document["written"][-1] == "migrations.js"


def test_cli_refuses_a_foreign_folder_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "app"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["export", "expo", str(out)]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "refusing to export into" in err
    assert "'notes.txt'" in err
    assert not (out / "migrations.js").exists()
    assert main(["export", "expo", str(out), "--force"]) == EXIT_OK
    assert (out / "migrations.js").exists()


def test_cli_exports_another_folder_and_rejects_a_broken_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "mine"
    shutil.copytree(SOURCE, source)
    journal = json.loads((source / JOURNAL_PATH).read_text())
    journal["entries"] = journal["entries"][:2]
    (source / JOURNAL_PATH).write_text(json.dumps(journal, indent=2))  # no final newline
    for extra in ("0002_check_constraints.sql", "0003_exercise_weight_step.sql"):
        (source / extra).unlink()
    out = tmp_path / "out"
    assert main(["export", "expo", str(out), "--migrations", str(source)]) == EXIT_OK
    assert (out / JOURNAL_PATH).read_bytes() == (source / JOURNAL_PATH).read_bytes()
    assert sorted(p.name for p in out.glob("*.sql")) == [
        "0000_initial_schema.sql",
        "0001_exercise_default_weight_unit.sql",
    ]
    (source / "0001_exercise_default_weight_unit.sql").unlink()
    capsys.readouterr()
    assert main(["export", "expo", str(out), "--migrations", str(source)]) == EXIT_USAGE
    assert "0001_exercise_default_weight_unit.sql" in capsys.readouterr().err


# -- Node: import and apply -----------------------------------------------------------


def need_node() -> str:
    missing = [p for p in NPM_PACKAGES if not (JS / "node_modules" / p).is_dir()]
    if NODE is None:
        pytest.skip("node is not on PATH; run `bash .ci/install-interop` with Node >= 20")
    if missing:
        pytest.skip(f"npm {', '.join(missing)} not installed; run `bash .ci/install-interop`")
    return NODE


def run_node(script: str, *args: str) -> dict[str, Any]:
    node = need_node()
    done = subprocess.run(
        [node, "--import", "./expo/register.mjs", f"./expo/{script}", *args],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def tricky_set() -> MigrationSet:
    # Everything a JavaScript string literal can trip on; the SQL need not be valid.
    sql = (
        '-- it\'s "quoted", `templated` ${not} \\ back\\slashed */ </script>\n'
        "SELECT '\u2028\u2029 \u00e9 \U0001f600 \t\r\n\x00';"
    )
    journal = json.dumps(
        {
            "version": "7",
            "dialect": "sqlite",
            "entries": [
                {"idx": 0, "version": "6", "when": 1, "tag": "0000_x", "breakpoints": True}
            ],
        }
    )
    return parse_migrations(journal, {"0000_x.sql": sql})


@pytest.mark.interop
@pytest.mark.parametrize("inline", [False, True], ids=["imports", "inline"])
def test_node_imports_the_export(tmp_path: Path, inline: bool) -> None:
    need_node()
    out = export(tmp_path / "drizzle", inline=inline)
    seen = run_node("import_export.mjs", str(out))
    migrations = bundled_migrations()
    assert seen["topLevelKeys"] == ["journal", "migrations"]
    assert seen["keys"] == ["m0000", "m0001", "m0002", "m0003"]
    for m in migrations:
        assert seen["migrations"][f"m{m.idx:04d}"] == (SOURCE / m.filename).read_text()
    assert seen["journal"] == json.loads((SOURCE / JOURNAL_PATH).read_text())


@pytest.mark.interop
@pytest.mark.parametrize("inline", [False, True], ids=["imports", "inline"])
def test_node_reads_awkward_sql_unchanged(tmp_path: Path, inline: bool) -> None:
    need_node()
    awkward = tricky_set()
    out = export(tmp_path / "drizzle", inline=inline, migrations=awkward)
    seen = run_node("import_export.mjs", str(out))
    assert seen["migrations"] == {"m0000": awkward.migrations[0].sql}


def files_of(database: Path) -> dict[str, bytes]:
    """The database file and its -wal/-shm/-journal companions, byte for byte."""
    return {p.name: p.read_bytes() for p in database.parent.glob(f"{database.name}*")}


def schema_of(path: Path) -> dict[str, Any]:
    """Every table's columns, foreign keys and indexes, and every object's SQL."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        objects = db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name != '__drizzle_migrations' ORDER BY type, name"
        ).fetchall()
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        per_table = {
            table: {
                pragma: db.execute(f"PRAGMA {pragma}('{table}')").fetchall()
                for pragma in ("table_xinfo", "foreign_key_list", "index_list")
            }
            for table in tables
        }
    checks = sorted(
        re.findall(
            r'CONSTRAINT "([^"]+)" (CHECK\(.*?\))(?:,|\n)', "\n".join(r[3] or "" for r in objects)
        )
    )
    return {"objects": objects, "tables": per_table, "checks": checks}


@pytest.mark.interop
@pytest.mark.parametrize("inline", [False, True], ids=["imports", "inline"])
async def test_drizzles_expo_migrator_builds_our_schema(tmp_path: Path, inline: bool) -> None:
    need_node()
    out = export(tmp_path / "drizzle", inline=inline)
    phone = tmp_path / "phone.db"
    applied = await anyio.to_thread.run_sync(run_node, "apply_export.mjs", str(out), str(phone))

    migrations = bundled_migrations()
    assert applied["rows"] == [{"id": None, "hash": "", "created_at": m.when} for m in migrations]

    server = tmp_path / "server.db"
    async with (await connect(f"file:{server}")).unwrap():
        pass
    ours, theirs = schema_of(server), schema_of(phone)
    assert theirs["checks"], "the bundled schema has CHECK constraints to compare"
    assert theirs == ours

    # Our migrator takes the phone's rows (empty hashes) as applied, and writes nothing.
    before = await anyio.to_thread.run_sync(files_of, phone)
    async with (await connect(f"file:{phone}")).unwrap() as db:
        status = (await migration_status(db, migrations)).unwrap()
    assert status.up_to_date
    assert [m.tag for m in status.applied] == [m.tag for m in migrations]
    after = await anyio.to_thread.run_sync(files_of, phone)
    assert after == before
