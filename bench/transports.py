"""Transport benchmark: prints numbers, asserts nothing.

    python -m bench.transports [--seconds 2]

* small ``execute`` round trips per second: our local transport, libsql-client's
  ``file:`` transport, and our HTTP transport to the local protocol server on 127.0.0.1;
* rows per second decoding a 10,000-row result over HTTP and locally;
* how long a ~1 s query stalls the event loop, ours vs libsql-client's ``file:``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import libsql_client

from bench._stall import max_stall, rows_for, slow_query_sql
from per_user_db import open_database
from per_user_db.dev import create_protocol_app, protocol_state, serve

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

TEN_K = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) "
    "SELECT x, 'row ' || x, x * 0.5, randomblob(16) FROM c"
)


async def rate(seconds: float, call: Callable[[], Awaitable[object]]) -> float:
    """Calls per second of ``call`` run back to back for about ``seconds``."""
    await call()  # warm up
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        await call()
        count += 1
    return count / (time.perf_counter() - started)


async def decode_rate(call: Callable[[], Awaitable[object]], rows: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        best = min(best, time.perf_counter() - started)
    return rows / best


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        local = (await open_database(f"file:{root / 'local.db'}")).unwrap()
        theirs = libsql_client.create_client(f"file:{root / 'theirs.db'}")
        app = create_protocol_app(root / "served")
        await protocol_state(app).create_database("bench")
        async with serve(app) as address, local:
            remote = (await open_database(address.database_url("bench"))).unwrap()
            async with remote:
                print(f"{'measure':<46} {'value':>12}")
                for label, call in (
                    ("execute SELECT 1, per-user-db local (/s)", lambda: local.execute("SELECT 1")),
                    (
                        "execute SELECT 1, libsql-client file: (/s)",
                        lambda: theirs.execute("SELECT 1"),
                    ),
                    (
                        "execute SELECT 1, per-user-db HTTP loopback (/s)",
                        lambda: remote.execute("SELECT 1"),
                    ),
                ):
                    print(f"{label:<46} {await rate(seconds, call):>12,.0f}")
                for label, call in (
                    ("decode 10k rows, per-user-db local (rows/s)", lambda: local.execute(TEN_K)),
                    (
                        "decode 10k rows, libsql-client file: (rows/s)",
                        lambda: theirs.execute(TEN_K),
                    ),
                    ("decode 10k rows, per-user-db HTTP (rows/s)", lambda: remote.execute(TEN_K)),
                ):
                    print(f"{label:<46} {await decode_rate(call, 10_000):>12,.0f}")
                sql = slow_query_sql(await anyio.to_thread.run_sync(rows_for, 1.0))
                ours, took = await max_stall(lambda: local.execute(sql))
                print(
                    f"{'loop stall during ~1 s query, per-user-db (ms)':<46} {ours * 1000:>12.1f}"
                )
                stall, _ = await max_stall(lambda: theirs.execute(sql))
                label = "loop stall during ~1 s query, libsql-client (ms)"
                print(f"{label:<46} {stall * 1000:>12.1f}")
                print(f"{'(query took, s)':<46} {took:>12.2f}")
        await theirs.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per rate measurement")
    asyncio.run(main(parser.parse_args().seconds))
