"""migrate-on-connect benchmark: prints numbers, asserts nothing.

    python -m bench.connect [--latency-ms 20] [--rounds 20]

Over HTTP to the local protocol server with ``--latency-ms`` added to every request:

* requests and wall time of ``connect(migrate=True)`` on an up-to-date database;
* the same check done the way the original package did it: create the version table,
  select the newest row, BEGIN, COMMIT, each its own request;
* time to apply the whole bundled migration set to a fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from per_user_db import MigrationSet, connect, open_database
from per_user_db._bundled import bundled_migrations
from per_user_db.core._planner import CREATE_VERSION_TABLE, VERSION_TABLE
from per_user_db.dev import create_protocol_app, protocol_state, serve

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def with_latency(app: web.Application, seconds: float) -> None:
    @web.middleware
    async def delay(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await handler(request)

    app.middlewares.append(delay)


async def original_check(url: str) -> None:
    """What @next-lift/per-user-database did on every connect: 4+ requests."""
    db = (await open_database(url)).unwrap()
    async with db:
        await db.execute(CREATE_VERSION_TABLE)
        await db.execute(
            f'SELECT id, hash, created_at FROM "{VERSION_TABLE}" ORDER BY created_at DESC LIMIT 1'
        )
        async with db.transaction(mode="deferred") as tx:
            await tx.execute("SELECT 1")  # BEGIN travels with the first statement
            await tx.commit()


async def ours(url: str, migrations: MigrationSet) -> None:
    db = (await connect(url, migrations=migrations)).unwrap()
    await db.close()


async def main(latency_ms: float, rounds: int) -> None:
    migrations = bundled_migrations()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_protocol_app(Path(tmp) / "served")
        with_latency(app, latency_ms / 1000)
        state = protocol_state(app)
        await state.create_database("bench")
        await state.create_database("fresh")
        async with serve(app) as address:
            url = address.database_url("bench")
            await ours(url, migrations)  # bring it up to date once
            print(f"latency {latency_ms:.0f} ms per request, {len(migrations)} migrations")
            print(f"{'approach':<42} {'requests':>9} {'median ms':>10} {'p95 ms':>8}")
            approaches: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("per-user-db connect(migrate=True)", lambda: ours(url, migrations)),
                ("original: separate requests", lambda: original_check(url)),
            ]
            for label, run in approaches:
                timings = []
                state.counts.reset()
                for _ in range(rounds):
                    started = time.perf_counter()
                    await run()
                    timings.append((time.perf_counter() - started) * 1000)
                requests = state.counts.count() / rounds
                p95 = sorted(timings)[int(0.95 * (len(timings) - 1))]
                print(
                    f"{label:<42} {requests:>9.1f} {statistics.median(timings):>10.1f} {p95:>8.1f}"
                )
            state.counts.reset()
            started = time.perf_counter()
            await ours(address.database_url("fresh"), migrations)
            took = (time.perf_counter() - started) * 1000
            requests = state.counts.count()
            label = "apply the full set to a fresh database"
            print(f"{label:<42} {requests:>9} {took:>10.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.latency_ms, args.rounds))
