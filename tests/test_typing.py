"""What an app's ``mypy --strict`` sees of this package, installed from its wheel.

libsql-client ships no ``py.typed``; the wheel carries stubs for it as the stub-only
package ``libsql_client-stubs``. These tests build the real wheel (a few seconds), unpack
it into a folder that stands for an app's site-packages, and run mypy on a small app
whose configuration is ``strict = true`` and nothing else: every ``assert_type`` in it
must hold, the mistakes in it must be reported, and without the stubs the same app must
fail. Separately, mypy's stubtest compares the stubs with libsql-client at run time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUBS = "libsql_client-stubs"

APP = '''\
"""An app as a user writes it: only per_user_db, and libsql_client's types to name them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, NotRequired, TypedDict, assert_type

from libsql_client import ResultSet, Row, Value

from per_user_db import (
    Database,
    DatabaseError,
    DatabaseTransaction,
    Err,
    Ok,
    open_database,
)


@dataclass(frozen=True, kw_only=True)
class Program:
    id: int
    name: str


class ProgramRow(NamedTuple):
    id: int
    name: str


class ProgramDict(TypedDict):
    id: int
    name: str
    notes: NotRequired[str | None]


async def use(db: Database) -> None:
    async with db as same:
        assert_type(same, Database)
    rs = await db.execute("SELECT id, name FROM programs WHERE id = ?", [1])
    assert_type(rs, ResultSet)
    assert_type(rs.rows, list[Row])
    assert_type(rs[0], Row)
    assert_type(rs[0][0], Value)
    assert_type(rs[0]["name"], str | int | float | bytes | None)
    assert_type(rs[0][1:], tuple[Value, ...])
    assert_type(rs[0].asdict(), dict[str, Value])
    assert_type(rs[0].astuple(), tuple[Value, ...])
    assert_type(rs[:1], list[Row])
    assert_type(rs.columns, tuple[str, ...])
    assert_type(rs.rows_affected, int)
    assert_type(rs.last_insert_rowid, int | None)
    assert_type(len(rs), int)
    for row in rs:
        assert_type(row, Row)
        for value in row:
            assert_type(value, Value)
    named = await db.execute("SELECT :id", {"id": 1})
    assert_type(named, ResultSet)

    results = await db.batch(["DELETE FROM programs", ("INSERT INTO programs VALUES (?)", [1])])
    assert_type(results, list[ResultSet])

    async with db.transaction() as tx:
        assert_type(tx, DatabaseTransaction)
        assert_type(await tx.execute("SELECT 1"), ResultSet)
        in_tx = await tx.fetch("SELECT id, name FROM programs", into=Program)
        assert_type(in_tx, list[Program])
        await tx.commit()

    programs = await db.fetch("SELECT id, name FROM programs", into=Program)
    assert_type(programs, list[Program])
    assert_type(programs[0].name, str)
    rows = await db.fetch("SELECT id, name FROM programs WHERE id = ?", [1], into=ProgramRow)
    assert_type(rows, list[ProgramRow])
    assert_type(rows[0].id, int)
    dicts = await db.fetch("SELECT id, name FROM programs", into=ProgramDict)
    assert_type(dicts, list[ProgramDict])
    assert_type(dicts[0]["name"], str)

    try:
        await db.execute("INSERT INTO programs (id) VALUES (1)")
    except DatabaseError as error:
        assert_type(error.code, str)
        assert_type(error.explanation, str)
        assert_type(error.status, int | None)


async def main(url: str) -> None:
    match await open_database(url):
        case Ok(db):
            assert_type(db, Database)
            await use(db)
        case Err(error):
            print(error)
    db = (await open_database(url)).unwrap()
    assert_type(db, Database)
    await db.close()
    assert_type(db.closed, bool)
'''

# Each line marked `# expect: CODE` must be reported with that error code, and nothing
# else in this file: the types are precise enough to catch these mistakes.
MISTAKES = """\
from __future__ import annotations

from app import Program, ProgramRow

from per_user_db import Database


async def mistakes(db: Database) -> None:
    await db.execute(42)  # expect: arg-type
    await db.execute("SELECT ?", {1, 2})  # expect: arg-type
    rs = await db.execute("SELECT name FROM programs")
    name: str = rs[0]["name"]  # expect: assignment
    rs.rows_affected = 2  # expect: misc
    await db.fetch("SELECT id, name FROM programs")  # expect: call-arg
    wrong: list[ProgramRow] = await db.fetch("SELECT 1", into=Program)  # expect: arg-type
    async with db.transaction() as tx:
        await tx.execute(b"SELECT 1")  # expect: arg-type
    print(name, wrong)
"""

MYPY_CONFIG = """\
[tool.mypy]
strict = true
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    site: Path
    """The unpacked wheel: what installing it puts into an app's site-packages."""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    folder = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(folder), "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = folder.glob("per_user_db-*.whl")
    site = folder / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return Installed(wheel=wheel, site=site)


def run_mypy(
    project: Path, site: Path, cache: Path, *, python: Path | None = None
) -> tuple[int, str]:
    """``python -m mypy`` in ``project`` as the app's own run: the app's config only, the
    site-packages of ``python`` (default: this venv) with ``site`` (the unpacked wheel)
    ahead of them, as installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    executable = ["--python-executable", str(python)] if python is not None else []
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            *executable,
            "--cache-dir",
            str(cache),
            "app.py",
            "mistakes.py",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return ran.returncode, ran.stdout + ran.stderr


def write_project(folder: Path) -> Path:
    folder.mkdir()
    (folder / "pyproject.toml").write_text(MYPY_CONFIG)
    (folder / "app.py").write_text(APP)
    (folder / "mistakes.py").write_text(MISTAKES)
    return folder


def errors_by_file(output: str) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for match in re.finditer(r"^(\S+\.py):(\d+): error: .*\[([a-z-]+)\]$", output, re.M):
        found.setdefault(match[1], []).append((int(match[2]), match[3]))
    return found


def expected_mistakes() -> list[tuple[int, str]]:
    return [
        (number, match[1])
        for number, line in enumerate(MISTAKES.splitlines(), start=1)
        if (match := re.search(r"# expect: ([a-z-]+)$", line))
    ]


def test_the_wheel_installs_the_stubs_as_a_stub_only_package(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        stubs = sorted(n for n in archive.namelist() if n.startswith(f"{STUBS}/"))
        shadowing = [n for n in archive.namelist() if n.startswith("libsql_client/")]
    assert stubs == [
        f"{STUBS}/__init__.pyi",
        f"{STUBS}/client.pyi",
        f"{STUBS}/create_client.pyi",
        f"{STUBS}/result.pyi",
        f"{STUBS}/sync.pyi",
    ]
    assert shadowing == []  # never a package that would hide libsql-client at run time


def test_an_app_type_checks_under_strict_mypy_with_no_overrides(
    installed: Installed, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "app")
    cache = tmp_path / "mypy-cache"
    returncode, output = run_mypy(project, installed.site, cache)
    errors = errors_by_file(output)
    assert errors.pop("mistakes.py", []) == expected_mistakes(), output
    assert errors == {}, output
    assert returncode == 1, output

    # The same app without the stubs: libsql_client is untyped and every result is Any,
    # so the assert_type checks fail (this is what the stubs are for).
    bare = tmp_path / "site-without-stubs"
    shutil.copytree(installed.site, bare, ignore=shutil.ignore_patterns(STUBS))
    returncode, output = run_mypy(
        project, bare, tmp_path / "mypy-cache-bare", python=environment_without_stubs(tmp_path)
    )
    assert returncode == 1, output
    untyped = line_of(APP, "from libsql_client import ResultSet, Row, Value")
    assert f'app.py:{untyped}: error: Skipping analyzing "libsql_client": module is ' in output
    for check, expected in [
        ("assert_type(same, Database)", "Database"),
        ("assert_type(rs.rows_affected, int)", "int"),
        ("assert_type(rs.columns, tuple[str, ...])", "tuple[str, ...]"),
        ("assert_type(error.code, str)", "str"),
    ]:
        line = line_of(APP, check)
        assert f'app.py:{line}: error: Expression is of type "Any", not "{expected}"' in output


def environment_without_stubs(tmp_path: Path) -> Path:
    """A Python whose site-packages is this venv's without the stubs: an installed
    (editable or not) per-user-db puts them there, and the point is an app without them."""
    venv = tmp_path / "venv-without-stubs"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
    )
    python = venv / "bin" / "python"
    ours = Path(sysconfig.get_paths()["purelib"])
    theirs = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
    )
    for entry in ours.iterdir():
        if entry.name != STUBS and not (theirs / entry.name).exists():
            (theirs / entry.name).symlink_to(entry)
    return python


def line_of(text: str, code: str) -> int:
    (number,) = [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == code]
    return number


def test_the_stubs_match_libsql_client_at_run_time(tmp_path: Path) -> None:
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text(
        textwrap.dedent(
            """\
            # not stubbed: the DB-API layer, the transports, URL parsing
            libsql_client\\.(config|dbapi2|hrana|http|sqlite3_utils)(\\..*)?
            # type variables of the runtime's own annotations
            libsql_client\\.client\\.(TClient|TTransaction)
            libsql_client\\.sync\\.T
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MYPYPATH"] = str(ROOT / "stubs")
    checked = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--allowlist", str(allowlist), "libsql_client"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
