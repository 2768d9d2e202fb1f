"""Glue for web frameworks, each in its own module so none is a dependency of the library:

* :mod:`per_user_db.integrations.fastapi` — a lifespan helper, a dependency that yields the
  user's database, and exception handlers (FastAPI, ``pip install 'per-user-db[fastapi]'``);
* :mod:`per_user_db.integrations.aiohttp` — a cleanup context and a middleware
  (aiohttp.web, which the library already depends on).

Both answer the same way when a user's database cannot be used: 404 with
``{"error": "no database has been set up for this user"}`` for a user who was never set
up, 503 for anything temporary (a store, a token, the database server, a failed
migration), always with a body safe to show an API client; the details go to the
``per_user_db`` logger.
"""

from __future__ import annotations

import logging

from .._deferred import MigrationFailedError
from .._transports._base import DatabaseError

__all__ = ["TEMPORARY_CODES", "is_temporary", "log"]

log = logging.getLogger("per_user_db")

TEMPORARY_CODES = frozenset(
    {
        "NETWORK_ERROR",
        "TIMEOUT",
        "SERVER_ERROR",
        "RATE_LIMITED",
        "MIGRATION_FAILED",
        # The token was refused even after one refresh, the database is blocked, or it
        # is gone (deleted meanwhile): the user's database is not usable now either.
        "UNAUTHORIZED",
        "FORBIDDEN",
        "NOT_FOUND",
    }
)
"""Codes of a :class:`~per_user_db.DatabaseError` that mean "the database is unavailable"
rather than "this SQL failed": the glue answers 503 for them (details in the log)."""

UNAVAILABLE_MESSAGE = "the user's database is unavailable; try again shortly"


def is_temporary(error: BaseException) -> bool:
    """Whether ``error``, raised while a request used a user's database, means the
    database is unavailable for now (a 503), not that the request's SQL failed."""
    if isinstance(error, MigrationFailedError):
        return True
    return isinstance(error, DatabaseError) and error.code in TEMPORARY_CODES
