"""Where the app keeps each user's database credentials.

:class:`CredentialStore` is what the flows need; :class:`InMemoryCredentialStore` is for
tests, :class:`DatabaseCredentialStore` keeps them in any database ``Database`` can open
(typically the app's own auth database), in a table ``per_user_database`` created by its
own small migration set, recorded in its own version table so that it never mixes with
the app's migrations. Tokens are stored encrypted (:class:`~per_user_db.TokenCipher`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from libsql_client import LibsqlError

from ._migrate import apply_migrations
from ._migration_files import migrations_from_texts
from ._provision import Credentials
from .core._result import Err, Ok, Result

if TYPE_CHECKING:
    from ._cipher import TokenCipher
    from ._database import Database
    from .core._migration_errors import MigrationError

__all__ = [
    "STORE_MIGRATIONS",
    "CredentialStore",
    "DatabaseCredentialStore",
    "InMemoryCredentialStore",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "StoredCredentials",
]

STORE_TABLE = "per_user_database"
STORE_VERSION_TABLE = "__per_user_db_migrations"
_STORE_SQL = f"""CREATE TABLE `{STORE_TABLE}` (
\t`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
\t`user_id` text NOT NULL,
\t`database_name` text NOT NULL,
\t`database_url` text NOT NULL,
\t`encrypted_token` text,
\t`token_expires_at` integer,
\t`created_at` integer NOT NULL,
\t`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `{STORE_TABLE}_user_id_unique` ON `{STORE_TABLE}` (`user_id`);
--> statement-breakpoint
CREATE INDEX `{STORE_TABLE}_token_expires_at_idx` ON `{STORE_TABLE}` (`token_expires_at`);
"""
STORE_MIGRATIONS = migrations_from_texts(
    json.dumps(
        {
            "version": "7",
            "dialect": "sqlite",
            "entries": [
                {
                    "idx": 0,
                    "version": "6",
                    "when": 1777700000000,
                    "tag": "0000_per_user_database",
                    "breakpoints": True,
                }
            ],
        }
    ),
    {"0000_per_user_database.sql": _STORE_SQL},
    version_table=STORE_VERSION_TABLE,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCredentials:
    user_id: str
    credentials: Credentials
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreUnavailable:
    """The store's database failed (unreachable, or an SQL error)."""

    message: str

    def __str__(self) -> str:
        return f"credential store unavailable: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreCorrupt:
    """A stored row cannot be used: a token that does not decrypt (wrong key, altered)."""

    user_id: str
    reason: str

    def __str__(self) -> str:
        return f"stored credentials of user {self.user_id!r} are unusable: {self.reason}"


StoreError = StoreUnavailable | StoreCorrupt


class CredentialStore(Protocol):
    async def load(self, user_id: str) -> Result[StoredCredentials | None, StoreError]:
        """The user's credentials, or ``None`` if there are none."""
        ...

    async def save(
        self, user_id: str, credentials: Credentials, *, now: dt.datetime
    ) -> Result[StoredCredentials, StoreError]:
        """Insert or replace the user's credentials (``created_at`` survives updates)."""
        ...

    async def expiring(
        self, before: dt.datetime
    ) -> Result[list[StoredCredentials | StoreCorrupt], StoreError]:
        """Every entry whose token expires at or before ``before``; an entry that cannot be
        read is listed as :class:`StoreCorrupt` rather than ending the listing."""
        ...


class InMemoryCredentialStore:
    """A dict, for tests."""

    def __init__(self) -> None:
        self._rows: dict[str, StoredCredentials] = {}
        self.saves = 0

    def __repr__(self) -> str:
        return f"<InMemoryCredentialStore {len(self._rows)} users>"

    async def load(self, user_id: str) -> Result[StoredCredentials | None, StoreError]:
        return Ok(self._rows.get(user_id))

    async def save(
        self, user_id: str, credentials: Credentials, *, now: dt.datetime
    ) -> Result[StoredCredentials, StoreError]:
        previous = self._rows.get(user_id)
        stored = StoredCredentials(
            user_id=user_id,
            credentials=credentials,
            created_at=previous.created_at if previous else now,
            updated_at=now,
        )
        self._rows[user_id] = stored
        self.saves += 1
        return Ok(stored)

    async def expiring(
        self, before: dt.datetime
    ) -> Result[list[StoredCredentials | StoreCorrupt], StoreError]:
        return Ok(
            [
                s
                for s in self._rows.values()
                if s.credentials.expires_at is not None and s.credentials.expires_at <= before
            ]
        )


def _ms(moment: dt.datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _moment(ms: object) -> dt.datetime | None:
    if ms is None:
        return None
    if not isinstance(ms, int | float):
        raise TypeError(f"expected epoch milliseconds, got {type(ms).__name__}")
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


class DatabaseCredentialStore:
    """Credentials in a table of a database this library can open; tokens encrypted.

    Create with :meth:`open`, which applies the store's own migrations (version table
    ``__per_user_db_migrations``). The store does not own the database: close it yourself.
    """

    def __init__(self, db: Database, cipher: TokenCipher) -> None:
        self._db = db
        self._cipher = cipher

    def __repr__(self) -> str:
        return f"<DatabaseCredentialStore {self._db.url}>"

    @classmethod
    async def open(
        cls, db: Database, cipher: TokenCipher
    ) -> Result[DatabaseCredentialStore, MigrationError]:
        match await apply_migrations(db, STORE_MIGRATIONS):
            case Err(error):
                return Err(error)
            case Ok(_):
                return Ok(cls(db, cipher))

    def _row(self, row: tuple[object, ...]) -> Result[StoredCredentials, StoreError]:
        user_id, name, url, sealed, expires, created, updated = row
        token: str | None = None
        if sealed is not None:
            match self._cipher.decrypt(str(sealed)):
                case Err(problem):
                    return Err(StoreCorrupt(user_id=str(user_id), reason=problem.reason))
                case Ok(token):
                    pass
        try:
            return Ok(
                StoredCredentials(
                    user_id=str(user_id),
                    credentials=Credentials(
                        name=str(name), url=str(url), auth_token=token, expires_at=_moment(expires)
                    ),
                    created_at=_moment(created) or dt.datetime.min.replace(tzinfo=dt.UTC),
                    updated_at=_moment(updated) or dt.datetime.min.replace(tzinfo=dt.UTC),
                )
            )
        except TypeError as exc:
            return Err(StoreCorrupt(user_id=str(user_id), reason=str(exc)))

    _COLUMNS = (
        "user_id, database_name, database_url, encrypted_token, token_expires_at, "
        "created_at, updated_at"
    )

    async def load(self, user_id: str) -> Result[StoredCredentials | None, StoreError]:
        try:
            rows = await self._db.execute(
                f"SELECT {self._COLUMNS} FROM {STORE_TABLE} WHERE user_id = ?", [user_id]
            )
        except LibsqlError as exc:
            return Err(StoreUnavailable(message=str(exc)))
        if not rows:
            return Ok(None)
        return self._row(rows[0].astuple())

    async def save(
        self, user_id: str, credentials: Credentials, *, now: dt.datetime
    ) -> Result[StoredCredentials, StoreError]:
        sealed = (
            self._cipher.encrypt(credentials.auth_token)
            if credentials.auth_token is not None
            else None
        )
        try:
            rows = await self._db.execute(
                f"INSERT INTO {STORE_TABLE} ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET database_name = excluded.database_name, "
                "database_url = excluded.database_url, "
                "encrypted_token = excluded.encrypted_token, "
                "token_expires_at = excluded.token_expires_at, updated_at = excluded.updated_at "
                f"RETURNING {self._COLUMNS}",
                [
                    user_id,
                    credentials.name,
                    credentials.url,
                    sealed,
                    _ms(credentials.expires_at),
                    _ms(now),
                    _ms(now),
                ],
            )
        except LibsqlError as exc:
            return Err(StoreUnavailable(message=str(exc)))
        return self._row(rows[0].astuple())

    async def expiring(
        self, before: dt.datetime
    ) -> Result[list[StoredCredentials | StoreCorrupt], StoreError]:
        try:
            rows = await self._db.execute(
                f"SELECT {self._COLUMNS} FROM {STORE_TABLE} "
                "WHERE token_expires_at IS NOT NULL AND token_expires_at <= ? "
                "ORDER BY token_expires_at",
                [_ms(before)],
            )
        except LibsqlError as exc:
            return Err(StoreUnavailable(message=str(exc)))
        found: list[StoredCredentials | StoreCorrupt] = []
        for row in rows:
            match self._row(row.astuple()):
                case Ok(stored):
                    found.append(stored)
                case Err(StoreCorrupt() as corrupt):
                    found.append(corrupt)
                case Err() as failed:
                    return failed
        return Ok(found)
