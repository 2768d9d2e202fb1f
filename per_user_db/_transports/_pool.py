"""One pooled aiohttp session per event loop, shared by every HTTP database by default.

An app opens a user's database on every request. With a session per database each of
them paid a new TCP (in production, TLS) connection; sharing one session per event loop
lets every ``connect()`` to the same origin ride a kept-alive connection.

The pool is bounded (:data:`CONNECTION_LIMIT` connections in all; a request beyond that
waits for a free one within its own timeout) and closes itself when its event loop shuts
down: a started async generator holds the session, and ``asyncio.run`` (like every
``asyncio.Runner``, pytest-asyncio's included) closes the loop's async generators before
closing the loop, which runs the generator's ``finally``. :func:`close_shared_sessions`
closes it earlier, for loops that are closed by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

__all__ = ["CONNECTION_LIMIT", "close_shared_sessions", "shared_session"]

CONNECTION_LIMIT = 100
"""Connections the shared session keeps open at most, over all origins."""


class _Pool:
    def __init__(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTION_LIMIT))
        # The loop keeps only a weak reference to its async generators; this one is ours.
        self._closer = self._close_at_shutdown()
        step = self._closer.__anext__()  # registers the generator with the running loop
        with contextlib.suppress(StopIteration):
            step.send(None)  # runs it to its yield: no suspension, so no await needed

    async def aclose(self) -> None:
        await self._closer.aclose()  # runs the finally below

    async def _close_at_shutdown(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self.session.close()


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def shared_session() -> aiohttp.ClientSession:
    """The running event loop's shared session, made on first use."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None or pool.session.closed:
        pool = _pools[loop] = _Pool()
    return pool.session


async def close_shared_sessions() -> None:
    """Close the running loop's shared session and its kept-alive connections now.

    Databases opened afterwards get a new one. Not needed under ``asyncio.run`` or any
    ``asyncio.Runner``, which close it at shutdown.
    """
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.aclose()
