"""``create_database``: the user's database, created idempotently, with a token.

On Turso: derive the name, create the database (a 409 means it exists: read it and carry
on), mint a token, read its expiry from the token itself. Any step can fail and be
retried by calling again: the name is deterministic, so a retry finds the database the
failed call created and finishes the job. Embedded: a SQLite file under the data dir.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import anyio

from ._seams import create_database_doubles, current
from ._settings import Backend, Settings, SettingsError
from .core._names import DatabaseNameError
from .core._platform import AlreadyExists, DatabaseInfo, InvalidResponse, NotFound, PlatformError
from .core._result import Err, Ok, Result
from .core._tokens import decode_claims

if TYPE_CHECKING:
    from .turso._client import PlatformClient

__all__ = [
    "CreateDatabaseError",
    "CreateStep",
    "Credentials",
    "EmbeddedFailed",
    "ProvisionFailed",
    "UserIdRejected",
    "create_database",
    "issue_token",
]

log = logging.getLogger("per_user_db")
_announced: set[tuple[Backend, str]] = set()


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """How to reach one user's database. ``repr``/``str`` never show the token."""

    name: str
    url: str
    auth_token: str | None = field(default=None, repr=False)
    expires_at: dt.datetime | None = None
    """When the token expires (aware, UTC), read from its ``exp`` claim; None: never."""


class CreateStep(Enum):
    CREATE = "create the database"
    FIND = "read the existing database"
    ISSUE_TOKEN = "issue a token"  # noqa: S105 - a step name, not a secret


@dataclass(frozen=True, slots=True, kw_only=True)
class UserIdRejected:
    reason: str

    def __str__(self) -> str:
        return f"invalid user id: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddedFailed:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"cannot create the embedded database {self.path}: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionFailed:
    """A Platform API step failed. ``database_created`` says whether the database exists
    now (it does after a failed token): calling ``create_database`` again completes it."""

    name: str
    step: CreateStep
    error: PlatformError
    database_created: bool

    def __str__(self) -> str:
        if self.database_created:
            state = "the database exists but has no token yet; call again to finish"
        elif self.error.status is not None and 400 <= self.error.status < 500:
            state = "no database was created"
        else:
            # No answer (a timeout, a dropped connection), a server error or an unreadable
            # success: the request may have created the database. Only a retry can tell.
            state = "the database may or may not have been created; call again to finish"
        return f"could not {self.step.value} {self.name}: {self.error} ({state})"


CreateDatabaseError = SettingsError | UserIdRejected | EmbeddedFailed | ProvisionFailed


def _announce(settings: Settings) -> None:
    where = settings.organization or str(settings.data_dir)
    if (settings.backend, where) not in _announced:
        _announced.add((settings.backend, where))
        if settings.backend is Backend.TURSO:
            log.info("per-user databases on Turso, organization %s", settings.organization)
        else:
            log.info(
                "per-user databases are embedded SQLite files in %s "
                "(set TURSO_PLATFORM_API_TOKEN to use Turso)",
                settings.data_dir,
            )


def _create_file(path: str) -> None:
    # Opening creates the file; WAL lets readers and one writer work side by side.
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL").fetchall()
    finally:
        conn.close()


async def _embedded(name: str, settings: Settings) -> Result[Credentials, CreateDatabaseError]:
    path = (settings.data_dir / f"{name}.db").resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(_create_file, str(path))
    except (OSError, sqlite3.Error) as exc:
        return Err(EmbeddedFailed(path=str(path), reason=str(exc)))
    return Ok(Credentials(name=name, url=f"file:{path}", auth_token=None, expires_at=None))


async def _find_or_create(
    api: PlatformClient, name: str, group: str
) -> Result[DatabaseInfo, ProvisionFailed]:
    # A 409 whose follow-up GET 404s means the database vanished in between (deleted by
    # someone else): create it once more rather than fail.
    for _ in range(2):
        match await api.create_database(name, group=group):
            case Ok(info):
                return Ok(info)
            case Err(AlreadyExists()):
                pass
            case Err(error):
                return Err(
                    ProvisionFailed(
                        name=name, step=CreateStep.CREATE, error=error, database_created=False
                    )
                )
        match await api.get_database(name):
            case Ok(info):
                return Ok(info)
            case Err(NotFound()):
                continue
            case Err(error):
                return Err(
                    ProvisionFailed(
                        name=name, step=CreateStep.FIND, error=error, database_created=True
                    )
                )
    return Err(
        ProvisionFailed(
            name=name,
            step=CreateStep.FIND,
            error=NotFound(
                operation="get database",
                status=404,
                message="the database exists (409) but cannot be found; it is being deleted",
            ),
            database_created=False,
        )
    )


async def create_database(
    user_id: str,
    *,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
    client: PlatformClient | None = None,
) -> Result[Credentials, CreateDatabaseError]:
    """Create (or find) the database of ``user_id`` and issue a token for it.

    Idempotent: calling it again returns the same name and URL and never a second
    database; after a failure at any step, calling again finishes the job. Without
    ``settings`` they are read from the environment (:meth:`Settings.from_env`). Pass a
    ``client`` to reuse one Platform API session across many calls. ``now`` (aware) is
    the reference time for ``Retry-After`` dates and for refusing a token that is already
    expired; it defaults to the current time.
    """
    double = current(create_database_doubles)
    if double is not None:
        result: Result[Credentials, CreateDatabaseError] = await double(
            user_id, settings=settings, now=now, client=client
        )
        return result
    if settings is None:
        match Settings.from_env():
            case Err(problem):
                return Err(problem)
            case Ok(settings):
                pass
    try:
        name = settings.name_of(user_id)
    except DatabaseNameError as exc:
        return Err(UserIdRejected(reason=str(exc)))
    _announce(settings)
    if settings.backend is Backend.EMBEDDED:
        return await _embedded(name, settings)
    assert settings.api_token is not None
    assert settings.organization is not None
    if client is None:
        async with settings.platform_client(
            clock=(lambda: now) if now is not None else None
        ) as own:
            return await _provision(own, name, settings, now)
    return await _provision(client, name, settings, now)


async def issue_token(
    api: PlatformClient, *, name: str, url: str, settings: Settings, now: dt.datetime | None
) -> Result[Credentials, PlatformError]:
    """Mint a token for database ``name`` as ``settings`` say, its expiry read from it.

    A token that cannot be read, or that expired already, is an ``InvalidResponse``.
    """
    operation = "create database token"
    match await api.create_token(
        name, expires_in_days=settings.token_days, authorization=settings.authorization
    ):
        case Err() as failed:
            return failed
        case Ok(jwt):
            pass
    match decode_claims(jwt):
        case Err(invalid):
            return Err(InvalidResponse(operation=operation, status=200, message=invalid.reason))
        case Ok(claims):
            pass
    reference = now or dt.datetime.now(dt.UTC)
    if claims.expires_at is not None and claims.expires_at <= reference:
        return Err(
            InvalidResponse(
                operation=operation,
                status=200,
                message=f"the new token expired already ({claims.expires_at.isoformat()})",
            )
        )
    return Ok(Credentials(name=name, url=url, auth_token=jwt, expires_at=claims.expires_at))


async def _provision(
    api: PlatformClient, name: str, settings: Settings, now: dt.datetime | None
) -> Result[Credentials, CreateDatabaseError]:
    match await _find_or_create(api, name, settings.group):
        case Err(failed):
            return Err(failed)
        case Ok(info):
            pass
    match await issue_token(api, name=info.name, url=info.url, settings=settings, now=now):
        case Err(error):
            return Err(
                ProvisionFailed(
                    name=name, step=CreateStep.ISSUE_TOKEN, error=error, database_created=True
                )
            )
        case Ok(credentials):
            return Ok(credentials)
