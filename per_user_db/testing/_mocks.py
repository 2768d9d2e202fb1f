"""Doubles for ``create_database`` and ``apply_migrations`` that record their calls.

They plug into the library's own seam (:mod:`per_user_db._seams`): while a mock is
installed, the real functions return what the mock returns, so it takes effect however
the code under test imported them (``from per_user_db import create_database`` included).
Use one as a context manager, or through the plugin's ``per_user_db_mocks`` fixture
(undone after the test)::

    with mock_create_database_ok(url="libsql://other.turso.io") as mock:
        await signup("user-1")
    assert mock.calls[0].args == ("user-1",)

The defaults are the original test kit's: name ``mock-per-user-db-name``, URL
``libsql://mock-per-user-db.turso.io``, token ``mock-auth-token``; ``expires_at`` is the
fixed :data:`MOCK_EXPIRES_AT` (30 days after :data:`MOCK_ISSUED_AT`), so assertions do not
depend on the clock. Mocks nest: the innermost installed one answers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from per_user_db import _seams
from per_user_db._migrate import MigrationReport
from per_user_db._provision import CreateDatabaseError, CreateStep, Credentials, ProvisionFailed
from per_user_db.core._migration_errors import MigrationError, StatementFailed
from per_user_db.core._platform import ServerError
from per_user_db.core._result import Err, Ok, Result

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Self

    from per_user_db._database import Database
    from per_user_db.core._migrations import MigrationSet

__all__ = [
    "MOCK_AUTH_TOKEN",
    "MOCK_DATABASE_NAME",
    "MOCK_DATABASE_URL",
    "MOCK_EXPIRES_AT",
    "MOCK_ISSUED_AT",
    "ApplyMigrationsMock",
    "CreateDatabaseMock",
    "MockCall",
    "PerUserDbMocks",
    "mock_apply_migrations_error",
    "mock_apply_migrations_ok",
    "mock_create_database_error",
    "mock_create_database_ok",
]

MOCK_DATABASE_NAME = "mock-per-user-db-name"
MOCK_DATABASE_URL = "libsql://mock-per-user-db.turso.io"
MOCK_AUTH_TOKEN = "mock-auth-token"  # noqa: S105 - a fake token, the original's default
MOCK_ISSUED_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MOCK_EXPIRES_AT = MOCK_ISSUED_AT + dt.timedelta(days=30)

R = TypeVar("R")
M = TypeVar("M", bound="_Mock[Any]")


@dataclass(frozen=True, slots=True)
class MockCall:
    """One call of a mocked function: positional and keyword arguments as passed."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class _Mock(Generic[R]):
    """A recorded double on one of the seam's stacks; install/uninstall by identity."""

    def __init__(self, stack: list[_seams.Double], answer: Callable[..., R]) -> None:
        self._stack = stack
        self._answer = answer
        self.calls: list[MockCall] = []

    async def _double(self, *args: Any, **kwargs: Any) -> R:
        self.calls.append(MockCall(args, kwargs))
        return self._answer(*args, **kwargs)

    @property
    def installed(self) -> bool:
        return any(d == self._double for d in self._stack)

    @property
    def call_count(self) -> int:
        return len(self.calls)

    @property
    def called(self) -> bool:
        return bool(self.calls)

    def install(self) -> Self:
        if self.installed:
            raise RuntimeError(f"{self!r} is already installed")
        self._stack.append(self._double)
        return self

    def uninstall(self) -> None:
        """Remove this mock (idempotent); mocks installed after it stay in place."""
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index] == self._double:
                del self._stack[index]
                return

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    def __repr__(self) -> str:
        state = "installed" if self.installed else "not installed"
        return f"<{type(self).__name__} {state}, {self.call_count} call(s)>"


class CreateDatabaseMock(_Mock[Result[Credentials, CreateDatabaseError]]):
    """Answers ``create_database(user_id, *, settings, now, client)``."""

    @property
    def user_ids(self) -> list[str]:
        return [call.args[0] for call in self.calls]


class ApplyMigrationsMock(_Mock[Result[MigrationReport, MigrationError]]):
    """Answers ``apply_migrations(db, migrations, *, allow_ahead, max_attempts)``."""

    @property
    def databases(self) -> list[Database]:
        return [call.args[0] for call in self.calls]


def mock_create_database_ok(
    *,
    name: str = MOCK_DATABASE_NAME,
    url: str = MOCK_DATABASE_URL,
    auth_token: str | None = MOCK_AUTH_TOKEN,
    expires_at: dt.datetime | None = MOCK_EXPIRES_AT,
) -> CreateDatabaseMock:
    """``create_database`` returns ``Ok(Credentials(...))`` with these fields, whatever
    the user id. Not installed until entered (or ``.install()``)."""
    credentials = Credentials(name=name, url=url, auth_token=auth_token, expires_at=expires_at)

    def answer(*_args: Any, **_kwargs: Any) -> Result[Credentials, CreateDatabaseError]:
        return Ok(credentials)

    return CreateDatabaseMock(_seams.create_database_doubles, answer)


def mock_create_database_error(error: CreateDatabaseError | None = None) -> CreateDatabaseMock:
    """``create_database`` returns ``Err(error)``; the default is a Platform API 500 at the
    create step (:class:`~per_user_db.ProvisionFailed`, no database created)."""
    failure: CreateDatabaseError = (
        error
        if error is not None
        else ProvisionFailed(
            name=MOCK_DATABASE_NAME,
            step=CreateStep.CREATE,
            error=ServerError(
                operation="create database", status=500, message="mock: internal error"
            ),
            database_created=False,
        )
    )

    def answer(*_args: Any, **_kwargs: Any) -> Result[Credentials, CreateDatabaseError]:
        return Err(failure)

    return CreateDatabaseMock(_seams.create_database_doubles, answer)


def _tags(migrations: MigrationSet | None) -> tuple[str, ...]:
    if migrations is None:
        from per_user_db._bundled import bundled_migrations

        migrations = bundled_migrations()
    return tuple(m.tag for m in migrations)


def mock_apply_migrations_ok(**overrides: Any) -> ApplyMigrationsMock:
    """``apply_migrations`` returns ``Ok(MigrationReport(...))`` without touching the
    database: by default "up to date" (``applied=()``, ``already_applied`` = the tags of
    the migrations passed, the bundled ones by default, ``database`` = ``db.url``).
    ``overrides`` replace any :class:`~per_user_db.MigrationReport` field."""
    unknown = set(overrides) - set(MigrationReport.__dataclass_fields__)
    if unknown:
        raise TypeError(f"MigrationReport has no field(s) {sorted(unknown)}")

    def answer(
        db: Database, migrations: MigrationSet | None = None, **_kwargs: Any
    ) -> Result[MigrationReport, MigrationError]:
        report = MigrationReport(
            database=db.url, applied=(), already_applied=_tags(migrations), round_trips=0
        )
        return Ok(replace(report, **overrides))

    return ApplyMigrationsMock(_seams.apply_migrations_doubles, answer)


def mock_apply_migrations_error(error: MigrationError | None = None) -> ApplyMigrationsMock:
    """``apply_migrations`` returns ``Err(error)``; the default is a
    :class:`~per_user_db.StatementFailed` in the newest migration of the set it was given
    (so ``connect`` fails with ``MIGRATION_FAILED``)."""

    def answer(
        db: Database, migrations: MigrationSet | None = None, **_kwargs: Any
    ) -> Result[MigrationReport, MigrationError]:
        if error is not None:
            return Err(error)
        tags = _tags(migrations)
        return Err(
            StatementFailed(
                database=db.url,
                migration=tags[-1] if tags else "mock",
                statement=1,
                sql="-- mock",
                code="SQLITE_ERROR",
                message="mock: the migration failed",
            )
        )

    return ApplyMigrationsMock(_seams.apply_migrations_doubles, answer)


class PerUserDbMocks:
    """The ``per_user_db_mocks`` fixture: installs mocks and removes them all in
    :meth:`undo` (the fixture calls it after the test)::

        def test_signup(per_user_db_mocks):
            mock = per_user_db_mocks.create_database_ok(name="db-1")
    """

    def __init__(self) -> None:
        self._installed: list[_Mock[Any]] = []

    def _keep(self, mock: M) -> M:
        self._installed.append(mock.install())
        return mock

    def create_database_ok(
        self,
        *,
        name: str = MOCK_DATABASE_NAME,
        url: str = MOCK_DATABASE_URL,
        auth_token: str | None = MOCK_AUTH_TOKEN,
        expires_at: dt.datetime | None = MOCK_EXPIRES_AT,
    ) -> CreateDatabaseMock:
        return self._keep(
            mock_create_database_ok(
                name=name, url=url, auth_token=auth_token, expires_at=expires_at
            )
        )

    def create_database_error(self, error: CreateDatabaseError | None = None) -> CreateDatabaseMock:
        return self._keep(mock_create_database_error(error))

    def apply_migrations_ok(self, **overrides: Any) -> ApplyMigrationsMock:
        return self._keep(mock_apply_migrations_ok(**overrides))

    def apply_migrations_error(self, error: MigrationError | None = None) -> ApplyMigrationsMock:
        return self._keep(mock_apply_migrations_error(error))

    def undo(self) -> None:
        """Uninstall every mock installed through this object, newest first."""
        while self._installed:
            self._installed.pop().uninstall()
