"""The local Turso's SQL engine, ``sqlite3`` against APSW: prints numbers, asserts nothing.

    python -m bench.engine [--seconds 2] [--dir /dev/shm]

The server's per-request work on one connection, with no HTTP and no thread hand-off:
the statement functions on Python's ``sqlite3`` (``per_user_db._transports._hrana_sqlite``,
which the server ran before APSW) beside the APSW ones (``per_user_db.dev._engine``),
each connection under the guard's authorizer. Rows, in microseconds per operation
(lower is better), and the ratio ``sqlite3 / APSW`` (above 1: APSW is faster):

* ``execute_stmt`` of ``SELECT 1``;
* ``execute_stmt`` of an INSERT with three arguments (autocommit, WAL, a file in ``--dir``);
* ``execute_stmt`` fetching 10,000 rows of three columns (integer, text, real);
* a one-shot pipeline, what a client sends for a plain query: ``execute`` ``SELECT 1`` and
  ``close``, then the reset that lets the connection serve the next request;
* opening a guarded connection to the file and closing it.

Each engine has its own copy of the database file (in ``--dir``).

The two engines take turns in short slices, so a change in the machine's load falls on
both alike; each figure is the median over the slices.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from per_user_db._transports import _hrana_sqlite, _sqlite
from per_user_db.core._hrana import CloseRequest, ExecuteRequest, Stmt
from per_user_db.dev import _engine
from per_user_db.dev._guard import _authorizer

if TYPE_CHECKING:
    from collections.abc import Callable

    from per_user_db.core._hrana import StreamRequest, StreamResult

SLICES = 20
TEN_K_ROWS = 10_000
ONE_SHOT: tuple[StreamRequest, ...] = (ExecuteRequest(stmt=Stmt(sql="SELECT 1")), CloseRequest())


def open_sqlite3(path: Path) -> sqlite3.Connection:
    """A connection as the server opened it on ``sqlite3``: its connect, then its guard."""
    conn = _sqlite._connect(str(path), read_only=False, busy_timeout=5.0, create=False)
    conn.set_authorizer(_authorizer(False))
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    return conn


def open_apsw(path: Path) -> apsw.Connection:
    """The same on APSW, with the same authorizer (the guard's decisions)."""
    conn = _engine.connect(str(path), read_only=False, busy_timeout=5.0, create=False)
    conn.set_authorizer(_authorizer(False))
    conn.limit(apsw.SQLITE_LIMIT_ATTACHED, 0)
    return conn


def sqlite3_run_and_reset(
    conn: sqlite3.Connection, requests: tuple[StreamRequest, ...]
) -> tuple[tuple[StreamResult, ...], bool]:
    """The server's one-shot job as it was on ``sqlite3``."""
    ran = _hrana_sqlite.run_stream_requests(conn, requests, {}, version=3)
    if conn.in_transaction:
        conn.rollback()
    conn.execute("PRAGMA foreign_keys = ON")
    (temporary,) = conn.execute("SELECT count(*) FROM temp.sqlite_master").fetchone()
    return ran, temporary == 0


def per_op_us(seconds: float, ops: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Microseconds per call of each of ``ops``: the median over slices that take turns."""
    for op in ops.values():
        for _ in range(3):
            op()  # warm up: caches, compiled statements
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(SLICES):
        for name, op in ops.items():
            calls = 0
            started = time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds / SLICES:
                op()
                calls += 1
            samples[name].append(elapsed / calls * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def row(workload: str, measured: dict[str, float]) -> None:
    old, new = measured["sqlite3"], measured["apsw"]
    print(f"{workload:<46} {old:>12,.1f} {new:>12,.1f} {old / new:>7.2f}")


def main(seconds: float, folder: Path | None) -> None:
    print(
        f"sqlite3 {sqlite3.sqlite_version} (Python's), APSW {apsw.apsw_version()} "
        f"(SQLite {apsw.sqlite_lib_version()})"
    )
    print(f"{'workload, us per operation':<46} {'sqlite3':>12} {'APSW':>12} {'ratio':>7}")
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        # A file per engine: two copies of SQLite in one process must never share one.
        old_path, new_path = Path(tmp) / "sqlite3.db", Path(tmp) / "apsw.db"
        for path in (old_path, new_path):
            setup = apsw.Connection(str(path))
            setup.execute("PRAGMA journal_mode = WAL")
            setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL)")
            setup.execute(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) "
                "INSERT INTO t (a, b, c) SELECT x, 'row ' || x, x * 0.5 FROM n",
                (TEN_K_ROWS,),
            )
            setup.execute("CREATE TABLE w (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL)")
            setup.close()
        old, new = open_sqlite3(old_path), open_apsw(new_path)

        def both(stmt: Stmt) -> dict[str, Callable[[], object]]:
            return {
                "sqlite3": lambda: _hrana_sqlite.execute_stmt(old, stmt).unwrap(),
                "apsw": lambda: _engine.execute_stmt(new, stmt).unwrap(),
            }

        row("execute_stmt SELECT 1", per_op_us(seconds, both(Stmt(sql="SELECT 1"))))
        insert = Stmt(sql="INSERT INTO w (a, b, c) VALUES (?, ?, ?)", args=(1, "text", 2.5))
        row("execute_stmt INSERT, 3 arguments", per_op_us(seconds, both(insert)))
        fetch = Stmt(sql="SELECT a, b, c FROM t")
        row("execute_stmt fetching 10k rows x 3 columns", per_op_us(seconds, both(fetch)))
        row(
            "one-shot pipeline: SELECT 1, close, reset",
            per_op_us(
                seconds,
                {
                    "sqlite3": lambda: sqlite3_run_and_reset(old, ONE_SHOT),
                    "apsw": lambda: _engine.run_and_reset(
                        new, ONE_SHOT, version=3, read_only=False
                    ),
                },
            ),
        )
        row(
            "open a guarded connection, close it",
            per_op_us(
                seconds,
                {
                    "sqlite3": lambda: open_sqlite3(old_path).close(),
                    "apsw": lambda: open_apsw(new_path).close(),
                },
            ),
        )
        old.close()
        new.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per workload and engine")
    shm = Path("/dev/shm")
    parser.add_argument(
        "--dir",
        type=Path,
        default=shm if shm.is_dir() else None,
        help="where the benchmark's file goes (default: /dev/shm if there is one)",
    )
    args = parser.parse_args()
    main(args.seconds, args.dir)
