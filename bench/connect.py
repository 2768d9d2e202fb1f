"""migrate-on-connect benchmark, beside its peer: prints numbers, asserts nothing.

    python -m bench.connect [--latency-ms 20] [--count 1000] [--concurrency 50]

The protocol server runs in its own process with ``--latency-ms`` added to every request,
holding one database already at the head of the bundled migrations. Each approach opens
it ``--count`` times, ``--concurrency`` at once, as an app's requests would, and the
server counts the HTTP requests:

* ``connect()``: the version check in one request, on the event loop's shared session,
  and the same with a session of its own per connect (what it did before it shared one);
* ``connect()`` + the request's first query, and ``connect(lazy=True)`` + the same query,
  where the check rides in the query's request;
* drizzle's libsql migrator on ``@libsql/client`` (node, from ``tests/interop/js``), what a
  drizzle app runs to stay migrated;
* the floor: count x requests x latency / concurrency. Where the server's CPU time comes
  close to the wall time, the server, not the client, is what the approach waits for.

Then the time to apply the whole bundled set to a fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import anyio

from bench._serve import cpu_seconds, server_process
from per_user_db import MigrationSet, connect
from per_user_db._bundled import bundled_migrations

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ROOT = Path(__file__).resolve().parents[1]
DRIZZLE = ROOT / "bench" / "js" / "drizzle_connects.mjs"
INTEROP_MODULES = ROOT / "tests" / "interop" / "js" / "node_modules" / "drizzle-orm"


async def posts(base: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/_bench/posts") as r:
        return int(await r.text())


async def run_many(
    count: int, concurrency: int, once: Callable[[], Awaitable[None]]
) -> tuple[float, float]:
    """Wall seconds for ``count`` calls, ``concurrency`` at once; and the median call, ms."""
    limiter = anyio.CapacityLimiter(concurrency)
    timings: list[float] = []

    async def one() -> None:
        async with limiter:
            started = time.perf_counter()
            await once()
            timings.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return time.perf_counter() - started, statistics.median(timings)


def drizzle_folder(migrations: MigrationSet, folder: Path) -> Path:
    """The bundled migrations as the drizzle-kit folder they came from."""
    (folder / "meta").mkdir(parents=True)
    for migration in migrations:
        (folder / migration.filename).write_text(migration.sql)
    (folder / "meta" / "_journal.json").write_text(migrations.journal_json())
    return folder


async def main(latency_ms: float, count: int, concurrency: int) -> None:
    migrations = bundled_migrations()
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "served"
        with server_process(served, latency_ms=latency_ms, databases=("bench", "fresh")) as (
            base,
            server,
        ):
            url = f"{base}/db/bench"
            (await connect(url, migrations=migrations)).unwrap()  # to the head, once

            async def eager() -> None:
                db = (await connect(url, migrations=migrations)).unwrap()
                await db.close()

            async def own_session() -> None:
                async with aiohttp.ClientSession() as session:
                    db = (await connect(url, migrations=migrations, session=session)).unwrap()
                    await db.close()

            async def eager_and_query() -> None:
                db = (await connect(url, migrations=migrations)).unwrap()
                await db.execute("SELECT count(*) FROM programs")
                await db.close()

            async def lazy_and_query() -> None:
                db = (await connect(url, migrations=migrations, lazy=True)).unwrap()
                await db.execute("SELECT count(*) FROM programs")
                await db.close()

            print(
                f"latency {latency_ms:.0f} ms per request, {count} connects, "
                f"{concurrency} at once, {len(migrations)} migrations"
            )
            print(
                f"{'approach':<46} {'req/connect':>11} {'wall s':>7} {'floor s':>7} "
                f"{'x floor':>7} {'median ms':>9} {'server CPU s':>12}"
            )
            approaches: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("connect(), a session of its own each (before)", own_session),
                ("per-user-db connect()", eager),
                ("per-user-db connect() + first query", eager_and_query),
                ("per-user-db connect(lazy=True) + first query", lazy_and_query),
            ]
            for label, once in approaches:
                before, cpu = await posts(base), cpu_seconds(server.pid)
                wall, median = await run_many(count, concurrency, once)
                report(label, (await posts(base) - before) / count, wall, median, latency_ms,
                       count, concurrency, cpu_seconds(server.pid) - cpu)  # fmt: skip
            if shutil.which("node") and INTEROP_MODULES.is_dir():
                folder = drizzle_folder(migrations, Path(tmp) / "drizzle")
                before, cpu = await posts(base), cpu_seconds(server.pid)
                out = await anyio.run_process(
                    ["node", str(DRIZZLE), url + "/", str(folder), str(count), str(concurrency)],
                    stderr=subprocess.STDOUT,
                )
                result = json.loads(out.stdout.decode().strip().splitlines()[-1])
                report("drizzle migrate() on @libsql/client", (await posts(base) - before) / count,
                       result["seconds"], result["median_ms"], latency_ms, count, concurrency,
                       cpu_seconds(server.pid) - cpu)  # fmt: skip
            else:
                print("drizzle: not installed (bash .ci/install-interop)")
            before = await posts(base)
            started = time.perf_counter()
            db = (await connect(f"{base}/db/fresh", migrations=migrations)).unwrap()
            took = (time.perf_counter() - started) * 1000
            await db.close()
            print(
                f"apply the full set ({sum(len(m.statements) for m in migrations)} statements) "
                f"to a fresh database: {await posts(base) - before} requests, {took:.1f} ms"
            )


def report(
    label: str,
    requests: float,
    wall: float,
    median: float,
    latency_ms: float,
    count: int,
    concurrency: int,
    server_cpu: float,
) -> None:
    floor = count * requests * latency_ms / 1000 / concurrency
    print(
        f"{label:<46} {requests:>11.2f} {wall:>7.2f} {floor:>7.2f} {wall / floor:>7.2f} "
        f"{median:>9.1f} {server_cpu:>12.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.latency_ms, args.count, args.concurrency))
