"""A real HTTP server on 127.0.0.1 that answers from a script: any status, body, header,
delay or a dropped connection. For the faults a well-behaved server will not produce on
demand. (aioresponses cannot build responses for aiohttp 3.14, and a real socket tests
more of the client anyway.)"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    status: int = 200
    body: bytes | str | object = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    """Close the connection without answering."""

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class Recorded:
    method: str
    path: str
    raw_path: str
    """The path as sent, percent-encoding intact."""
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer: str = ""
    """The client's address and port: one per TCP connection."""

    def json(self) -> object:
        return json.loads(self.body)


Responder = Callable[[Recorded], Reply]


class ScriptedServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: dict[tuple[str, str], deque[Reply | Responder]] = {}
        self._sticky: dict[tuple[str, str], Reply | Responder] = {}
        self.url = ""

    def on(self, method: str, path: str, *replies: Reply | Responder, repeat: bool = False) -> None:
        """Answer the next requests to ``method path`` with ``replies`` in order; with
        ``repeat`` the last one keeps answering."""
        self._script.setdefault((method, path), deque()).extend(replies)
        if repeat:
            self._sticky[(method, path)] = replies[-1]

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if (r.method, r.path) == (method, path))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(
            method=request.method,
            path=request.path,
            raw_path=request.raw_path.split("?", 1)[0],
            query=dict(request.query),
            headers=dict(request.headers),
            body=await request.read(),
            peer=str(request.transport.get_extra_info("peername") if request.transport else ""),
        )
        self.requests.append(recorded)
        key = (request.method, request.path)
        queue = self._script.get(key)
        scripted = queue.popleft() if queue else self._sticky.get(key)
        if scripted is None:
            return web.Response(status=599, text=f"unscripted request {key}")
        reply = scripted if isinstance(scripted, Reply) else scripted(recorded)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        return web.Response(status=reply.status, body=reply.encoded(), headers=reply.headers)


@asynccontextmanager
async def scripted_server() -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()
