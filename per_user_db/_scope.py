"""``async with user_database(user_id, store=store) as db:``, the one-call convenience.

It does what :meth:`UserDatabases.scope <per_user_db.UserDatabases.scope>` does, for a
single scope: credentials from the store (refreshed if they expire soon), the schema
checked as the database opens (one request, or none with a fresh ``cache``), the library's
shared session, :func:`current_database` inside, and the database closed on the way out.
An app that opens databases on every request should build one
:class:`~per_user_db.UserDatabases` instead: it keeps credentials and verified schemas
between requests.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ._app import NoDatabaseScope, UserDatabases, UserDatabaseUnavailable, current_database
from ._provision import Credentials
from ._store import InMemoryCredentialStore
from ._users import DEFAULT_MARGIN

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import AsyncIterator

    from ._connect import VerifiedCache
    from ._database import Database
    from ._settings import Settings
    from ._store import CredentialStore

__all__ = ["NoDatabaseScope", "UserDatabaseUnavailable", "current_database", "user_database"]


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
    if store is None and not isinstance(user, Credentials):
        raise TypeError("user_database(user_id) needs store=; or pass Credentials")
    one = UserDatabases._for_one_scope(
        store=store if store is not None else InMemoryCredentialStore(),
        settings=settings,
        margin=margin,
        migrate=migrate,
        cache=cache,
    )
    async with one.scope(user) as db:
        yield db
