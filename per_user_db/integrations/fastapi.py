"""FastAPI (and Starlette) glue for :class:`~per_user_db.UserDatabases`.

.. code-block:: python

    from fastapi import Depends, FastAPI
    from per_user_db import Database
    from per_user_db.integrations.fastapi import install, lifespan, user_database

    async def current_user_id(request: Request) -> str: ...   # your authentication

    app = FastAPI(lifespan=lifespan())                 # UserDatabases.from_env() once
    install(app)                                       # 404 / 503 with safe bodies
    UserDb = Annotated[Database, Depends(user_database(current_user_id))]

    @app.get("/programs")
    async def programs(db: UserDb) -> list[Program]:  # a dataclass of yours
        return await db.fetch("SELECT id, name FROM programs", into=Program)
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from .._app import UserDatabases, UserDatabaseUnavailable
from .._deferred import MigrationFailedError
from .._transports._base import DatabaseError
from . import UNAVAILABLE_MESSAGE, is_temporary, log

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    from .._app import StartupError
    from .._database import Database
    from ..core._result import Result

__all__ = ["install", "lifespan", "user_database", "user_databases"]


def lifespan(
    factory: Callable[[], Awaitable[Result[UserDatabases, StartupError]]] | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan`` that builds the app's :class:`UserDatabases` at start-up
    (``UserDatabases.from_env()`` unless ``factory`` says otherwise), keeps it in
    ``app.state.user_databases`` and closes it at shutdown. A start-up error stops the
    app with its message (which names the setting, never a secret)."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        built = await (factory() if factory is not None else UserDatabases.from_env())
        dbs = built.unwrap()
        app.state.user_databases = dbs
        try:
            yield
        finally:
            await dbs.aclose()

    return run


async def user_databases(request: Request) -> UserDatabases:
    """The app's :class:`UserDatabases` (a dependency, for handlers that need ``setup``)."""
    dbs = getattr(request.app.state, "user_databases", None)
    if not isinstance(dbs, UserDatabases):
        raise RuntimeError(
            "no UserDatabases on app.state.user_databases: pass lifespan=lifespan() to "
            "FastAPI, or set it yourself"
        )
    return dbs


def user_database(
    user_id: Callable[..., Any],
) -> Callable[..., AsyncIterator[Database]]:
    """A dependency that yields the user's database for the request and closes it after.

    ``user_id`` is your dependency that returns the signed-in user's id. A user who was
    never set up gets 404, an unavailable database 503 (with :func:`install`).
    """

    async def dependency(
        request: Request,
        user: str = Depends(user_id),
    ) -> AsyncIterator[Database]:
        # The app object straight from the request: one dependency fewer for FastAPI to
        # resolve on every request.
        async with (await user_databases(request)).scope(user) as db:
            yield db

    return dependency


def install(app: FastAPI) -> None:
    """Answer :class:`UserDatabaseUnavailable` with its status (404 or 503), and a failed
    migration or an unreachable database met mid-request with 503, each with a body safe
    for API clients; log the details."""

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, UserDatabaseUnavailable)
        log.warning("%s %s: user database unavailable: %s", request.method, request.url.path, exc)
        return JSONResponse({"error": exc.public_message}, status_code=exc.status)

    async def temporary(request: Request, exc: Exception) -> JSONResponse:
        if not is_temporary(exc):
            raise exc
        log.warning("%s %s: user database unavailable: %s", request.method, request.url.path, exc)
        return JSONResponse({"error": UNAVAILABLE_MESSAGE}, status_code=503)

    app.add_exception_handler(UserDatabaseUnavailable, unavailable)
    app.add_exception_handler(MigrationFailedError, temporary)
    app.add_exception_handler(DatabaseError, temporary)
