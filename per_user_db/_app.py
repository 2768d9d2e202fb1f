"""``UserDatabases``: one object per app for the request path every app pays for.

Opening a user's database on every request used to cost a credential-store read and a
token decryption, a new TCP (in production, TLS) connection, and a schema check request
before the app's first query. The app object keeps what can be kept between requests:

* a pooled HTTP session per event loop (its own, closed with it): kept-alive connections;
* a short-lived credential cache (``credentials_ttl``), dropped when a token is refreshed
  or rejected, and never serving a token that expires within ``margin``;
* a verified-schema cache (``verified_ttl``), and the schema check deferred into the
  first query (``lazy``), so an up-to-date database costs no request of its own.

``async with dbs.scope(user_id) as db`` does what :func:`~per_user_db.user_database`
does (refresh, a rejected token replaced once mid-flight, close on error and
cancellation, :func:`~per_user_db.current_database` inside) at the cost of the app's own
queries alone.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import anyio

from ._cipher import TokenCipher
from ._connect import VerifiedCache, connect
from ._open import DEFAULT_TIMEOUT, open_database
from ._provision import Credentials
from ._settings import Settings, SettingsError
from ._store import DatabaseCredentialStore, StoreError
from ._transports._pool import SessionPool, shared_pool
from ._users import (
    DEFAULT_MARGIN,
    CredentialsError,
    NotProvisioned,
    get_valid_credentials,
    setup_user_database,
)
from .core._errors import ConnectError
from .core._result import Err, Ok, Result

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from ._database import Database
    from ._store import CredentialStore
    from ._transports._http import TokenProvider
    from ._users import SetupError
    from .core._migration_errors import MigrationError
    from .core._migrations import MigrationSet

__all__ = [
    "STORE_URL_VARIABLE",
    "NoDatabaseScope",
    "StartupError",
    "Unavailable",
    "UserDatabaseUnavailable",
    "UserDatabases",
    "current_database",
]

STORE_URL_VARIABLE = "PER_USER_DB_STORE_URL"

Unavailable: TypeAlias = CredentialsError | StoreError | ConnectError
"""Why a user's database could not be opened: no credentials (:class:`NotProvisioned`), a
token that could not be refreshed, the credential store, or connecting and migrating."""

_current: contextvars.ContextVar[Database | None] = contextvars.ContextVar(
    "per_user_db_current_database", default=None
)


class NoDatabaseScope(RuntimeError):
    """:func:`current_database` was called outside any database scope."""


class UserDatabaseUnavailable(Exception):
    """The user's database could not be opened. ``error`` says why (never with a token).

    ``status`` and ``public_message`` are what to tell an API client: 404 with "no
    database for this user" when the user was never set up, otherwise 503; the details
    (``str(error)``, which names the database URL) belong in the log.
    """

    def __init__(self, error: Unavailable) -> None:
        super().__init__(str(error))
        self.error: Unavailable = error

    @property
    def status(self) -> int:
        return 404 if isinstance(self.error, NotProvisioned) else 503

    @property
    def public_message(self) -> str:
        if self.status == 404:
            return "no database has been set up for this user"
        return "the user's database is unavailable; try again shortly"


def current_database() -> Database:
    """The database of the innermost enclosing scope (``dbs.scope`` or ``user_database``)."""
    db = _current.get()
    if db is None:
        raise NoDatabaseScope(
            "current_database() needs an enclosing 'async with dbs.scope(...)' or "
            "'async with user_database(...)'"
        )
    return db


@dataclass(frozen=True, slots=True, kw_only=True)
class StartupError:
    """:meth:`UserDatabases.from_env` could not start: ``what`` failed, and why."""

    what: str
    error: SettingsError | ConnectError | MigrationError | str

    def __str__(self) -> str:
        return f"{self.what}: {self.error}"


class _CredentialCache:
    """User id -> credentials, for ``ttl`` seconds, at most ``max_entries`` users."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Credentials]] = OrderedDict()

    def __repr__(self) -> str:
        return f"<credential cache: {len(self._entries)} users>"  # ids and tokens stay out

    def get(self, user_id: str, *, margin: dt.timedelta, now: dt.datetime) -> Credentials | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        stored_at, credentials = entry
        expiring = credentials.expires_at is not None and credentials.expires_at - margin <= now
        if self._clock() - stored_at >= self.ttl or expiring:
            del self._entries[user_id]
            return None
        self._entries.move_to_end(user_id)
        return credentials

    def put(self, user_id: str, credentials: Credentials) -> None:
        if self.ttl <= 0:
            return
        self._entries[user_id] = (self._clock(), credentials)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def drop(self, user_id: str) -> None:
        self._entries.pop(user_id, None)


class UserDatabases:
    """Every user's database, for one app. Build it once at start-up, close it at shutdown.

    ``store`` holds the credentials; ``settings`` says where databases live (default:
    ``Settings.from_env()`` when a token must be minted). ``lazy`` (default) sends no
    schema check of its own: it rides in each scope's first query (see
    ``connect(lazy=True)``); ``lazy=False`` checks when the scope opens. ``verified_ttl``
    (seconds, default 60; 0 turns it off) skips the check altogether for a database this
    object verified that recently: a schema changed by other means in that window goes
    unnoticed until then. ``credentials_ttl`` (default 60; 0 off) serves a user's
    credentials from memory, never a token that expires within ``margin``.
    ``allow_ahead`` accepts a database that newer code already migrated further (during
    a rolling deploy, with migrations that only add), instead of answering 503.
    """

    def __init__(
        self,
        *,
        store: CredentialStore,
        settings: Settings | None = None,
        migrations: MigrationSet | None = None,
        lazy: bool = True,
        verified_ttl: float = 60.0,
        credentials_ttl: float = 60.0,
        allow_ahead: bool = False,
        margin: dt.timedelta = DEFAULT_MARGIN,
        request_timeout: float = DEFAULT_TIMEOUT,
        max_cached_users: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if verified_ttl < 0 or credentials_ttl < 0:
            raise ValueError("verified_ttl and credentials_ttl must not be negative")
        self.store = store
        self.settings = settings
        self._migrations = migrations
        self._lazy = lazy
        self._allow_ahead = allow_ahead
        self._migrate = True
        self._verified = (
            VerifiedCache(verified_ttl, max_entries=max_cached_users, clock=clock)
            if verified_ttl
            else None
        )
        self._credentials = _CredentialCache(credentials_ttl, max_cached_users, clock)
        self._margin = margin
        self._timeout = request_timeout
        self._pool = SessionPool()
        self._owns_pool = True
        self._owned: Database | None = None  # the store's database, when from_env opened it
        self._closed = False

    @classmethod
    def _for_one_scope(
        cls,
        *,
        store: CredentialStore,
        settings: Settings | None,
        margin: dt.timedelta,
        migrate: bool,
        cache: VerifiedCache | None,
    ) -> UserDatabases:
        """What :func:`~per_user_db.user_database` uses: no caches of its own, the
        schema checked on opening, and the library's shared session."""
        one = cls(
            store=store,
            settings=settings,
            lazy=False,
            verified_ttl=0,
            credentials_ttl=0,
            margin=margin,
        )
        one._migrate, one._verified = migrate, cache
        one._pool, one._owns_pool = shared_pool(), False
        return one

    def __repr__(self) -> str:
        return f"<UserDatabases store={self.store!r} {'closed' if self._closed else 'open'}>"

    @classmethod
    async def from_env(
        cls,
        *,
        store: CredentialStore | None = None,
        env: Mapping[str, str] | None = None,
        lazy: bool = True,
        verified_ttl: float = 60.0,
        credentials_ttl: float = 60.0,
        migrations: MigrationSet | None = None,
    ) -> Result[UserDatabases, StartupError]:
        """Settings from the environment, and (unless ``store`` is given) a
        :class:`DatabaseCredentialStore` in the database at ``PER_USER_DB_STORE_URL``
        (a ``file:`` path or a Turso URL with ``?authToken=``) with tokens encrypted by
        ``PER_USER_DB_TOKEN_KEY``. The store's database is closed with the object."""
        source = os.environ if env is None else env
        match Settings.from_env(source):
            case Err(settings_error):
                return Err(StartupError(what="settings", error=settings_error))
            case Ok(settings):
                pass
        owned: Database | None = None
        if store is None:
            match TokenCipher.from_env(source):
                case Err(cipher_error):
                    return Err(StartupError(what="token key", error=cipher_error))
                case Ok(cipher):
                    pass
            url = source.get(STORE_URL_VARIABLE, "").strip()
            if not url:
                return Err(
                    StartupError(
                        what=STORE_URL_VARIABLE,
                        error="required: the database that keeps users' credentials "
                        "(e.g. file:auth.db), or pass store=",
                    )
                )
            match await open_database(url):
                case Err(open_error):
                    return Err(StartupError(what="credential store", error=open_error))
                case Ok(owned):
                    pass
            match await DatabaseCredentialStore.open(owned, cipher):
                case Err(store_error):
                    await owned.close()
                    return Err(StartupError(what="credential store", error=store_error))
                case Ok(opened):
                    store = opened
        app = cls(
            store=store,
            settings=settings,
            migrations=migrations,
            lazy=lazy,
            verified_ttl=verified_ttl,
            credentials_ttl=credentials_ttl,
        )
        app._owned = owned
        return Ok(app)

    async def setup(self, user_id: str) -> Result[Credentials, SetupError | StoreError]:
        """Create, save and migrate ``user_id``'s database (sign-up); safe to retry.
        See :func:`~per_user_db.setup_user_database`."""
        result = await setup_user_database(
            user_id, store=self.store, settings=self.settings, margin=self._margin
        )
        if isinstance(result, Ok):
            self._credentials.put(user_id, result.value)
        return result

    async def credentials(self, user_id: str) -> Result[Credentials, Unavailable]:
        """``user_id``'s credentials with a token valid for ``margin`` more: from memory
        within ``credentials_ttl``, else from the store (refreshed if need be)."""
        now = dt.datetime.now(dt.UTC)
        cached = self._credentials.get(user_id, margin=self._margin, now=now)
        if cached is not None:
            return Ok(cached)
        match await get_valid_credentials(
            user_id, store=self.store, margin=self._margin, settings=self.settings
        ):
            case Ok(credentials):
                self._credentials.put(user_id, credentials)
                return Ok(credentials)
            case Err(error):
                return Err(error)

    @asynccontextmanager
    async def scope(self, user: str | Credentials) -> AsyncIterator[Database]:
        """The user's database for the body of an ``async with``, reachable inside through
        :func:`current_database`; closed on the way out whatever happens.

        Raises :class:`UserDatabaseUnavailable` when it cannot be opened; exceptions of
        the body propagate unchanged. With ``lazy``, a failing migration surfaces from
        the first query as :class:`~per_user_db.MigrationFailedError`, before any of the
        body's statements ran.
        """
        if self._closed:
            raise RuntimeError("this UserDatabases is closed")
        if isinstance(user, Credentials):
            credentials, provider = user, None
        else:
            match await self.credentials(user):
                case Err(error):
                    raise UserDatabaseUnavailable(error)
                case Ok(credentials):
                    pass
            provider = self._replacer(user, credentials)
        match await connect(
            credentials.url,
            credentials.auth_token,
            migrate=self._migrate,
            migrations=self._migrations,
            allow_ahead=self._allow_ahead,
            lazy=self._lazy,
            cache=self._verified,
            request_timeout=self._timeout,
            session=self._pool.session() if credentials.url.startswith(_REMOTE) else None,
            token_provider=provider,
        ):
            case Err(connect_error):
                raise UserDatabaseUnavailable(connect_error)
            case Ok(db):
                pass
        async with _entered(db):
            yield db

    def _replacer(self, user_id: str, credentials: Credentials) -> TokenProvider:
        in_use = [credentials.auth_token]

        async def provider() -> str | None:
            # The server refused the token in use (rotated): forget the cached one and
            # replace it, once however many requests of however many scopes ask.
            self._credentials.drop(user_id)
            refreshed = await get_valid_credentials(
                user_id, store=self.store, settings=self.settings, rejected_token=in_use[0]
            )
            if isinstance(refreshed, Err):
                return None
            self._credentials.put(user_id, refreshed.value)
            in_use[0] = refreshed.value.auth_token
            return in_use[0]

        return provider

    def forget(self, user_id: str) -> None:
        """Drop what is cached of ``user_id`` (after rotating or deleting its database)."""
        self._credentials.drop(user_id)

    async def aclose(self) -> None:
        """Close the pooled connections (of the running loop) and the credential store's
        database if :meth:`from_env` opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_pool:
            await self._pool.aclose()
        if self._owned is not None:
            await self._owned.close()

    async def __aenter__(self) -> UserDatabases:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


_REMOTE = ("libsql://", "https://", "http://")


@asynccontextmanager
async def _entered(db: Database) -> AsyncIterator[None]:
    """Make ``db`` the current database for the block, and close it after, even when the
    block is cancelled."""
    token = _current.set(db)
    try:
        yield
    finally:
        _current.reset(token)
        with anyio.CancelScope(shield=True):
            await db.close()
