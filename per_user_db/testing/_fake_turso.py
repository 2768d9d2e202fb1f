"""The local Turso (:mod:`per_user_db.dev`) on a thread of its own, for tests of app code.

:func:`running_fake_turso` serves the Platform API and the databases on a free port of
127.0.0.1 and yields a :class:`FakeTurso`: ``settings`` point at it, and the plugin's
``fake_turso`` fixture also sets the environment (``TURSO_PLATFORM_API_TOKEN``,
``TURSO_ORGANIZATION``, ``TURSO_API_URL``, ``APP_ENV``), so ``create_database(user_id)``
without settings goes over real HTTP to it::

    async with running_fake_turso(tmp_path) as turso:       # in an async test
        creds = (await create_database("user-1", settings=turso.settings)).unwrap()
        assert turso.database_names() == [creds.name]

    with running_fake_turso(tmp_path) as turso:             # in a plain test
        with TestClient(app) as client: ...                 # FastAPI's, synchronous

The server runs on its own thread and event loop, never on the caller's: a synchronous
test client (FastAPI's ``TestClient``) blocks the test's thread while it waits for the
app, and the app must still reach the server meanwhile. Starting and stopping wait at
most :data:`START_TIMEOUT` and :data:`STOP_TIMEOUT` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

import anyio

from per_user_db._settings import Settings
from per_user_db.turso._client import RetryPolicy

if TYPE_CHECKING:
    import os
    from collections.abc import Awaitable, Callable, Mapping
    from types import TracebackType

    from per_user_db.dev import LocalTurso, ServerAddress

# FakeTursoError and the timeouts stay out: per_user_db.testing re-exports exactly these.
__all__ = ["FAKE_TURSO_APP_ENV", "FakeTurso", "running_fake_turso"]

FAKE_TURSO_APP_ENV = "ci"
START_TIMEOUT = 30.0
"""Seconds to wait for the server to listen (it creates its registry and signing key)."""
STOP_TIMEOUT = 10.0
"""Seconds to wait for the server to close its connections and its thread to end."""
CALL_TIMEOUT = 10.0
"""Default seconds :meth:`FakeTurso.on_server` waits for the server's loop to answer."""

# Quick retries: a test waiting on backoff only tells you the test is slow.
_FAST_RETRY = RetryPolicy(attempts=4, deadline=10.0, base_delay=0.01, max_delay=0.05)

# Variables that would make Settings.from_env() disagree with FakeTurso.settings.
_CLEARED = (
    "TURSO_GROUP",
    "PER_USER_DB_PREFIX",
    "PER_USER_DB_NAME_SECRET",
    "PER_USER_DB_TOKEN_DAYS",
    "PER_USER_DB_TOKEN_AUTHORIZATION",
)

T = TypeVar("T")


class FakeTursoError(RuntimeError):
    """The fake Turso did not start, stop or answer in time (a test-kit failure)."""


class _ServerThread:
    """One local Turso served by an event loop on a daemon thread of its own."""

    def __init__(self, data_dir: str | os.PathLike[str], *, org: str) -> None:
        self._data_dir = data_dir
        self._org = org
        self._started: Future[tuple[ServerAddress, LocalTurso]] = Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fake-turso", daemon=True)

    def start(self) -> tuple[ServerAddress, LocalTurso]:
        self._thread.start()
        try:
            return self._started.result(timeout=START_TIMEOUT)
        except TimeoutError:
            self.stop()
            raise FakeTursoError(
                f"the fake Turso did not start listening within {START_TIMEOUT:.0f} s"
            ) from None

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop has nothing to stop
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=STOP_TIMEOUT)
        if self._thread.is_alive():
            raise FakeTursoError(
                f"the fake Turso's thread did not end within {STOP_TIMEOUT:.0f} s "
                "(it is a daemon thread: it will not keep the process alive)"
            )

    def call(self, fn: Callable[[], Any], timeout: float) -> Any:
        loop = self._loop
        if loop is None or loop.is_closed() or not self._thread.is_alive():
            raise FakeTursoError("the fake Turso is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("on_server() would wait for its own thread: call fn directly")

        async def on_loop() -> Any:
            value = fn()
            return await value if inspect.isawaitable(value) else value

        future = asyncio.run_coroutine_threadsafe(on_loop(), loop)
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            future.cancel()
            raise FakeTursoError(
                f"the fake Turso's loop did not answer within {timeout:g} s"
            ) from None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits
            if not self._started.done():
                self._started.set_exception(exc)

    async def _serve(self) -> None:
        from per_user_db.dev import create_local_turso_app, local_turso, serve

        self._stop = asyncio.Event()
        app = create_local_turso_app(self._data_dir, org=self._org)
        async with serve(app) as address:
            self._loop = asyncio.get_running_loop()
            self._started.set_result((address, local_turso(app)))
            await self._stop.wait()


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeTurso:
    """A running local Turso. ``repr`` leaves the API token out.

    Safe from any thread: ``settings``, ``env``, ``api_url``, ``api_token``, ``org`` (fixed
    at start), :meth:`database_names` and :meth:`on_server`. The server's state
    :attr:`turso` belongs to the server's thread: read or change it through
    :meth:`on_server`, e.g. ``fake_turso.on_server(lambda: fake_turso.turso.faults)``.
    """

    address: ServerAddress
    turso: LocalTurso
    """The server's state (``per_user_db.dev.LocalTurso``): mint tokens, inject faults.
    It lives on the server's thread; touch it only inside :meth:`on_server`."""
    settings: Settings
    _server: _ServerThread = field(repr=False)

    @property
    def api_url(self) -> str:
        return self.address.url

    @property
    def api_token(self) -> str:
        return self.turso.api_token

    @property
    def org(self) -> str:
        return self.turso.org

    @property
    def env(self) -> Mapping[str, str]:
        """The environment that makes ``Settings.from_env()`` point here."""
        return {
            "TURSO_PLATFORM_API_TOKEN": self.api_token,
            "TURSO_ORGANIZATION": self.org,
            "TURSO_API_URL": self.api_url,
            "APP_ENV": self.settings.app_env,
        }

    @property
    def cleared_env(self) -> tuple[str, ...]:
        """Variables to unset so the environment means exactly :attr:`settings`."""
        return _CLEARED

    @overload
    def on_server(self, fn: Callable[[], Awaitable[T]], *, timeout: float = ...) -> T: ...
    @overload
    def on_server(self, fn: Callable[[], T], *, timeout: float = ...) -> T: ...
    def on_server(self, fn: Callable[[], Any], *, timeout: float = CALL_TIMEOUT) -> Any:
        """Run ``fn`` on the server's event loop (awaiting what it returns, if awaitable)
        and return its result: the way to touch :attr:`turso` while the server runs.

        Blocks the calling thread for at most ``timeout`` seconds (the server has a
        thread of its own, so an async test may call it too); raises what ``fn`` raised.
        """
        return self._server.call(fn, timeout)

    def database_names(self) -> list[str]:
        """Every database on this server, by name (read on the server's thread)."""
        return self.on_server(lambda: [record.name for record in self.turso.registry.databases()])

    def __repr__(self) -> str:
        return f"<FakeTurso {self.api_url} org={self.org}>"


class running_fake_turso:
    """Serve a local Turso keeping its files in ``data_dir`` until the block exits.

    Use it with ``with`` or ``async with``; either way the server runs on its own thread.
    (``async with`` starts and stops it off the caller's loop.)
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        org: str = "local",
        app_env: str = FAKE_TURSO_APP_ENV,
    ) -> None:
        self._server = _ServerThread(data_dir, org=org)
        self._app_env = app_env

    def __enter__(self) -> FakeTurso:
        address, state = self._server.start()
        return FakeTurso(
            address=address,
            turso=state,
            settings=Settings(
                api_token=state.api_token,
                organization=state.org,
                api_url=address.url,
                app_env=self._app_env,
                retry=_FAST_RETRY,
            ),
            _server=self._server,
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.stop()

    async def __aenter__(self) -> FakeTurso:
        return await anyio.to_thread.run_sync(self.__enter__)

    async def __aexit__(self, *exc_info: Any) -> None:
        await anyio.to_thread.run_sync(self._server.stop)
