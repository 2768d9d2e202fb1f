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

__all__ = [
    "CONNECTION_LIMIT",
    "SessionPool",
    "close_shared_sessions",
    "shared_pool",
    "shared_session",
]

CONNECTION_LIMIT = 100
"""Connections the shared session keeps open at most, over all origins."""


class _LoopSession:
    """A session bound to one event loop, closed when that loop shuts down."""

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


class SessionPool:
    """One pooled session per event loop, made on first use, closed at the loop's
    shutdown or by :meth:`aclose`. The library keeps one for every HTTP database; an app
    object keeps its own, so closing it closes only its connections."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSession] = (
            weakref.WeakKeyDictionary()
        )

    def session(self) -> aiohttp.ClientSession:
        """The running event loop's session."""
        loop = asyncio.get_running_loop()
        held = self._sessions.get(loop)
        if held is None or held.session.closed:
            held = self._sessions[loop] = _LoopSession()
        return held.session

    async def aclose(self) -> None:
        """Close the running loop's session and its kept-alive connections now; the next
        :meth:`session` makes a new one."""
        held = self._sessions.pop(asyncio.get_running_loop(), None)
        if held is not None:
            await held.aclose()


_shared = SessionPool()


def shared_pool() -> SessionPool:
    """The library's own pool, which every HTTP database uses unless told otherwise."""
    return _shared


def shared_session() -> aiohttp.ClientSession:
    """The running event loop's shared session, made on first use."""
    return _shared.session()


async def close_shared_sessions() -> None:
    """Close the running loop's shared session and its kept-alive connections now.

    Databases opened afterwards get a new one. Not needed under ``asyncio.run`` or any
    ``asyncio.Runner``, which close it at shutdown.
    """
    await _shared.aclose()
