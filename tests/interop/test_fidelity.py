"""Does the local Turso answer the official clients as Turso's server (sqld) does?

Each test drives npm ``@libsql/client`` (``js/fidelity_probe.mjs``, one scenario per
run) or PyPI ``libsql`` against our server and compares what the *client* shows an
application with what sqld makes it show. sqld's side is read from its source
(``libsql-server/src/hrana/stmt.rs``, ``query.rs``, ``connection/libsql.rs``):

* errors are Hrana ``{"message", "code"}``; a SQLite error's code is its *base* code
  (``SQLITE_CONSTRAINT``, never ``SQLITE_CONSTRAINT_UNIQUE``); a parameter without a
  value is ``ARGS_INVALID``; a statement of a transaction that outlived its limit is
  ``TRANSACTION_TIMEOUT``;
* a column's ``decltype`` is the declared type of the table column it reads, null for an
  expression.

What the clients make of it: ``@libsql/client`` 0.18 sets ``LibsqlError.code`` to the
Hrana ``code`` as sent, and leaves ``extendedCode`` and ``rawCode`` undefined for every
remote URL (they are filled only by its local SQLite backend); ``rs.columnTypes`` is each
``decltype`` with null turned into ``""``. PyPI ``libsql`` puts the code into the text of
a ``ValueError`` (``Error { message: "...", code: "..." }``) and has no decltypes at all
(``cursor.description`` carries names only).

``libsql`` keeps the interpreter lock while it waits on the network, so it never runs in
the process of an in-process server: this file is also its own driver script,
``python test_fidelity.py SCENARIO URL [--token T] [--dir D]``, which prints ONE JSON
object as the Node probe does.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import re
import shutil
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from per_user_db.dev import create_protocol_app, protocol_state, serve

if TYPE_CHECKING:
    from per_user_db.dev import ProtocolServerState, ServerAddress

    from ..conftest import LocalTursoServer

pytestmark = pytest.mark.interop

SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
PROBE = HERE / "js" / "fidelity_probe.mjs"
NODE = shutil.which("node")
LIBSQL_CLIENT = HERE / "js" / "node_modules" / "@libsql" / "client"

TRANSACTION_TIMEOUT = 0.3
"""Seconds the server of the timeout tests lets a transaction stay open; short, so that
the tests need not wait sqld's 5 s. Nothing sleeps for it: the other client's write
waits on the transaction's lock (SQLite's busy timeout, 5 s) until the server rolls
the transaction back."""

CONSTRAINT = "SQLITE_CONSTRAINT"


# --- running the clients ---------------------------------------------------------------------


def skip_unless(condition: bool, reason: str) -> None:
    if not condition:
        pytest.skip(f"{reason}; run `bash .ci/install-interop`")


def require_node() -> str:
    skip_unless(NODE is not None and LIBSQL_CLIENT.is_dir(), "npm @libsql/client is not installed")
    assert NODE is not None
    return NODE


def require_libsql() -> None:
    skip_unless(importlib.util.find_spec("libsql") is not None, "PyPI libsql is not installed")


async def _run(command: list[str]) -> dict[str, Any]:
    with anyio.fail_after(60):
        done = await anyio.run_process(command, check=False)
    out, err = done.stdout.decode(), done.stderr.decode()[-3000:]
    assert done.returncode == 0, f"exit {done.returncode}: {out[-3000:]}\n{err}"
    report = json.loads(out)
    assert isinstance(report, dict)
    return report


def _options(token: str | None, directory: Path | None) -> list[str]:
    return [
        *(["--token", token] if token is not None else []),
        *(["--dir", str(directory)] if directory is not None else []),
    ]


async def run_node(
    scenario: str, url: str, *, token: str | None = None, directory: Path | None = None
) -> dict[str, Any]:
    """What @libsql/client observed in ``scenario`` (see js/fidelity_probe.mjs)."""
    node = require_node()
    return await _run([node, str(PROBE), scenario, url, *_options(token, directory)])


async def run_libsql(
    scenario: str, url: str, *, token: str | None = None, directory: Path | None = None
) -> dict[str, Any]:
    """What PyPI libsql observed in ``scenario`` (see LIBSQL_SCENARIOS below)."""
    require_libsql()
    return await _run([sys.executable, str(SCRIPT), scenario, url, *_options(token, directory)])


def error_code(outcome: dict[str, Any]) -> str | None:
    """The code of a failed step as the client exposed it; None if the step succeeded."""
    if outcome["ok"]:
        return None
    code = outcome["error"]["code"]
    assert code is None or isinstance(code, str)
    return code


def codes(report: dict[str, Any], *steps: str) -> dict[str, str | None]:
    return {step: error_code(report[step]) for step in steps}


# --- servers and databases ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One fresh database of a server under test."""

    url: str
    token: str | None
    path: Path

    def rows(self, query: str) -> list[tuple[object, ...]]:
        """The rows of ``query``, read from the file itself, not through the server."""
        with closing(sqlite3.connect(self.path)) as conn:
            rows: list[tuple[object, ...]] = conn.execute(query).fetchall()
            return rows

    def values(self, table: str = "t") -> list[object]:
        return [v for (v,) in self.rows(f"SELECT v FROM {table} ORDER BY rowid")]

    def tables(self) -> list[str]:
        query = "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"
        return [str(name) for (name,) in self.rows(query)]


async def turso_database(turso: LocalTursoServer, name: str, *, read_only: bool = False) -> Target:
    """A new database on the local Turso, with a token minted as its Platform API does."""
    (await turso.turso.create_database(name)).unwrap()
    token = turso.turso.mint_database_token(name, read_only=read_only).unwrap()
    return Target(
        url=turso.address.database_url(name),
        token=token,
        path=turso.turso.protocol.database_path(name),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ShortTimeoutServer:
    """The plain protocol server with a short transaction timeout, in this process."""

    address: ServerAddress
    state: ProtocolServerState

    async def database(self, name: str) -> Target:
        await self.state.create_database(name)
        return Target(
            url=self.address.database_url(name), token=None, path=self.state.database_path(name)
        )

    def ws_url(self, name: str) -> str:
        return f"ws://{self.address.host}:{self.address.port}/db/{name}"


@pytest.fixture
async def short_timeout_server(tmp_path: Path) -> AsyncIterator[ShortTimeoutServer]:
    app = create_protocol_app(tmp_path / "served", transaction_timeout=TRANSACTION_TIMEOUT)
    async with serve(app) as address:
        yield ShortTimeoutServer(address=address, state=protocol_state(app))


# --- 1. rowsAffected of INSERT ... SELECT under WITH ------------------------------------------


async def test_rows_affected_of_insert_with_cte_through_node(turso: LocalTursoServer) -> None:
    db = await turso_database(turso, "rows-node")
    report = await run_node("rows_affected", db.url, token=db.token)
    assert {k: v for k, v in report.items() if k != "values"} == {
        "cte_one": 1,
        "cte_three": 3,
        "values_two": 2,
        "batch_cte_two": 2,
        "transaction_cte_four": 4,
    }
    assert db.values() == list(range(1, 13))


async def test_rows_affected_of_insert_with_cte_through_python(turso: LocalTursoServer) -> None:
    db = await turso_database(turso, "rows-python")
    report = await run_libsql("rows_affected", db.url, token=db.token)
    assert report == {
        "cte_one": 1,
        "cte_three": 3,
        "autocommit_cte_two": 2,
        "values": [1, 2, 3, 4, 5, 6],
    }
    assert db.values() == [1, 2, 3, 4, 5, 6]


# --- 2. a parameter without a value ----------------------------------------------------------


async def test_missing_named_argument_is_an_error_through_node(turso: LocalTursoServer) -> None:
    db = await turso_database(turso, "args-node")
    report = await run_node("missing_named_arg", db.url, token=db.token)
    for step in ("execute", "prefixed", "batch"):
        assert report[step]["ok"] is False, f"{step}: the statement ran, binding NULL"
        assert report[step]["error"]["libsql_error"] is True, report[step]
    assert codes(report, "execute", "prefixed", "batch") == dict.fromkeys(
        ("execute", "prefixed", "batch"), "ARGS_INVALID"
    )
    assert report["rows"] == []
    assert db.rows("SELECT a, b FROM t") == []


async def test_missing_argument_is_an_error_through_python(turso: LocalTursoServer) -> None:
    # libsql refuses a dict of named arguments itself; the nearest it can send is a list
    # that is too short, for ? and for :name parameters alike.
    db = await turso_database(turso, "args-python")
    report = await run_libsql("missing_arg", db.url, token=db.token)
    assert codes(report, "positional", "named") == {
        "positional": "ARGS_INVALID",
        "named": "ARGS_INVALID",
    }
    assert report["rows"] == []
    assert db.rows("SELECT a, b FROM t") == []


# --- 3. constraint violations: the base code ------------------------------------------------


async def test_constraint_violations_have_the_base_code_through_node(
    turso: LocalTursoServer,
) -> None:
    # Expected to fail until the server sends base codes (it sends SQLITE_CONSTRAINT_*).
    db = await turso_database(turso, "constraints-node")
    report = await run_node("constraints", db.url, token=db.token)
    steps = ("primary_key", "unique", "not_null", "check", "foreign_key", "in_batch")
    for step in steps:
        assert report[step]["ok"] is False, f"{step}: the violation was not refused"
    assert report["count"] == 1
    assert codes(report, *steps) == dict.fromkeys(steps, CONSTRAINT), {
        step: report[step]["error"] for step in steps
    }


async def test_constraint_violations_have_the_base_code_through_python(
    turso: LocalTursoServer,
) -> None:
    # Expected to fail until the server sends base codes (it sends SQLITE_CONSTRAINT_*).
    db = await turso_database(turso, "constraints-python")
    report = await run_libsql("constraints", db.url, token=db.token)
    steps = ("primary_key", "unique", "not_null", "check")
    for step in steps:
        assert report[step]["ok"] is False, f"{step}: the violation was not refused"
    assert report["count"] == 1
    assert codes(report, *steps) == dict.fromkeys(steps, CONSTRAINT), {
        step: report[step]["error"] for step in steps
    }


# --- 4. declared column types ----------------------------------------------------------------


async def test_column_types_are_the_declared_types_through_node(
    turso: LocalTursoServer,
) -> None:
    # Expected to fail until the server sends decltype (it sends null for every column).
    # PyPI libsql has no decltypes to compare (cursor.description holds names only).
    db = await turso_database(turso, "decltypes-node")
    report = await run_node("decltypes", db.url, token=db.token)
    assert report["columns"] == ["a", "b", "c", "d", "e", "f", "g"]
    expected = ["INTEGER", "TEXT", "REAL", "BLOB", "NUMERIC", "", ""]
    assert report["columnTypes"] == expected
    assert report["transaction_columnTypes"] == expected


# --- 5. a read-only token cannot write --------------------------------------------------------


def _seed(db: Target) -> None:
    with closing(sqlite3.connect(db.path)) as conn, conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")


async def test_read_only_token_cannot_write_through_node(turso: LocalTursoServer) -> None:
    db = await turso_database(turso, "read-only-node", read_only=True)
    _seed(db)
    report = await run_node("read_only", db.url, token=db.token)
    assert report["read"] == {"ok": True, "value": 1}
    for step in ("insert", "batch", "sequence", "transaction", "ddl"):
        assert report[step]["ok"] is False, f"{step}: a read-only token wrote"
        assert report[step]["error"]["libsql_error"] is True, report[step]
    assert report["values"] == [1]
    assert db.values() == [1]
    assert db.tables() == ["t"]


async def test_read_only_token_cannot_write_through_python(turso: LocalTursoServer) -> None:
    db = await turso_database(turso, "read-only-python", read_only=True)
    _seed(db)
    report = await run_libsql("read_only", db.url, token=db.token)
    assert report["read"] == {"ok": True, "value": 1}
    for step in ("insert", "insert_after_pragma", "commit_after_pragma"):
        assert report[step]["ok"] is False, f"{step}: a read-only token wrote"
    assert report["values"] == [1]
    assert db.values() == [1]


# --- 6. ATTACH and VACUUM INTO ------------------------------------------------------------------


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.fixture
def server_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The in-process server's working directory, where a relative file name would land."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


async def test_attach_and_vacuum_into_are_refused_through_node(
    turso: LocalTursoServer, tmp_path: Path, server_cwd: Path
) -> None:
    db = await turso_database(turso, "attach-node")
    target = tmp_path / "elsewhere"
    target.mkdir()
    report = await run_node("attach", db.url, token=db.token, directory=target)
    steps = ("attach", "attach_in_sequence", "attach_memory", "vacuum_into", "vacuum_into_relative")
    for step in steps:
        assert report[step]["ok"] is False, f"{step} was allowed"
        assert report[step]["error"]["libsql_error"] is True, report[step]
    assert report["values"] == [1]
    assert files_in(target) == []
    assert files_in(server_cwd) == []


async def test_attach_and_vacuum_into_are_refused_through_python(
    turso: LocalTursoServer, tmp_path: Path, server_cwd: Path
) -> None:
    db = await turso_database(turso, "attach-python")
    target = tmp_path / "elsewhere"
    target.mkdir()
    report = await run_libsql("attach", db.url, token=db.token, directory=target)
    for step in ("attach", "vacuum_into", "vacuum_into_relative"):
        assert report[step]["ok"] is False, f"{step} was allowed"
    assert report["values"] == [1]
    assert files_in(target) == []
    assert files_in(server_cwd) == []


# --- 7. one file served at the root (per-user-db dev --db FILE) ---------------------------------


@pytest.fixture
async def root_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """``per-user-db dev --db FILE --port 0`` in a child process: (its URL, FILE)."""
    path = tmp_path / "app.db"
    process = await anyio.open_process(
        [sys.executable, "-m", "per_user_db", "dev", "--db", str(path), "--port", "0"],
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        lines = BufferedByteReceiveStream(process.stdout)
        with anyio.fail_after(20):
            first = (await lines.receive_until(b"\n", 4096)).decode()
        match = re.fullmatch(r"serving (.+) at (http://127\.0\.0\.1:\d+)/", first.strip())
        assert match is not None, first
        yield match.group(2), path
    finally:
        # SIGINT: the command's clean stop, which closes its connections.
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(20):
            await process.wait()
        await process.aclose()


async def test_root_database_through_node(root_server: tuple[str, Path]) -> None:
    url, path = root_server
    report = await run_node("root", url)
    assert report["seen_before_rollback"] == [
        "execute",
        "batch 1",
        "batch 2",
        "committed",
        "rolled back",
    ]
    assert report["values"] == ["execute", "batch 1", "batch 2", "committed"]
    assert report["insert_rows_affected"] == 1
    assert Target(url=url, token=None, path=path).values() == report["values"]


async def test_root_database_through_python(root_server: tuple[str, Path]) -> None:
    url, path = root_server
    report = await run_libsql("root", url)
    assert report == {"values": ["libsql"]}
    assert Target(url=url, token=None, path=path).values() == ["libsql"]


# --- 8, 9. a transaction held open too long ---------------------------------------------------


def assert_timed_out(report: dict[str, Any]) -> None:
    assert report["other_write"] == {"ok": True, "value": 1}, "the held lock was not released"
    assert error_code(report["next_statement"]) == "TRANSACTION_TIMEOUT", report
    assert report["values"] == ["other"]


async def test_transaction_timeout_over_http_through_node(
    short_timeout_server: ShortTimeoutServer,
) -> None:
    db = await short_timeout_server.database("timeout-node")
    report = await run_node("transaction_timeout", db.url)
    assert_timed_out(report)
    assert db.values() == ["other"]


async def test_transaction_timeout_over_websocket_through_node(
    short_timeout_server: ShortTimeoutServer,
) -> None:
    db = await short_timeout_server.database("timeout-ws")
    report = await run_node("transaction_timeout", short_timeout_server.ws_url("timeout-ws"))
    assert_timed_out(report)
    # The stream lives on after the timeout: the COMMIT runs outside any transaction,
    # and fails with plain SQLITE_ERROR, which sqld reports as SQLITE_UNKNOWN
    # (libsql-server/src/hrana/stmt.rs, sqlite_error_code).
    assert error_code(report["commit"]) == "SQLITE_UNKNOWN"
    assert db.values() == ["other"]


async def test_transaction_timeout_through_python(
    short_timeout_server: ShortTimeoutServer,
) -> None:
    db = await short_timeout_server.database("timeout-python")
    report = await run_libsql("transaction_timeout", db.url)
    assert_timed_out(report)
    assert db.values() == ["other"]


# --- the PyPI libsql driver (run as a script, in its own process) -----------------------------

_HRANA_CODE = re.compile(r'code: "([A-Z0-9_]+)"')


def _attempt(step: Callable[[], object]) -> dict[str, Any]:
    try:
        return {"ok": True, "value": step()}
    except Exception as exc:
        found = _HRANA_CODE.search(str(exc))
        return {
            "ok": False,
            "error": {
                "type": type(exc).__name__,
                "code": found.group(1) if found else None,
                "message": str(exc),
            },
        }


def _values(conn: Any, table: str = "t") -> list[object]:
    return [v for (v,) in conn.execute(f"SELECT v FROM {table} ORDER BY rowid").fetchall()]


def _libsql_rows_affected(connect: Callable[..., Any], _: argparse.Namespace) -> dict[str, Any]:
    conn = connect()  # isolation_level DEFERRED, as sqlite3: DML opens a transaction
    conn.execute("CREATE TABLE t (v INTEGER)")
    one = conn.execute("WITH x AS (SELECT 1 AS v) INSERT INTO t SELECT v FROM x").rowcount
    three = conn.execute(
        "WITH x(v) AS (VALUES (2), (3), (4)) INSERT INTO t SELECT v FROM x"
    ).rowcount
    conn.commit()
    auto = connect(isolation_level=None)
    two = auto.execute("WITH x(v) AS (VALUES (5), (6)) INSERT INTO t SELECT v FROM x").rowcount
    return {
        "cte_one": one,
        "cte_three": three,
        "autocommit_cte_two": two,
        "values": _values(auto),
    }


def _libsql_missing_arg(connect: Callable[..., Any], _: argparse.Namespace) -> dict[str, Any]:
    conn = connect(isolation_level=None)
    conn.execute("CREATE TABLE t (a, b)")
    return {
        "positional": _attempt(lambda: conn.execute("INSERT INTO t VALUES (?, ?)", (1,))),
        "named": _attempt(lambda: conn.execute("INSERT INTO t VALUES (:a, :b)", (1,))),
        "rows": [list(r) for r in conn.execute("SELECT a, b FROM t").fetchall()],
    }


def _libsql_constraints(connect: Callable[..., Any], _: argparse.Namespace) -> dict[str, Any]:
    conn = connect(isolation_level=None)
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT UNIQUE, n TEXT NOT NULL,"
        " c INTEGER CHECK (c > 0))"
    )
    conn.execute("INSERT INTO t VALUES (1, 'x', 'n', 1)")

    def insert(values: str) -> Callable[[], object]:
        return lambda: conn.execute(f"INSERT INTO t VALUES {values}")

    return {
        "primary_key": _attempt(insert("(1, 'y', 'n', 1)")),
        "unique": _attempt(insert("(2, 'x', 'n', 1)")),
        "not_null": _attempt(insert("(3, 'z', NULL, 1)")),
        "check": _attempt(insert("(4, 'w', 'n', 0)")),
        "count": conn.execute("SELECT count(*) FROM t").fetchall()[0][0],
    }


def _libsql_read_only(connect: Callable[..., Any], _: argparse.Namespace) -> dict[str, Any]:
    auto = connect(isolation_level=None)
    read = _attempt(lambda: len(_values(auto)))
    insert = _attempt(lambda: auto.execute("INSERT INTO t VALUES (100)"))
    # One stream throughout: the default mode keeps it while a transaction is open.
    held = connect()
    pragma = _attempt(lambda: held.execute("PRAGMA query_only = OFF"))
    insert_after_pragma = _attempt(lambda: held.execute("INSERT INTO t VALUES (101)"))

    def insert_and_commit() -> None:
        held.execute("INSERT INTO t VALUES (102)")
        held.commit()

    commit_after_pragma = _attempt(insert_and_commit)
    # executescript does not raise a step's error; the table below tells.
    script = _attempt(
        lambda: auto.executescript("PRAGMA query_only = OFF; INSERT INTO t VALUES (103);")
    )
    return {
        "read": read,
        "insert": insert,
        "pragma": pragma,
        "insert_after_pragma": insert_after_pragma,
        "commit_after_pragma": commit_after_pragma,
        "script": script,
        "values": _values(auto),
    }


def _libsql_attach(connect: Callable[..., Any], options: argparse.Namespace) -> dict[str, Any]:
    conn = connect(isolation_level=None)
    conn.execute("CREATE TABLE t (v)")
    conn.execute("INSERT INTO t VALUES (1)")
    directory = options.dir
    return {
        "attach": _attempt(
            lambda: conn.execute(f"ATTACH DATABASE '{directory}/attached.db' AS other")
        ),
        "vacuum_into": _attempt(lambda: conn.execute(f"VACUUM INTO '{directory}/vacuumed.db'")),
        "vacuum_into_relative": _attempt(lambda: conn.execute("VACUUM INTO 'relative.db'")),
        "values": _values(conn),
    }


def _libsql_root(connect: Callable[..., Any], _: argparse.Namespace) -> dict[str, Any]:
    conn = connect()
    conn.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
    conn.execute("INSERT INTO t VALUES (?)", ("libsql",))
    conn.commit()
    conn.execute("INSERT INTO t VALUES (?)", ("libsql rolled back",))
    conn.rollback()
    return {"values": _values(conn)}


def _libsql_transaction_timeout(
    connect: Callable[..., Any], _: argparse.Namespace
) -> dict[str, Any]:
    other = connect(isolation_level=None)
    other.execute("CREATE TABLE t (v TEXT)")
    held = connect()
    held.execute("INSERT INTO t VALUES ('held')")  # opens the transaction, keeps the stream
    # Waits on the held lock (SQLite's busy timeout) until the server rolls it back.
    other_write = _attempt(lambda: other.execute("INSERT INTO t VALUES ('other')").rowcount)
    next_statement = _attempt(lambda: held.execute("INSERT INTO t VALUES ('after')"))
    commit = _attempt(held.commit)
    return {
        "other_write": other_write,
        "next_statement": next_statement,
        "commit": commit,
        "values": _values(other),
    }


LIBSQL_SCENARIOS: dict[str, Callable[[Callable[..., Any], argparse.Namespace], dict[str, Any]]] = {
    "rows_affected": _libsql_rows_affected,
    "missing_arg": _libsql_missing_arg,
    "constraints": _libsql_constraints,
    "read_only": _libsql_read_only,
    "attach": _libsql_attach,
    "root": _libsql_root,
    "transaction_timeout": _libsql_transaction_timeout,
}


def _libsql_main() -> int:
    parser = argparse.ArgumentParser(description="run one scenario through PyPI libsql")
    parser.add_argument("scenario", choices=sorted(LIBSQL_SCENARIOS))
    parser.add_argument("url")
    parser.add_argument("--token", default="")
    parser.add_argument("--dir")
    options = parser.parse_args()
    # Imported by name: libsql ships no type information.
    libsql: Any = importlib.import_module("libsql")
    connect = partial(libsql.connect, options.url, auth_token=options.token)
    report = LIBSQL_SCENARIOS[options.scenario](connect, options)
    print(json.dumps(report, default=repr))  # a cursor, say, where a step succeeded
    return 0


if __name__ == "__main__":
    sys.exit(_libsql_main())
