"""A FastAPI app with one database per user, on :class:`UserDatabases` and its FastAPI glue.

    pip install 'per-user-db[fastapi]' uvicorn
    python examples/fastapi_app.py     # embedded SQLite, or Turso from the environment

* ``POST /signup`` with ``{"user_id": "..."}`` sets the user's database up: created (or
  found), credentials saved, schema migrated. Safe to retry.
* Every ``/me/...`` handler takes the user's database as a dependency
  (:func:`~per_user_db.integrations.fastapi.user_database`): opened for the request on
  the app's pooled connections, with a fresh token and an up-to-date schema, and closed
  after the response whatever happened. A user who never signed up gets 404, an
  unavailable database 503, each with a body safe to show (the details go to the log).
  ``X-User-Id`` stands in for your real authentication.

One :class:`UserDatabases` serves the whole app: built by the lifespan at start-up (here
with an in-memory credential store; a real app keeps credentials in its auth database,
which ``UserDatabases.from_env()`` opens from ``PER_USER_DB_STORE_URL``), closed at
shutdown. Run one per worker process.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse

from per_user_db import (
    Database,
    DatabaseError,
    Err,
    InMemoryCredentialStore,
    Ok,
    Result,
    Settings,
    StartupError,
    UserDatabases,
)
from per_user_db.integrations.fastapi import install, lifespan, user_database, user_databases

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


@dataclass(frozen=True, slots=True)
class Program:
    """A row of the bundled schema's ``programs`` table, and the body that adds one."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class SignUp:
    user_id: str


async def signed_in_user(x_user_id: Annotated[str | None, Header()] = None) -> str:
    """Your authentication goes here: the signed-in user's id, or 401. (``async def``:
    FastAPI runs a plain ``def`` dependency on a worker thread, a thread hop per request.)"""
    if not x_user_id:
        raise HTTPException(status_code=401, detail="not signed in")
    return x_user_id


UserDb = Annotated[Database, Depends(user_database(signed_in_user))]
Databases = Annotated[UserDatabases, Depends(user_databases)]


async def signup(body: SignUp, dbs: Databases) -> JSONResponse:
    if not body.user_id.strip():
        return JSONResponse({"error": "user_id is required"}, status_code=400)
    match await dbs.setup(body.user_id):
        case Ok(credentials):
            return JSONResponse({"database": credentials.name}, status_code=201)
        case Err(error):
            # Retryable: setup is idempotent. The message never contains a token.
            return JSONResponse({"error": str(error)}, status_code=503)


async def list_programs(db: UserDb) -> list[Program]:
    return await db.fetch("SELECT id, name FROM programs ORDER BY name", into=Program)


async def add_program(program: Program, db: UserDb) -> JSONResponse:
    try:
        await db.execute(
            "INSERT INTO programs (id, name) VALUES (?, ?)", [program.id, program.name]
        )
    except DatabaseError as exc:
        if exc.code.startswith("SQLITE_CONSTRAINT"):  # CHECK, NOT NULL, PRIMARY KEY
            return JSONResponse({"error": exc.explanation, "code": exc.code}, status_code=400)
        raise  # install() answers an unavailable database with 503
    return JSONResponse({"id": program.id, "name": program.name}, status_code=201)


def create_app(
    factory: Callable[[], Awaitable[Result[UserDatabases, StartupError]]] | None = None,
) -> FastAPI:
    """The app; ``factory`` builds its :class:`UserDatabases` at start-up (default: an
    in-memory credential store and ``Settings.from_env()``)."""
    app = FastAPI(title="per-user-db example", lifespan=lifespan(factory or in_memory))
    install(app)
    app.post("/signup", status_code=201)(signup)
    app.get("/me/programs")(list_programs)
    app.post("/me/programs", status_code=201)(add_program)
    return app


async def in_memory() -> Result[UserDatabases, StartupError]:
    match Settings.from_env():
        case Err(problem):
            return Err(StartupError(what="settings", error=problem))
        case Ok(settings):
            return Ok(UserDatabases(store=InMemoryCredentialStore(), settings=settings))


def main() -> None:
    try:
        uvicorn = importlib.import_module("uvicorn")  # optional: not a dependency
    except ImportError:
        sys.exit(
            "uvicorn is not installed: pip install uvicorn, then run this again, or serve "
            "the app with any ASGI server: examples.fastapi_app:create_app (a factory)"
        )
    port = int(os.environ.get("PORT", "8000"))
    uvicorn.run(create_app(), host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
