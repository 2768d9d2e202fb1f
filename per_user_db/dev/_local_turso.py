"""The local Turso's rules: databases, groups and tokens, as ``Ok``/``Err`` results.

:class:`LocalTurso` is what the Platform API handlers (``_platform.py``) call and what a
test may call directly. It keeps the :class:`~._registry.Registry` and the ``.db`` files
of the protocol server in step: one lock serializes every change, and the registry is
saved before a change is reported done.

:func:`token_authorizer` is the SQL protocol's ``authorize`` hook: a request may use a
database if its bearer token is signed by this server, unexpired, minted for that
database (or its group) and not rotated since.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from per_user_db.core._names import MAX_NAME_LENGTH, is_valid_database_name
from per_user_db.core._result import Err, Ok, Result
from per_user_db.dev._registry import (
    DEFAULT_GROUP,
    LOCAL_LOCATION,
    DatabaseRecord,
    GroupRecord,
    iso_timestamp,
)
from per_user_db.dev._state import Access
from per_user_db.dev._tokens import (
    INVALID_EXPIRATION,
    TokenClaims,
    access_for,
    parse_expiration,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from per_user_db.dev._faults import Faults
    from per_user_db.dev._registry import Registry
    from per_user_db.dev._server import ServerAddress
    from per_user_db.dev._state import Authorize, ProtocolServerState
    from per_user_db.dev._tls import LocalCertificates

__all__ = [
    "DEFAULT_MAX_DATABASES",
    "LocalTurso",
    "LocalTursoError",
    "LocalTursoErrorCode",
    "token_authorizer",
]

_log = logging.getLogger(__name__)

DEFAULT_MAX_DATABASES = 10_000
"""Turso's Scaler plan limit, the quota the original design assumed."""


class LocalTursoErrorCode(enum.Enum):
    """The kinds of refusal, each with its HTTP status."""

    BAD_REQUEST = 400
    QUOTA_EXCEEDED = 402
    NOT_FOUND = 404
    CONFLICT = 409


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalTursoError:
    """A refusal of the local Platform API; ``message`` is the body's ``error`` text."""

    code: LocalTursoErrorCode
    message: str

    @property
    def status(self) -> int:
        return self.code.value

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


def _not_found(name: str) -> Err[LocalTursoError]:
    # Turso's wording, from its OpenAPI description.
    return _refuse(
        LocalTursoErrorCode.NOT_FOUND,
        f"could not find database with name {name}: record not found",
    )


def _refuse(code: LocalTursoErrorCode, message: str) -> Err[LocalTursoError]:
    return Err(LocalTursoError(code=code, message=message))


_GROUP_NOT_FOUND = LocalTursoError(code=LocalTursoErrorCode.NOT_FOUND, message="group not found")


@dataclass(eq=False, slots=True, kw_only=True)
class LocalTurso:
    """The state of one local Turso app: read it with :func:`local_turso`.

    ``api_token`` is the Platform API token (``Authorization: Bearer …``); the API's
    base URL is the served address's ``url`` (``http://127.0.0.1:PORT``, or ``https://``
    in TLS mode; the official JS client wants ``url + "/v1/"``). ``certificates`` is
    ``None`` unless the app serves HTTPS (``tls=True``): then clients must trust its
    ``ca_path``.
    """

    org: str
    api_token: str
    max_databases: int
    registry: Registry
    protocol: ProtocolServerState
    faults: Faults
    clock: Callable[[], float]
    public_host: str | None
    certificates: LocalCertificates | None = None
    # Serializes changes: a create racing a delete of the same name must see one order.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    def __repr__(self) -> str:
        # Never the token: reprs end up in logs and tracebacks.
        return (
            f"LocalTurso(org={self.org!r}, databases={self.registry.database_count}, "
            f"max_databases={self.max_databases})"
        )

    # --- URLs --------------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        """Whether the app serves HTTPS (and ``libsql://`` URLs mean TLS, as on Turso)."""
        return self.certificates is not None

    def hostname(self, name: str, host: str) -> str:
        """The ``Hostname`` of database ``name`` for a client that reached us at ``host``.

        ``HOST:PORT/db/<name>/`` in TLS mode; otherwise ``?tls=0`` follows, which tells
        the clients that honour it (ours, npm ``@libsql/client``) to use plain HTTP.
        """
        plain = "" if self.tls else "?tls=0"
        return f"{self.public_host or host}/db/{name}/{plain}"

    def database_url(self, name: str, address: ServerAddress) -> str:
        """``libsql://`` + Hostname: what an app builds from the create/get response."""
        return "libsql://" + self.hostname(name, f"{address.host}:{address.port}")

    # --- databases ---------------------------------------------------------------------

    async def create_database(
        self, name: str, *, group: str = DEFAULT_GROUP
    ) -> Result[DatabaseRecord, LocalTursoError]:
        if not is_valid_database_name(name):
            return _refuse(
                LocalTursoErrorCode.BAD_REQUEST,
                f"invalid database name {name!r}: use lowercase letters, digits "
                f"and '-', at most {MAX_NAME_LENGTH} characters, not starting or "
                "ending with '-'",
            )
        async with self._lock:
            group_record = self.registry.group(group)
            if group_record is None:
                return _refuse(LocalTursoErrorCode.BAD_REQUEST, "group not found")
            if self.registry.database(name) is not None:
                return _refuse(
                    LocalTursoErrorCode.CONFLICT,
                    f"database with name {name} already exists",
                )
            if self.registry.database_count >= self.max_databases:
                return _refuse(
                    LocalTursoErrorCode.QUOTA_EXCEEDED,
                    f"database limit reached: the plan allows {self.max_databases} "
                    "databases; delete some or start the server with a higher "
                    "--max-databases",
                )
            # File first, then the record: a crash in between leaves a file that the next
            # start adopts, never a record without a database.
            await self.protocol.create_database(name)
            record = DatabaseRecord(
                name=name,
                db_id=str(uuid.uuid4()),
                group=group,
                created_at=iso_timestamp(self.clock()),
            )
            self.registry.put_database(record)
            await self.registry.save()
        return Ok(record)

    def get_database(self, name: str) -> Result[DatabaseRecord, LocalTursoError]:
        record = self.registry.database(name)
        return _not_found(name) if record is None else Ok(record)

    async def delete_database(self, name: str) -> Result[DatabaseRecord, LocalTursoError]:
        async with self._lock:
            record = self.registry.database(name)
            if record is None:
                return _not_found(name)
            # Record first, then the files: tokens stop working before the data goes.
            self.registry.drop_database(name)
            await self.registry.save()
            await self.protocol.delete_database(name)
        return Ok(record)

    async def rotate_database_tokens(self, name: str) -> Result[DatabaseRecord, LocalTursoError]:
        async with self._lock:
            record = self.registry.database(name)
            if record is None:
                return _not_found(name)
            record = dataclasses.replace(record, generation=record.generation + 1)
            self.registry.put_database(record)
            await self.registry.save()
        return Ok(record)

    def mint_database_token(
        self, name: str, *, expiration: str | None = None, read_only: bool = False
    ) -> Result[str, LocalTursoError]:
        """A JWT for database ``name``; ``expiration`` as Turso's parameter (default never)."""
        record = self.registry.database(name)
        if record is None:
            return _not_found(name)
        return self._mint(expiration, read_only, record.generation, database_id=record.db_id)

    # --- groups ------------------------------------------------------------------------

    async def create_group(
        self, name: str, *, location: str = LOCAL_LOCATION
    ) -> Result[GroupRecord, LocalTursoError]:
        if not is_valid_database_name(name):
            return _refuse(
                LocalTursoErrorCode.BAD_REQUEST,
                f"invalid group name {name!r}: use lowercase letters, digits and "
                f"'-', at most {MAX_NAME_LENGTH} characters",
            )
        async with self._lock:
            if self.registry.group(name) is not None:
                return _refuse(LocalTursoErrorCode.CONFLICT, "group already exists")
            record = GroupRecord(
                name=name,
                uuid=str(uuid.uuid4()),
                location=location,
                created_at=iso_timestamp(self.clock()),
            )
            self.registry.put_group(record)
            await self.registry.save()
        return Ok(record)

    def get_group(self, name: str) -> Result[GroupRecord, LocalTursoError]:
        record = self.registry.group(name)
        return Err(_GROUP_NOT_FOUND) if record is None else Ok(record)

    async def rotate_group_tokens(self, name: str) -> Result[GroupRecord, LocalTursoError]:
        async with self._lock:
            record = self.registry.group(name)
            if record is None:
                return Err(_GROUP_NOT_FOUND)
            record = dataclasses.replace(record, generation=record.generation + 1)
            self.registry.put_group(record)
            await self.registry.save()
        return Ok(record)

    def mint_group_token(
        self, name: str, *, expiration: str | None = None, read_only: bool = False
    ) -> Result[str, LocalTursoError]:
        """A JWT for every database of group ``name``."""
        record = self.registry.group(name)
        if record is None:
            return Err(_GROUP_NOT_FOUND)
        return self._mint(expiration, read_only, record.generation, group_id=record.uuid)

    def _mint(
        self,
        expiration: str | None,
        read_only: bool,
        generation: int,
        *,
        database_id: str | None = None,
        group_id: str | None = None,
    ) -> Result[str, LocalTursoError]:
        match parse_expiration(expiration):
            case Err(_):
                return _refuse(LocalTursoErrorCode.BAD_REQUEST, INVALID_EXPIRATION)
            case Ok(lifetime):
                pass
        now = int(self.clock())
        claims = TokenClaims(
            access=Access.READ_ONLY if read_only else Access.READ_WRITE,
            issued_at=now,
            expires_at=None if lifetime is None else now + lifetime,
            database_id=database_id,
            group_id=group_id,
            generation=generation,
        )
        return Ok(self.registry.signer.mint(claims))


def token_authorizer(registry: Registry, clock: Callable[[], float]) -> Authorize:
    """The SQL protocol's ``authorize`` hook: a valid, current token of that database."""

    async def authorize(token: str | None, database: str) -> Access | None:
        record = registry.database(database)
        if token is None or record is None:
            return None
        group = registry.group(record.group)
        if group is None:  # a record always names an existing group; be safe anyway
            return None
        match registry.signer.verify(token, now=clock()):
            case Err(rejection):
                _log.debug("token refused for database %r: %s", database, rejection.value)
                return None
            case Ok(claims):
                pass
        match access_for(
            claims,
            database_id=record.db_id,
            database_generation=record.generation,
            group_id=group.uuid,
            group_generation=group.generation,
        ):
            case Ok(access):
                return access
            case Err(rejection):
                _log.debug("token refused for database %r: %s", database, rejection.value)
                return None

    return authorize
