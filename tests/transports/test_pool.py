"""HTTP databases share one pooled session per event loop, closed with the loop."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from per_user_db import close_shared_sessions, connect, open_database
from per_user_db._transports._pool import shared_session
from per_user_db.dev import create_protocol_app, serve
from per_user_db.dev import protocol_state as state_of

from ..scripted_server import Reply, scripted_server

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EXECUTE_OK = {
    "type": "ok",
    "response": {
        "type": "execute",
        "result": {"cols": [], "rows": [], "affected_row_count": 0, "last_insert_rowid": None},
    },
}
CLOSE_OK = {"type": "ok", "response": {"type": "close"}}
PIPELINE_OK = json.dumps({"baton": None, "base_url": None, "results": [EXECUTE_OK, CLOSE_OK]})


async def test_databases_opened_one_after_another_reuse_one_tcp_connection() -> None:
    async with scripted_server() as fake:
        fake.on("POST", "/db/a/v3/pipeline", Reply(body=PIPELINE_OK), repeat=True)
        fake.on("POST", "/db/b/v3/pipeline", Reply(body=PIPELINE_OK), repeat=True)
        for name in ("a", "b", "a", "b", "a"):  # open, query, close: what every request does
            async with (await open_database(f"{fake.url}/db/{name}", "token")).unwrap() as db:
                await db.execute("SELECT 1")
        assert len(fake.requests) == 5
        assert len({r.peer for r in fake.requests}) == 1


async def test_connect_and_migrate_ride_one_kept_alive_connection(tmp_path: Path) -> None:
    peers: list[str] = []

    @web.middleware
    async def record_peer(request: web.Request, handler: Handler) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(str(request.transport.get_extra_info("peername")))
        return await handler(request)

    app = create_protocol_app(tmp_path / "served")
    app.middlewares.append(record_peer)
    await state_of(app).create_database("pooled")
    async with serve(app) as address:
        url = address.database_url("pooled")
        for _ in range(3):  # the first migrates, the others find it up to date
            db = (await connect(url)).unwrap()
            await db.execute("SELECT 1")
            await db.close()
    assert len(peers) == 1 + 3 * 2  # one apply, then a check and a query each time
    assert len(set(peers)) == 1


async def test_a_caller_session_is_used_and_left_open() -> None:
    async with scripted_server() as fake, aiohttp.ClientSession(headers={"X-Mine": "1"}) as mine:
        fake.on("POST", "/db/a/v3/pipeline", Reply(body=PIPELINE_OK))
        db = (await open_database(f"{fake.url}/db/a", "token", session=mine)).unwrap()
        await db.execute("SELECT 1")
        await db.close()
        assert not mine.closed
        assert fake.requests[0].headers["X-Mine"] == "1"


async def test_close_shared_sessions_closes_now_and_a_new_one_follows() -> None:
    first = shared_session()
    assert shared_session() is first
    await close_shared_sessions()
    assert first.closed
    second = shared_session()
    assert second is not first
    assert not second.closed


def test_the_loop_closes_its_session_at_shutdown() -> None:
    sessions: list[aiohttp.ClientSession] = []

    async def app() -> None:
        sessions.append(shared_session())

    asyncio.run(app())
    asyncio.run(app())
    first, second = sessions
    assert first is not second  # one per event loop
    assert first.closed
    assert second.closed
