"""per-user-db: one SQLite database per user on Turso (libSQL).

The public surface, all importable from ``per_user_db``:

Results
    :class:`Ok`, :class:`Err`, :data:`Result`, :class:`UnwrapError` — every fallible
    operation returns ``Ok(value)`` or ``Err(error)``; ``.unwrap()`` raises
    :class:`UnwrapError` for callers who prefer exceptions.

Names
    :func:`database_name` — the deterministic Turso database name of a user id, and its
    input errors (:class:`DatabaseNameError` and subclasses, all ``ValueError``).

Migrations
    :func:`load_migrations` reads a drizzle-kit folder into a :class:`MigrationSet` of
    :class:`Migration`; :func:`plan` compares the version table's rows with it and
    returns a :class:`Plan` or a :data:`PlanError` (:class:`Drift`,
    :class:`DatabaseAhead`, :class:`OutOfOrder`, :class:`InvalidVersionRow`). Problems
    with the files raise :class:`MigrationFileError` subclasses.

Connections
    :func:`open_database` returns ``Ok(Database)`` or ``Err(ConnectError)``. A
    :class:`Database` is a ``libsql_client.Client`` (``execute``, atomic ``batch``,
    ``transaction``) over Turso's HTTP protocol, a non-blocking local SQLite, or
    libsql-client's WebSocket transport; its failures raise :class:`DatabaseError`, a
    ``libsql_client.LibsqlError``. HTTP databases share one pooled session per event
    loop, closed at the loop's shutdown or by :func:`close_shared_sessions`.

Migrate on connect
    :func:`connect` opens a database and brings it to the head of a
    :class:`MigrationSet` (default: the bundled per-user schema) in one request when it is
    up to date and one more, atomic, when not. :func:`apply_migrations` returns a
    :class:`MigrationReport`, :func:`migration_status` the :class:`Plan` without applying
    it; failures are :data:`MigrationError` values (:class:`StatementFailed`,
    :class:`ForeignKeyViolations`, :class:`MigrationContention`,
    :class:`MigrationUnavailable`, or the planner's refusals). :class:`VerifiedCache`
    lets a process skip the check for recently verified databases. ``connect(...,
    lazy=True)`` sends nothing: the check rides in the first request as a guard, and a
    migration that then fails raises :class:`MigrationFailedError`.

Provisioning
    :func:`create_database` creates (or finds) a user's database and issues a token,
    returning ``Ok(Credentials)`` or a :data:`CreateDatabaseError`; :class:`Settings`
    (``Settings.from_env()``) says where: Turso's Platform API, or embedded SQLite files
    when no API token is set. :class:`per_user_db.turso.PlatformClient` is the Platform
    API client underneath.

Users
    :func:`setup_user_database` creates, saves and migrates a user's database;
    :func:`get_valid_credentials` returns credentials whose token stays valid for a
    margin, refreshing it once however many callers ask; :func:`refresh_tokens` sweeps
    tokens that expire soon. Credentials live in a :class:`CredentialStore`
    (:class:`InMemoryCredentialStore`, or :class:`DatabaseCredentialStore` with tokens
    encrypted by a :class:`TokenCipher`). ``async with user_database(user_id, store=...)
    as db`` opens, migrates and always closes; :func:`current_database` finds it inside.

The app object
    :class:`UserDatabases` (``await UserDatabases.from_env()``, or from a store and
    settings) is built once per app: ``async with dbs.scope(user_id) as db`` on every
    request, with pooled connections, cached credentials and verified schemas, the
    schema check riding in the first query; :class:`UserDatabaseUnavailable` carries an
    :data:`Unavailable` error and an HTTP ``status``; :class:`StartupError` says why
    ``from_env`` could not start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import StartupError, Unavailable, UserDatabases
    from ._cipher import DecryptError, TokenCipher
    from ._connect import VerifiedCache, connect
    from ._database import Database, DatabaseTransaction
    from ._deferred import MigrationFailedError
    from ._migrate import MigrationReport, apply_migrations, migration_status
    from ._migration_files import load_migrations, migrations_from_texts
    from ._open import open_database
    from ._provision import (
        CreateDatabaseError,
        CreateStep,
        Credentials,
        EmbeddedFailed,
        ProvisionFailed,
        UserIdRejected,
        create_database,
    )
    from ._scope import NoDatabaseScope, UserDatabaseUnavailable, current_database, user_database
    from ._settings import Backend, Settings, SettingsError
    from ._store import (
        CredentialStore,
        DatabaseCredentialStore,
        InMemoryCredentialStore,
        StoreCorrupt,
        StoredCredentials,
        StoreError,
        StoreUnavailable,
    )
    from ._transports._base import DatabaseError
    from ._transports._pool import close_shared_sessions
    from ._users import (
        NotProvisioned,
        RefreshFailed,
        RefreshReport,
        get_valid_credentials,
        refresh_tokens,
        setup_user_database,
    )
    from .core._errors import ConnectError, ConnectErrorCode
    from .core._migration_errors import (
        ForeignKeyViolation,
        ForeignKeyViolations,
        MigrationContention,
        MigrationError,
        MigrationUnavailable,
        StatementFailed,
    )
    from .core._migrations import (
        DuplicateTag,
        JournalError,
        Migration,
        MigrationFileError,
        MigrationSet,
        MissingMigrationFile,
        NonIncreasingWhen,
        StatementError,
        UnlistedMigrationFile,
    )
    from .core._names import (
        DatabaseNameError,
        InvalidAppEnv,
        InvalidNameSecret,
        InvalidPrefix,
        InvalidUserId,
        NameTooLong,
        database_name,
    )
    from .core._planner import (
        AppliedRow,
        DatabaseAhead,
        Drift,
        DriftedMigration,
        InvalidVersionRow,
        OutOfOrder,
        Plan,
        PlanError,
        plan,
    )
    from .core._result import Err, Ok, Result, UnwrapError

__all__ = [
    "AppliedRow",
    "Backend",
    "ConnectError",
    "ConnectErrorCode",
    "CreateDatabaseError",
    "CreateStep",
    "CredentialStore",
    "Credentials",
    "Database",
    "DatabaseAhead",
    "DatabaseCredentialStore",
    "DatabaseError",
    "DatabaseNameError",
    "DatabaseTransaction",
    "DecryptError",
    "Drift",
    "DriftedMigration",
    "DuplicateTag",
    "EmbeddedFailed",
    "Err",
    "ForeignKeyViolation",
    "ForeignKeyViolations",
    "InMemoryCredentialStore",
    "InvalidAppEnv",
    "InvalidNameSecret",
    "InvalidPrefix",
    "InvalidUserId",
    "InvalidVersionRow",
    "JournalError",
    "Migration",
    "MigrationContention",
    "MigrationError",
    "MigrationFailedError",
    "MigrationFileError",
    "MigrationReport",
    "MigrationSet",
    "MigrationUnavailable",
    "MissingMigrationFile",
    "NameTooLong",
    "NoDatabaseScope",
    "NonIncreasingWhen",
    "NotProvisioned",
    "Ok",
    "OutOfOrder",
    "Plan",
    "PlanError",
    "ProvisionFailed",
    "RefreshFailed",
    "RefreshReport",
    "Result",
    "Settings",
    "SettingsError",
    "StartupError",
    "StatementError",
    "StatementFailed",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "StoredCredentials",
    "TokenCipher",
    "Unavailable",
    "UnlistedMigrationFile",
    "UnwrapError",
    "UserDatabaseUnavailable",
    "UserDatabases",
    "UserIdRejected",
    "VerifiedCache",
    "apply_migrations",
    "close_shared_sessions",
    "connect",
    "create_database",
    "current_database",
    "database_name",
    "get_valid_credentials",
    "load_migrations",
    "migration_status",
    "migrations_from_texts",
    "open_database",
    "plan",
    "refresh_tokens",
    "setup_user_database",
    "user_database",
]


__version__ = "0.1.0"

# Names are imported on first use, so that importing a submodule (the pytest plugin, the
# pure core) does not load aiohttp, sqlglot and the rest of the shell.
_EXPORTS: dict[str, str] = {
    "AppliedRow": ".core._planner",
    "Backend": "._settings",
    "ConnectError": ".core._errors",
    "ConnectErrorCode": ".core._errors",
    "CreateDatabaseError": "._provision",
    "CreateStep": "._provision",
    "CredentialStore": "._store",
    "Credentials": "._provision",
    "Database": "._database",
    "DatabaseAhead": ".core._planner",
    "DatabaseCredentialStore": "._store",
    "DatabaseError": "._transports._base",
    "DatabaseNameError": ".core._names",
    "DatabaseTransaction": "._database",
    "DecryptError": "._cipher",
    "Drift": ".core._planner",
    "DriftedMigration": ".core._planner",
    "DuplicateTag": ".core._migrations",
    "EmbeddedFailed": "._provision",
    "Err": ".core._result",
    "ForeignKeyViolation": ".core._migration_errors",
    "ForeignKeyViolations": ".core._migration_errors",
    "InMemoryCredentialStore": "._store",
    "InvalidAppEnv": ".core._names",
    "InvalidNameSecret": ".core._names",
    "InvalidPrefix": ".core._names",
    "InvalidUserId": ".core._names",
    "InvalidVersionRow": ".core._planner",
    "JournalError": ".core._migrations",
    "Migration": ".core._migrations",
    "MigrationContention": ".core._migration_errors",
    "MigrationError": ".core._migration_errors",
    "MigrationFileError": ".core._migrations",
    "MigrationFailedError": "._deferred",
    "MigrationReport": "._migrate",
    "MigrationSet": ".core._migrations",
    "MigrationUnavailable": ".core._migration_errors",
    "MissingMigrationFile": ".core._migrations",
    "NameTooLong": ".core._names",
    "NoDatabaseScope": "._scope",
    "NonIncreasingWhen": ".core._migrations",
    "NotProvisioned": "._users",
    "Ok": ".core._result",
    "OutOfOrder": ".core._planner",
    "Plan": ".core._planner",
    "PlanError": ".core._planner",
    "ProvisionFailed": "._provision",
    "RefreshFailed": "._users",
    "RefreshReport": "._users",
    "Result": ".core._result",
    "Settings": "._settings",
    "SettingsError": "._settings",
    "StartupError": "._app",
    "StatementError": ".core._migrations",
    "StatementFailed": ".core._migration_errors",
    "StoreCorrupt": "._store",
    "StoreError": "._store",
    "StoreUnavailable": "._store",
    "StoredCredentials": "._store",
    "TokenCipher": "._cipher",
    "UnlistedMigrationFile": ".core._migrations",
    "Unavailable": "._app",
    "UnwrapError": ".core._result",
    "UserDatabaseUnavailable": "._scope",
    "UserDatabases": "._app",
    "UserIdRejected": "._provision",
    "VerifiedCache": "._connect",
    "apply_migrations": "._migrate",
    "close_shared_sessions": "._transports._pool",
    "connect": "._connect",
    "create_database": "._provision",
    "current_database": "._scope",
    "database_name": ".core._names",
    "get_valid_credentials": "._users",
    "load_migrations": "._migration_files",
    "migration_status": "._migrate",
    "migrations_from_texts": "._migration_files",
    "open_database": "._open",
    "plan": ".core._planner",
    "refresh_tokens": "._users",
    "setup_user_database": "._users",
    "user_database": "._scope",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'per_user_db' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
