"""Transport benchmark, side by side with the peers in one run: prints numbers, asserts
nothing.

    python -m bench.transports [--seconds 2] [--dir /dev/shm]

The protocol server runs in its own process (``bench._serve``), so its CPU is not the
client's. Each row is one workload; the peer is measured in the same run, on the same
server and files, and the ratio says how we compare (above 1: we are faster):

* ``SELECT 1`` round trips per second over loopback HTTP: ``Database.execute`` against a
  bare aiohttp POST of the very bytes it sends (no encoding, no decoding), and against
  PyPI ``libsql`` (Turso's Rust client, synchronous);
* fetching 10,000 rows of 5 mixed columns (integer, text, real, blob, NULL or integer):
  against PyPI ``libsql`` and libsql-client over WebSocket;
* local file, INSERT then SELECT by key, pairs per second: against aiosqlite and plain
  synchronous ``sqlite3`` (files in ``--dir``: a tmpfs by default, so the disk's fsync
  does not hide the client's cost);
* how long a ~1 s query stalls the event loop: against libsql-client's ``file:``;
* what ``PRAGMA foreign_keys = ON`` at the start of every pipeline costs the server, the
  request it would add to every call had we kept it.

A peer that is not installed is reported as missing (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import libsql_client

from bench._serve import server_process
from bench._stall import max_stall, rows_for, slow_query_sql
from per_user_db import open_database
from per_user_db.core._hrana import CloseRequest, ExecuteRequest, Stmt, encode_pipeline_request

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

TEN_K = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) "
    "SELECT x, 'row ' || x, x * 0.5, randomblob(16), CASE WHEN x % 3 THEN x END FROM c"
)
PAIR_SECONDS = 3.0  # each of the three, taking turns


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


SLICES = 10


async def rates(
    seconds: float, calls: dict[str, Callable[[], Awaitable[object]]]
) -> dict[str, float]:
    """Calls per second of each of ``calls``, run back to back, taking turns in short
    slices for ``seconds`` each, so that a change in the machine's load during the run
    falls on all of them alike."""
    for call in calls.values():
        for _ in range(20):
            await call()  # warm up: connections, caches
    counts = dict.fromkeys(calls, 0)
    spent = dict.fromkeys(calls, 0.0)
    cpu = dict.fromkeys(calls, 0.0)
    for _ in range(SLICES):
        for name, call in calls.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            while time.perf_counter() - started < seconds / SLICES:
                await call()
                counts[name] += 1
            spent[name] += time.perf_counter() - started
            cpu[name] += time.process_time() - cpu_started
    LAST_CPU_US.clear()
    LAST_CPU_US.update({name: cpu[name] / counts[name] * 1e6 for name in calls})
    return {name: counts[name] / spent[name] for name in calls}


LAST_CPU_US: dict[str, float] = {}
"""Client CPU per call (µs) of the last :func:`rates` run: the client's own cost, which
the machine's load does not blur the way wall time is blurred."""


def sync_slices(seconds: float, call: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    """A synchronous client as one of :func:`rates`' calls: each await runs a batch of
    calls on a thread, so its slices interleave with the others'."""
    batch = 50

    def run() -> None:
        for _ in range(batch):
            call()

    async def calls() -> None:
        await anyio.to_thread.run_sync(run)

    return calls


async def fetch_costs(
    calls: dict[str, Callable[[], Awaitable[object]]], repeat: int = 7
) -> dict[str, tuple[float, float]]:
    """Per call: the median wall time and the median CPU time of this process (the client;
    the server runs in another one), in ms, the calls taking turns."""
    walls: dict[str, list[float]] = {name: [] for name in calls}
    cpus: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        await call()  # warm up
    for _ in range(repeat):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            await call()
            walls[name].append((time.perf_counter() - wall) * 1000)
            cpus[name].append((time.process_time() - cpu) * 1000)
    return {n: (statistics.median(walls[n]), statistics.median(cpus[n])) for n in calls}


class Table:
    def __init__(self) -> None:
        print(f"{'workload':<44} {'per-user-db':>12}  {'peer':<30} {'peer value':>11} {'ratio':>6}")

    def row(
        self, workload: str, ours: float, peer: str, theirs: float | None, *, higher: bool
    ) -> None:
        if theirs is None:
            print(f"{workload:<44} {ours:>12,.1f}  {peer:<30} {'missing':>11} {'':>6}")
            return
        ratio = ours / theirs if higher else theirs / ours
        print(f"{workload:<44} {ours:>12,.1f}  {peer:<30} {theirs:>11,.1f} {ratio:>6.2f}")


async def http_rows(table: Table, base: str, seconds: float) -> None:
    url = f"{base}/db/bench"
    db = (await open_database(url)).unwrap()
    body = encode_pipeline_request(
        None, [ExecuteRequest(stmt=Stmt(sql="SELECT 1")), CloseRequest()]
    )
    async with aiohttp.ClientSession() as session:

        async def bare() -> None:
            async with session.post(
                f"{url}/v3/pipeline", data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()

        libsql: Any = None
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "ours": lambda: db.execute("SELECT 1"),
            "bare": bare,
        }
        if have("libsql"):
            libsql = importlib.import_module("libsql").connect(database=url)
            peer_call = sync_slices(seconds, lambda: libsql.execute("SELECT 1").fetchall())
            calls["libsql"] = peer_call
        measured = await rates(seconds, calls)
        ours, theirs = measured["ours"], measured["bare"]
        cpu = dict(LAST_CPU_US)
        table.row(
            "SELECT 1 over HTTP, round trips/s", ours, "bare aiohttp POST", theirs, higher=True
        )
        table.row(
            "  the same, client CPU us/call", cpu["ours"], "bare aiohttp POST", cpu["bare"],
            higher=False,
        )  # fmt: skip
        if "libsql" in measured:
            measured["libsql"] *= 50  # each of its calls was a batch of 50
        table.row("", ours, "PyPI libsql (Rust, sync)", measured.get("libsql"), higher=True)

        ws = libsql_client.create_client(url.replace("http://", "ws://"))
        fetches: dict[str, Callable[[], Awaitable[object]]] = {
            "ours": lambda: db.execute(TEN_K),
            "ws": lambda: ws.execute(TEN_K),
        }
        if libsql is not None:
            fetches["libsql"] = lambda: anyio.to_thread.run_sync(
                lambda: libsql.execute(TEN_K).fetchall()
            )
        async with ws:
            costs = await fetch_costs(fetches)
        (ours_ms, ours_cpu), peer = costs["ours"], costs.get("libsql")
        table.row(
            "fetch 10k rows x 5 columns, ms", ours_ms, "PyPI libsql",
            None if peer is None else peer[0], higher=False,
        )  # fmt: skip
        table.row(
            "  the same, client CPU ms", ours_cpu, "PyPI libsql",
            None if peer is None else peer[1], higher=False,
        )  # fmt: skip
        table.row("", ours_ms, "libsql-client over ws", costs["ws"][0], higher=False)

        # The server's cost of the PRAGMA that used to lead every pipeline.
        pragma = ExecuteRequest(stmt=Stmt(sql="PRAGMA foreign_keys = ON", want_rows=False))
        with_pragma = encode_pipeline_request(
            None, [pragma, ExecuteRequest(stmt=Stmt(sql="SELECT 1")), CloseRequest()]
        )

        async def bare_with_pragma() -> None:
            async with session.post(
                f"{url}/v3/pipeline",
                data=with_pragma,
                headers={"Content-Type": "application/json"},
            ) as response:
                await response.read()

        pragmas = await rates(seconds, {"without": bare, "with": bare_with_pragma})
        table.row(
            "bare POST without / with the FK PRAGMA, /s", pragmas["without"], "with the PRAGMA",
            pragmas["with"], higher=True,
        )  # fmt: skip
    await db.close()


async def local_rows(table: Table, folder: Path) -> None:
    create = "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)"
    insert, select = "INSERT INTO kv (k, v) VALUES (?, ?)", "SELECT v FROM kv WHERE k = ?"
    db = (await open_database(f"file:{folder / 'ours.db'}")).unwrap()
    await db.execute(create)
    conn = sqlite3.connect(folder / "sqlite3.db", isolation_level=None)
    conn.execute(create)
    keys = {"ours": 0, "aiosqlite": 0, "sqlite3": 0}

    async def ours_pair() -> None:
        keys["ours"] += 1
        await db.execute(insert, [keys["ours"], "value"])
        await db.execute(select, [keys["ours"]])

    async def plain_pair() -> None:  # synchronous: it blocks the loop while it runs
        keys["sqlite3"] += 1
        conn.execute(insert, (keys["sqlite3"], "value"))
        conn.execute(select, (keys["sqlite3"],)).fetchall()

    pairs: dict[str, Callable[[], Awaitable[object]]] = {"ours": ours_pair, "sqlite3": plain_pair}
    adb: Any = None
    if have("aiosqlite"):
        aiosqlite: Any = importlib.import_module("aiosqlite")
        adb = await aiosqlite.connect(folder / "aiosqlite.db", isolation_level=None)
        await adb.execute(create)

        async def aiosqlite_pair() -> None:
            keys["aiosqlite"] += 1
            await adb.execute(insert, (keys["aiosqlite"], "value"))
            async with adb.execute(select, (keys["aiosqlite"],)) as cursor:
                await cursor.fetchall()

        pairs["aiosqlite"] = aiosqlite_pair
    try:
        measured = await rates(PAIR_SECONDS, pairs)
    finally:
        await db.close()
        conn.close()
        if adb is not None:
            await adb.close()
    ours = measured["ours"]
    table.row(
        "local INSERT + SELECT, pairs/s", ours, "aiosqlite", measured.get("aiosqlite"),
        higher=True,
    )  # fmt: skip
    table.row("", ours, "sqlite3 (sync, blocks the loop)", measured["sqlite3"], higher=True)

    sql = slow_query_sql(await anyio.to_thread.run_sync(rows_for, 1.0))
    async with (await open_database(f"file:{folder / 'stall.db'}")).unwrap() as slow:
        stall, _ = await max_stall(lambda: slow.execute(sql))
    theirs = libsql_client.create_client(f"file:{folder / 'theirs.db'}")
    async with theirs:
        their_stall, _ = await max_stall(lambda: theirs.execute(sql))
    table.row(
        "loop stall during a ~1 s query, ms", stall * 1000, "libsql-client file:",
        their_stall * 1000, higher=False,
    )  # fmt: skip


async def main(seconds: float, folder: Path | None) -> None:
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        root = Path(tmp)
        (root / "local").mkdir()
        table = Table()
        with server_process(root / "served") as (base, _):
            await http_rows(table, base, seconds)
        await local_rows(table, root / "local")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per rate measurement")
    shm = Path("/dev/shm")
    parser.add_argument(
        "--dir",
        type=Path,
        default=shm if shm.is_dir() else None,
        help="where the benchmark's files go (default: /dev/shm if there is one)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.dir))
