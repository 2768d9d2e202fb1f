"""aiohttp.web glue for :class:`~per_user_db.UserDatabases`.

.. code-block:: python

    from aiohttp import web
    from per_user_db.integrations.aiohttp import USER_DATABASES, setup, user_databases_middleware

    app = web.Application(middlewares=[
        user_databases_middleware(user_id=lambda request: request.get("user_id"), prefix="/me/")
    ])
    setup(app)  # UserDatabases.from_env() at start-up, closed at cleanup

    async def programs(request: web.Request) -> web.Response:
        rows = await current_database().execute("SELECT id, name FROM programs")
        ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .._app import UserDatabases, UserDatabaseUnavailable
from . import UNAVAILABLE_MESSAGE, is_temporary, log

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiohttp.typedefs import Middleware

    from .._app import StartupError
    from ..core._result import Result

__all__ = ["USER_DATABASES", "setup", "user_databases_middleware"]

USER_DATABASES: web.AppKey[UserDatabases] = web.AppKey("user_databases", UserDatabases)
"""Where :func:`setup` keeps the app's :class:`UserDatabases`: ``request.app[USER_DATABASES]``."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup(
    app: web.Application,
    factory: Callable[[], Awaitable[Result[UserDatabases, StartupError]]] | None = None,
) -> None:
    """Build the app's :class:`UserDatabases` at start-up (``UserDatabases.from_env()``
    unless ``factory`` says otherwise) into ``app[USER_DATABASES]``; close it at cleanup."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        built = await (factory() if factory is not None else UserDatabases.from_env())
        dbs = built.unwrap()
        app[USER_DATABASES] = dbs
        try:
            yield
        finally:
            await dbs.aclose()

    app.cleanup_ctx.append(context)


def user_databases_middleware(
    *, user_id: Callable[[web.Request], str | None], prefix: str = "/"
) -> Middleware:
    """A middleware that runs every handler under ``prefix`` inside the signed-in user's
    database scope (``current_database()`` inside). ``user_id`` reads the user from the
    request (your authentication); None answers 401. A user who was never set up gets
    404, an unavailable database 503, with bodies safe for API clients."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(prefix):
            return await handler(request)
        user = user_id(request)
        if not user:
            return web.json_response({"error": "not signed in"}, status=401)
        try:
            async with request.app[USER_DATABASES].scope(user):
                return await handler(request)
        except UserDatabaseUnavailable as exc:
            log.warning("%s %s: user database unavailable: %s", request.method, request.path, exc)
            return web.json_response({"error": exc.public_message}, status=exc.status)
        except Exception as exc:
            if not is_temporary(exc):
                raise
            log.warning("%s %s: user database unavailable: %s", request.method, request.path, exc)
            return web.json_response({"error": UNAVAILABLE_MESSAGE}, status=503)

    return middleware
