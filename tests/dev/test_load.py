"""A bounded load test of the local Turso: 200 clients, 50 databases, every write kept.

Each client opens its database through our own client over real HTTP on 127.0.0.1 and
inserts rows, some in batches, some in interactive transactions; then every database
must hold exactly the rows its clients were told were written, and nobody got an error.
Bounded in count (200 x 6 requests), not in time: speed belongs to the benchmarks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from per_user_db import open_database
from per_user_db.dev import create_protocol_app, protocol_state, serve

if TYPE_CHECKING:
    from pathlib import Path

CLIENTS = 200
DATABASES = 50
ROUNDS = 3


async def test_two_hundred_clients_fifty_databases_no_errors_no_lost_writes(
    tmp_path: Path,
) -> None:
    app = create_protocol_app(tmp_path, stream_idle_timeout=30)
    state = protocol_state(app)
    names = [f"db-{i}" for i in range(DATABASES)]
    for name in names:
        await state.create_database(name)
    acknowledged: dict[str, int] = dict.fromkeys(names, 0)
    errors: list[BaseException] = []
    async with serve(app) as address:
        for name in names:
            async with (await open_database(address.database_url(name))).unwrap() as db:
                await db.execute("CREATE TABLE w (client INTEGER, n INTEGER)")

        async def client(number: int) -> None:
            name = names[number % DATABASES]
            try:
                async with (await open_database(address.database_url(name))).unwrap() as db:
                    for n in range(ROUNDS):
                        await db.execute("INSERT INTO w VALUES (?, ?)", [number, n])
                        acknowledged[name] += 1
                        await db.batch(
                            [
                                ("INSERT INTO w VALUES (?, ?)", [number, 100 + n]),
                                ("INSERT INTO w VALUES (?, ?)", [number, 200 + n]),
                            ]
                        )
                        acknowledged[name] += 2
                    async with db.transaction() as tx:
                        await tx.execute("INSERT INTO w VALUES (?, ?)", [number, 999])
                        await tx.commit()
                    acknowledged[name] += 1
            except Exception as exc:
                errors.append(exc)

        async with anyio.create_task_group() as group:
            for number in range(CLIENTS):
                group.start_soon(client, number)
        for name in names:
            async with (await open_database(address.database_url(name))).unwrap() as db:
                (count,) = (await db.execute("SELECT count(*) FROM w"))[0]
                assert count == acknowledged[name], name
    assert errors == []
    assert sum(acknowledged.values()) == CLIENTS * (ROUNDS * 3 + 1)
