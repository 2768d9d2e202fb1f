"""Turso Platform API values, sans I/O: response bodies in, typed values or errors out.

Field casing follows the API exactly (``Name``/``DbId``/``Hostname`` next to
``primaryRegion`` and ``block_reads``); a body that does not match the spec is an
:class:`InvalidResponse`, never a ``KeyError`` somewhere later. Retry timing
(``Retry-After``, backoff) is computed here too, from values the caller passes in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from ._result import Err, Ok, Result
from ._tokens import SecretToken

__all__ = [
    "AlreadyExists",
    "BadRequest",
    "DatabaseInfo",
    "Forbidden",
    "GroupInfo",
    "InvalidResponse",
    "NetworkError",
    "NotFound",
    "PlanInfo",
    "PlatformError",
    "PlatformFailure",
    "QuotaExceeded",
    "RateLimited",
    "ServerError",
    "Timeout",
    "Unauthorized",
    "UsageInfo",
    "backoff_delay",
    "error_for_status",
    "parse_database",
    "parse_database_list",
    "parse_group",
    "parse_plans",
    "parse_token",
    "parse_usage",
    "retry_after_seconds",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformFailure:
    """Base of the Platform API's error values: which operation, the HTTP status (None
    when there was no response) and the server's own message. Never holds a token."""

    operation: str
    status: int | None
    message: str
    retry_after: float | None = None
    retryable: ClassVar[bool] = False

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"{type(self).__name__} during {self.operation} ({status}): {self.message}"


class NotFound(PlatformFailure):
    __slots__ = ()


class AlreadyExists(PlatformFailure):
    __slots__ = ()


class BadRequest(PlatformFailure):
    __slots__ = ()


class Unauthorized(PlatformFailure):
    __slots__ = ()


class Forbidden(PlatformFailure):
    __slots__ = ()


class QuotaExceeded(PlatformFailure):
    __slots__ = ()


class RateLimited(PlatformFailure):
    __slots__ = ()
    retryable: ClassVar[bool] = True


class ServerError(PlatformFailure):
    __slots__ = ()
    retryable: ClassVar[bool] = True


class NetworkError(PlatformFailure):
    __slots__ = ()
    retryable: ClassVar[bool] = True


class Timeout(PlatformFailure):
    __slots__ = ()
    retryable: ClassVar[bool] = True


class InvalidResponse(PlatformFailure):
    __slots__ = ()


PlatformError = (
    NotFound
    | AlreadyExists
    | BadRequest
    | Unauthorized
    | Forbidden
    | QuotaExceeded
    | RateLimited
    | ServerError
    | NetworkError
    | Timeout
    | InvalidResponse
)

_BY_STATUS: dict[int, type[PlatformFailure]] = {
    400: BadRequest,
    401: Unauthorized,
    402: QuotaExceeded,
    403: Forbidden,
    404: NotFound,
    409: AlreadyExists,
    429: RateLimited,
}


def error_for_status(
    status: int, message: str, operation: str, *, retry_after: float | None = None
) -> PlatformError:
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequest)
    error = kind(operation=operation, status=status, message=message, retry_after=retry_after)
    assert isinstance(error, PlatformFailure)
    return error  # type: ignore[return-value]  # every kind above is a PlatformError


def retry_after_seconds(header: str | None, *, now: dt.datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date."""
    if not header:
        return None
    text = header.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    # The IMF-fixdate form HTTP servers send ("Sun, 06 Nov 1994 08:49:37 GMT");
    # email.utils would parse more forms but imports socket, which the core may not.
    try:
        when = dt.datetime.strptime(text, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int, *, base: float, cap: float, unit: float) -> float:
    """Exponential backoff with full jitter: ``unit`` (0-1, random) of the capped delay."""
    return unit * min(cap, base * 2.0 ** (attempt - 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseInfo:
    name: str
    db_id: str
    hostname: str
    group: str | None = None
    primary_region: str | None = None
    block_reads: bool = False
    block_writes: bool = False
    delete_protection: bool = False

    @property
    def url(self) -> str:
        """The libSQL URL, built from ``Hostname`` exactly as the API returned it."""
        return f"libsql://{self.hostname}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupInfo:
    name: str
    uuid: str | None
    primary: str | None
    locations: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanInfo:
    name: str
    database_quota: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageInfo:
    databases: int
    storage_bytes: int | None
    rows_read: int | None
    rows_written: int | None


def _invalid(operation: str, what: str) -> Err[PlatformError]:
    return Err(InvalidResponse(operation=operation, status=200, message=what))


def _string(obj: dict[str, object], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _int(obj: dict[str, object], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _database(raw: object, operation: str) -> Result[DatabaseInfo, PlatformError]:
    if not isinstance(raw, dict):
        return _invalid(operation, "a database entry is not an object")
    name, db_id, hostname = _string(raw, "Name"), _string(raw, "DbId"), _string(raw, "Hostname")
    if name is None or db_id is None or hostname is None:
        return _invalid(operation, "a database lacks Name, DbId or Hostname")
    return Ok(
        DatabaseInfo(
            name=name,
            db_id=db_id,
            hostname=hostname,
            group=_string(raw, "group"),
            primary_region=_string(raw, "primaryRegion"),
            block_reads=raw.get("block_reads") is True,
            block_writes=raw.get("block_writes") is True,
            delete_protection=raw.get("delete_protection") is True,
        )
    )


def parse_database(body: object, operation: str) -> Result[DatabaseInfo, PlatformError]:
    """``{"database": {...}}`` of create and get."""
    if not isinstance(body, dict) or "database" not in body:
        return _invalid(operation, "expected an object with a 'database' field")
    return _database(body["database"], operation)


def parse_database_list(
    body: object, operation: str
) -> Result[tuple[list[DatabaseInfo], str | None], PlatformError]:
    """``{"databases": [...], "pagination": {"next": cursor | null}}`` (pagination optional)."""
    if not isinstance(body, dict) or not isinstance(body.get("databases"), list):
        return _invalid(operation, "expected an object with a 'databases' list")
    found: list[DatabaseInfo] = []
    for raw in body["databases"]:
        match _database(raw, operation):
            case Ok(info):
                found.append(info)
            case Err() as error:
                return error
    pagination = body.get("pagination")
    cursor = _string(pagination, "next") if isinstance(pagination, dict) else None
    return Ok((found, cursor))


def parse_token(body: object, operation: str) -> Result[str, PlatformError]:
    if not isinstance(body, dict) or _string(body, "jwt") is None:
        return _invalid(operation, "expected an object with a 'jwt' string")
    return Ok(SecretToken(body["jwt"]))


def parse_group(body: object, operation: str) -> Result[GroupInfo, PlatformError]:
    group = body.get("group") if isinstance(body, dict) else None
    if not isinstance(group, dict) or _string(group, "name") is None:
        return _invalid(operation, "expected an object with a 'group' object")
    locations = group.get("locations")
    return Ok(
        GroupInfo(
            name=str(group["name"]),
            uuid=_string(group, "uuid"),
            primary=_string(group, "primary"),
            locations=tuple(x for x in locations if isinstance(x, str))
            if isinstance(locations, list)
            else (),
        )
    )


def parse_plans(body: object, operation: str) -> Result[list[PlanInfo], PlatformError]:
    plans = body.get("plans") if isinstance(body, dict) else None
    if not isinstance(plans, list):
        return _invalid(operation, "expected an object with a 'plans' list")
    found = []
    for plan in plans:
        if not isinstance(plan, dict) or _string(plan, "name") is None:
            return _invalid(operation, "a plan lacks its name")
        quotas = plan.get("quotas")
        quota = _int(quotas, "databases") if isinstance(quotas, dict) else None
        found.append(PlanInfo(name=str(plan["name"]), database_quota=quota))
    return Ok(found)


def parse_usage(body: object, operation: str) -> Result[UsageInfo, PlatformError]:
    organization = body.get("organization") if isinstance(body, dict) else None
    usage = organization.get("usage") if isinstance(organization, dict) else None
    if not isinstance(usage, dict) or _int(usage, "databases") is None:
        return _invalid(operation, "expected organization.usage.databases")
    return Ok(
        UsageInfo(
            databases=_int(usage, "databases") or 0,
            storage_bytes=_int(usage, "storage_bytes"),
            rows_read=_int(usage, "rows_read"),
            rows_written=_int(usage, "rows_written"),
        )
    )
