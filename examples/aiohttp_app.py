"""An aiohttp.web app with one database per user, on :class:`UserDatabases` and its glue.

    python examples/aiohttp_app.py          # embedded SQLite, or Turso from the environment

* ``POST /signup`` with ``{"user_id": "..."}`` sets the user's database up: created (or
  found), credentials saved, schema migrated. Safe to retry.
* Every ``/me/...`` request runs inside the user's database scope
  (:func:`~per_user_db.integrations.aiohttp.user_databases_middleware`): opened on the
  app's pooled connections with a fresh token and an up-to-date schema, reached by the
  handler with ``current_database()``, closed after the response whatever happened. A
  user who never signed up gets 404, an unavailable database 503, each with a body safe
  to show (the details go to the log). ``X-User-Id`` stands in for your authentication.

One :class:`UserDatabases` serves the whole app: built at start-up by
:func:`~per_user_db.integrations.aiohttp.setup` (here with an in-memory credential store;
a real app keeps credentials in its auth database, which ``UserDatabases.from_env()``
opens from ``PER_USER_DB_STORE_URL``), closed at cleanup.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from per_user_db import (
    DatabaseError,
    Err,
    InMemoryCredentialStore,
    Ok,
    Result,
    Settings,
    StartupError,
    UnwrapError,
    UserDatabases,
    current_database,
)
from per_user_db.integrations.aiohttp import USER_DATABASES, setup, user_databases_middleware

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


@dataclass(frozen=True, slots=True)
class Program:
    """A row of the bundled schema's ``programs`` table."""

    id: str
    name: str


async def signup(request: web.Request) -> web.Response:
    body = await request.json()
    user_id = body.get("user_id") if isinstance(body, dict) else None
    if not isinstance(user_id, str) or not user_id.strip():
        return web.json_response({"error": "user_id is required"}, status=400)
    match await request.app[USER_DATABASES].setup(user_id):
        case Ok(credentials):
            return web.json_response({"database": credentials.name}, status=201)
        case Err(error):
            # Retryable: setup is idempotent. The message never contains a token.
            return web.json_response({"error": str(error)}, status=503)


async def list_programs(request: web.Request) -> web.Response:
    programs = await current_database().fetch(
        "SELECT id, name FROM programs ORDER BY name", into=Program
    )
    return web.json_response([asdict(program) for program in programs])


async def add_program(request: web.Request) -> web.Response:
    body = await request.json()
    try:
        await current_database().execute(
            "INSERT INTO programs (id, name) VALUES (?, ?)", [body.get("id"), body.get("name")]
        )
    except DatabaseError as exc:
        if exc.code.startswith("SQLITE_CONSTRAINT"):  # CHECK, NOT NULL, PRIMARY KEY
            return web.json_response({"error": exc.explanation, "code": exc.code}, status=400)
        raise  # the middleware answers an unavailable database with 503
    return web.json_response(body, status=201)


def signed_in_user(request: web.Request) -> str | None:
    """Your authentication goes here: the signed-in user's id, or None (401)."""
    return request.headers.get("X-User-Id")


def create_app(
    factory: Callable[[], Awaitable[Result[UserDatabases, StartupError]]] | None = None,
) -> web.Application:
    """The app; ``factory`` builds its :class:`UserDatabases` at start-up (default: an
    in-memory credential store and ``Settings.from_env()``)."""
    app = web.Application(
        middlewares=[user_databases_middleware(user_id=signed_in_user, prefix="/me/")]
    )
    setup(app, factory or in_memory)
    app.router.add_post("/signup", signup)
    app.router.add_get("/me/programs", list_programs)
    app.router.add_post("/me/programs", add_program)
    return app


async def in_memory() -> Result[UserDatabases, StartupError]:
    match Settings.from_env():
        case Err(problem):
            return Err(StartupError(what="settings", error=problem))
        case Ok(settings):
            return Ok(UserDatabases(store=InMemoryCredentialStore(), settings=settings))


def main() -> None:
    app = create_app()
    try:
        web.run_app(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
    except UnwrapError as exc:  # a start-up error: names the setting, never a secret
        sys.exit(f"cannot start: {exc}")


if __name__ == "__main__":
    main()
