"""``async with user_database(user_id, store=store) as db:`` and ``current_database()``.

The scope gets valid credentials (refreshing the token if it expires soon), connects with
migrations, runs the body with the database reachable through :func:`current_database`
(a context variable: it follows awaits and tasks started inside), and always closes the
database, on success, on an exception and on cancellation. Only a failure to get
credentials or to open/migrate raises :class:`UserDatabaseUnavailable`; an exception from
the body propagates unchanged.
"""

from __future__ import annotations

import contextvars
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from ._connect import VerifiedCache, connect
from ._provision import Credentials
from ._users import DEFAULT_MARGIN, get_valid_credentials
from .core._result import Err, Ok

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import AsyncIterator

    from ._database import Database
    from ._settings import Settings
    from ._store import CredentialStore

__all__ = ["NoDatabaseScope", "UserDatabaseUnavailable", "current_database", "user_database"]

_current: contextvars.ContextVar[Database | None] = contextvars.ContextVar(
    "per_user_db_current_database", default=None
)


class NoDatabaseScope(RuntimeError):
    """:func:`current_database` was called outside any ``user_database`` scope."""


class UserDatabaseUnavailable(Exception):
    """The user's database could not be opened; ``error`` is the error value (getting
    credentials, connecting or migrating). Never carries a token."""

    def __init__(self, error: object) -> None:
        super().__init__(str(error))
        self.error = error


def current_database() -> Database:
    """The database of the innermost enclosing ``user_database`` scope."""
    db = _current.get()
    if db is None:
        raise NoDatabaseScope(
            "current_database() needs an enclosing 'async with user_database(...)' scope"
        )
    return db


@asynccontextmanager
async def user_database(
    user: str | Credentials,
    *,
    store: CredentialStore | None = None,
    settings: Settings | None = None,
    margin: dt.timedelta = DEFAULT_MARGIN,
    migrate: bool = True,
    cache: VerifiedCache | None = None,
) -> AsyncIterator[Database]:
    """Open the database of ``user`` for the body of an ``async with``.

    ``user`` is a user id (then ``store`` is required: the token is refreshed from it as
    needed, and a token the server rejects is replaced once, mid-flight) or
    :class:`Credentials` used as they are.
    """
    if isinstance(user, Credentials):
        credentials = user
        provider = None
    else:
        if store is None:
            raise TypeError("user_database(user_id) needs store=; or pass Credentials")
        user_id, known_store = user, store
        match await get_valid_credentials(
            user_id, store=known_store, margin=margin, settings=settings
        ):
            case Err(error):
                raise UserDatabaseUnavailable(error)
            case Ok(credentials):
                pass

        in_use = [credentials.auth_token]

        async def provider() -> str | None:
            # The server refused the token in use: replace it (once, however many requests
            # of however many scopes ask at the same time).
            refreshed = await get_valid_credentials(
                user_id, store=known_store, settings=settings, rejected_token=in_use[0]
            )
            if isinstance(refreshed, Err):
                return None
            in_use[0] = refreshed.value.auth_token
            return in_use[0]

    match await connect(
        credentials.url,
        credentials.auth_token,
        migrate=migrate,
        cache=cache,
        token_provider=provider,
    ):
        case Err(connect_error):
            raise UserDatabaseUnavailable(connect_error)
        case Ok(db):
            pass
    token = _current.set(db)
    try:
        yield db
    finally:
        _current.reset(token)
        # Closing must finish even when the scope is being cancelled.
        with anyio.CancelScope(shield=True):
            await db.close()
