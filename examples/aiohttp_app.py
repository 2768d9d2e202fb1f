"""An aiohttp.web app with one database per user: sign-up, and per-request databases.

    python examples/aiohttp_app.py          # embedded SQLite, or Turso from the environment

* ``POST /signup`` with ``{"user_id": "..."}`` sets the user's database up: created (or
  found), credentials saved, schema migrated. Safe to retry.
* Every ``/me/...`` request runs inside ``user_database(user_id)``: the token is refreshed
  if it expires within a week, the schema is brought up to date, and the handler reaches
  the database with ``current_database()``. It is closed after the response, whatever
  happened. ``X-User-Id`` stands in for your real authentication.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web

from per_user_db import (
    CredentialStore,
    DatabaseError,
    Err,
    InMemoryCredentialStore,
    NotProvisioned,
    Ok,
    Settings,
    UserDatabaseUnavailable,
    current_database,
    setup_user_database,
    user_database,
)

STORE: web.AppKey[CredentialStore] = web.AppKey("store")
SETTINGS: web.AppKey[Settings | None] = web.AppKey("settings")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def signup(request: web.Request) -> web.Response:
    body = await request.json()
    user_id = body.get("user_id") if isinstance(body, dict) else None
    if not isinstance(user_id, str) or not user_id.strip():
        return web.json_response({"error": "user_id is required"}, status=400)
    store, settings = request.app[STORE], request.app[SETTINGS]
    match await setup_user_database(user_id, store=store, settings=settings):
        case Ok(credentials):
            return web.json_response({"database": credentials.name}, status=201)
        case Err(error):
            # Retryable: setup is idempotent. The message never contains a token.
            return web.json_response({"error": str(error)}, status=503)


@web.middleware
async def per_user_database(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/me/"):
        return await handler(request)
    user_id = request.headers.get("X-User-Id")
    if not user_id:
        return web.json_response({"error": "not signed in"}, status=401)
    store, settings = request.app[STORE], request.app[SETTINGS]
    try:
        async with user_database(user_id, store=store, settings=settings):
            return await handler(request)
    except UserDatabaseUnavailable as exc:
        if isinstance(exc.error, NotProvisioned):
            return web.json_response({"error": "sign up first"}, status=404)
        return web.json_response({"error": str(exc)}, status=503)


async def list_programs(request: web.Request) -> web.Response:
    rows = await current_database().execute("SELECT id, name FROM programs ORDER BY name")
    return web.json_response([row.asdict() for row in rows])


async def add_program(request: web.Request) -> web.Response:
    body = await request.json()
    try:
        await current_database().execute(
            "INSERT INTO programs (id, name) VALUES (?, ?)", [body.get("id"), body.get("name")]
        )
    except DatabaseError as exc:  # CHECK and NOT NULL constraints speak for the schema
        return web.json_response({"error": exc.explanation, "code": exc.code}, status=400)
    return web.json_response(body, status=201)


def create_app(*, store: CredentialStore, settings: Settings | None = None) -> web.Application:
    app = web.Application(middlewares=[per_user_database])
    app[STORE] = store
    app[SETTINGS] = settings
    app.router.add_post("/signup", signup)
    app.router.add_get("/me/programs", list_programs)
    app.router.add_post("/me/programs", add_program)
    return app


def main() -> None:
    match Settings.from_env():
        case Err(problem):
            sys.exit(f"setting {problem}")
        case Ok(settings):
            pass
    # A real app keeps credentials in its auth database: DatabaseCredentialStore.
    app = create_app(store=InMemoryCredentialStore(), settings=settings)
    web.run_app(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))


if __name__ == "__main__":
    main()
