"""Per-user flows: set a user up, keep their token fresh, sweep tokens that expire soon.

All return ``Ok``/``Err`` and are idempotent. Tokens are refreshed *before* they expire
(``margin``, 7 days by default), and concurrent callers for one user share one refresh
(single-flight): a hundred requests that find the same token expiring mint one token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio

from ._connect import connect
from ._provision import CreateDatabaseError, Credentials, create_database, issue_token
from ._settings import Backend, Settings, SettingsError
from ._store import StoreCorrupt, StoredCredentials
from .core._errors import ConnectError
from .core._result import Err, Ok, Result

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._store import CredentialStore, StoreError
    from .core._platform import PlatformError
    from .turso._client import PlatformClient

__all__ = [
    "DEFAULT_MARGIN",
    "CredentialsError",
    "NotProvisioned",
    "RefreshFailed",
    "RefreshReport",
    "SetupError",
    "get_valid_credentials",
    "refresh_tokens",
    "setup_user_database",
]

log = logging.getLogger("per_user_db")
DEFAULT_MARGIN = dt.timedelta(days=7)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class NotProvisioned:
    """The store has no database for this user: call ``setup_user_database``."""

    user_id: str

    def __str__(self) -> str:
        return f"user {self.user_id!r} has no database yet; call setup_user_database"


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshFailed:
    """A new token could not be issued, and the old one has expired."""

    user_id: str
    error: PlatformError | SettingsError | StoreError | str

    def __str__(self) -> str:
        return f"could not refresh the token of user {self.user_id!r}: {self.error}"


SetupError = CreateDatabaseError | ConnectError
CredentialsError = NotProvisioned | RefreshFailed | SettingsError


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


def _settings(settings: Settings | None) -> Result[Settings, SettingsError]:
    return Ok(settings) if settings is not None else Settings.from_env()


# --- single flight -------------------------------------------------------------------------

# Keyed by event loop too: a future belongs to one loop, and a process may run several.
_inflight: dict[tuple[object, ...], asyncio.Future[Any]] = {}


async def _single_flight(key: tuple[object, ...], work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` once for concurrent callers with the same ``key``; all get its result.

    The first caller does the work in its own task (no task is spawned); the others wait
    for it and share its result, or its exception. If that first caller is cancelled, a
    waiter takes over.
    """
    key = (id(asyncio.get_running_loop()), *key)
    while True:
        pending = _inflight.get(key)
        if pending is None:
            break
        try:
            return cast("T", await asyncio.shield(pending))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if pending.cancelled() and task is not None and not task.cancelling():
                continue  # the one doing the work was cancelled: do it ourselves
            raise
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    _inflight[key] = future
    try:
        result = await work()
    except asyncio.CancelledError:
        future.cancel()  # a waiter takes over
        raise
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: nobody may be waiting
        raise
    else:
        future.set_result(result)
        return result
    finally:
        if _inflight.get(key) is future:
            del _inflight[key]


# --- flows ---------------------------------------------------------------------------------


def _expires_within(credentials: Credentials, margin: dt.timedelta, now: dt.datetime) -> bool:
    return credentials.expires_at is not None and credentials.expires_at - margin <= now


async def _mint(
    credentials: Credentials,
    settings: Settings,
    client: PlatformClient | None,
    now: dt.datetime,
) -> Result[Credentials, PlatformError]:
    if client is not None:
        return await issue_token(
            client, name=credentials.name, url=credentials.url, settings=settings, now=now
        )
    async with settings.platform_client() as own:
        return await issue_token(
            own, name=credentials.name, url=credentials.url, settings=settings, now=now
        )


async def get_valid_credentials(
    user_id: str,
    *,
    store: CredentialStore,
    margin: dt.timedelta = DEFAULT_MARGIN,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
    client: PlatformClient | None = None,
    force_refresh: bool = False,
    rejected_token: str | None = None,
) -> Result[Credentials, CredentialsError | StoreError]:
    """The user's credentials, with a token that is valid for at least ``margin`` more.

    A token expiring within ``margin`` is replaced (one Platform API call however many
    callers ask at once) and the new one saved. If refreshing fails while the old token is
    still valid, the old one is returned and a warning logged; if it has expired,
    ``Err(RefreshFailed)``. ``force_refresh`` replaces the token whatever its expiry.
    ``rejected_token`` is a token the server refused (rotated): it is replaced, unless the
    store already holds another one (someone replaced it first). Embedded databases have no
    token and never need one.
    """
    moment = _now(now)
    match await store.load(user_id):
        case Err(error):
            return Err(error)
        case Ok(None):
            return Err(NotProvisioned(user_id=user_id))
        case Ok(found):
            assert found is not None
            current = found.credentials
    if current.auth_token is None:
        return Ok(current)
    if current.auth_token != rejected_token:
        rejected_token = None  # already replaced by someone else: only expiry matters now
    replacing = rejected_token is not None
    if not (force_refresh or replacing or _expires_within(current, margin, moment)):
        return Ok(current)

    async def refresh() -> Result[Credentials, CredentialsError | StoreError]:
        # Another caller or process may have replaced it meanwhile: read again first.
        if not force_refresh:
            reread = await store.load(user_id)
            if isinstance(reread, Ok) and reread.value is not None:
                latest = reread.value.credentials
                fresh_enough = not _expires_within(latest, margin, moment)
                if latest.auth_token and latest.auth_token != rejected_token and fresh_enough:
                    return Ok(latest)
        match _settings(settings):
            case Err(problem):
                failure: PlatformError | SettingsError | StoreError | str = problem
            case Ok(resolved) if resolved.backend is Backend.EMBEDDED:
                failure = "no TURSO_PLATFORM_API_TOKEN: tokens cannot be issued"
            case Ok(resolved):
                match await _mint(current, resolved, client, moment):
                    case Ok(fresh):
                        match await store.save(user_id, fresh, now=moment):
                            case Ok(_):
                                return Ok(fresh)
                            case Err(store_error):
                                failure = store_error
                    case Err(mint_error):
                        failure = mint_error
        still_valid = current.expires_at is None or current.expires_at > moment
        if still_valid and not (force_refresh or replacing):
            log.warning(
                "could not refresh the token of user %r (%s); using the current one, "
                "valid until %s",
                user_id,
                failure,
                current.expires_at.isoformat() if current.expires_at else "never expires",
            )
            return Ok(current)
        return Err(RefreshFailed(user_id=user_id, error=failure))

    # Forced and expiry-driven refreshes are different questions: separate flights.
    kind = "forced" if force_refresh else ("rejected" if replacing else "expiring")
    return await _single_flight((id(store), user_id, kind), refresh)


async def setup_user_database(
    user_id: str,
    *,
    store: CredentialStore,
    settings: Settings | None = None,
    margin: dt.timedelta = DEFAULT_MARGIN,
    now: dt.datetime | None = None,
) -> Result[Credentials, SetupError | StoreError]:
    """Create (or find) the user's database, save its credentials, and migrate it.

    Safe to call again after a failure at any step: the database name is deterministic,
    creating is idempotent, saving is an upsert and migrating is a no-op when done. Once
    set up, a second call mints no token unless the stored one expires within
    ``margin``; it only checks the schema.
    """
    moment = _now(now)
    match await store.load(user_id):
        case Err(error):
            return Err(error)
        case Ok(found):
            stored = found.credentials if found is not None else None
    if stored is None or _expires_within(stored, margin, moment):
        match await create_database(user_id, settings=settings, now=now):
            case Err(failed):
                return Err(failed)
            case Ok(created):
                pass
        # Saved before migrating: a migration that fails leaves the user with usable
        # credentials and a database that every connect() will try to bring up to date.
        match await store.save(user_id, created, now=moment):
            case Err(save_error):
                return Err(save_error)
            case Ok(_):
                stored = created
    match await connect(stored.url, stored.auth_token, migrate=True):
        case Err(connect_error):
            return Err(connect_error)
        case Ok(db):
            await db.close()
    return Ok(stored)


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshReport:
    refreshed: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    """``(user_id, reason)``: no new token, and the old one has expired."""
    skipped: tuple[str, ...]
    """Already fresh, or kept the old (still valid) token after a failed refresh."""


async def refresh_tokens(
    store: CredentialStore,
    *,
    within: dt.timedelta = DEFAULT_MARGIN,
    concurrency: int = 8,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
) -> Result[RefreshReport, StoreError | SettingsError]:
    """Refresh every stored token that expires within ``within`` (a daily job).

    At most ``concurrency`` refreshes run at once, over one Platform API session.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    moment = _now(now)
    match _settings(settings):
        case Err(problem):
            return Err(problem)
        case Ok(resolved):
            pass
    match await store.expiring(moment + within):
        case Err(error):
            return Err(error)
        case Ok(due):
            pass
    refreshed: list[str] = []
    failed: list[tuple[str, str]] = []
    skipped: list[str] = []
    queue: list[StoredCredentials] = []
    for entry in due:
        if isinstance(entry, StoreCorrupt):
            failed.append((entry.user_id, str(entry)))
        else:
            queue.append(entry)
    work = iter(queue)
    client = resolved.platform_client() if resolved.backend is Backend.TURSO else None

    async def worker() -> None:
        # A fixed number of workers share one iterator: bounded however long the list.
        for entry in work:
            before = entry.credentials
            result = await get_valid_credentials(
                entry.user_id,
                store=store,
                margin=within,
                settings=resolved,
                now=moment,
                client=client,
            )
            match result:
                case Ok(after) if after.auth_token != before.auth_token:
                    refreshed.append(entry.user_id)
                case Ok(_):
                    skipped.append(entry.user_id)
                case Err(error):
                    failed.append((entry.user_id, str(error)))

    try:
        async with anyio.create_task_group() as group:
            for _ in range(min(concurrency, len(queue))):
                group.start_soon(worker)
    finally:
        if client is not None:
            await client.close()
    return Ok(
        RefreshReport(
            refreshed=tuple(sorted(refreshed)),
            failed=tuple(sorted(failed)),
            skipped=tuple(sorted(skipped)),
        )
    )
