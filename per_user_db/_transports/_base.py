"""What a transport does for :class:`~per_user_db.Database`: run Hrana requests.

Every transport speaks the same language, the Hrana stream requests of
:mod:`per_user_db.core._hrana`, so the database object, the batch logic and the
migrator are written once:

* :meth:`Transport.pipeline` runs requests on a fresh stream in one round trip and
  closes it (one HTTP POST; one job on the local SQLite thread). Each new stream starts
  with ``PRAGMA foreign_keys = ON``, which the transport adds and hides.
* :meth:`Transport.stream` opens a stream that keeps its state between round trips, for
  interactive transactions.

Transport failures (HTTP status, network, timeout, malformed reply) raise
:class:`DatabaseError`; SQL errors come back in-band as ``StreamError`` results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from libsql_client import LibsqlError

from ..core._hrana import ExecuteRequest, Stmt

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..core._errors import ConnectErrorCode
    from ..core._hrana import StreamRequest, StreamResult

__all__ = ["FOREIGN_KEYS_ON", "DatabaseError", "Stream", "Transport"]

FOREIGN_KEYS_ON = ExecuteRequest(stmt=Stmt(sql="PRAGMA foreign_keys = ON", want_rows=False))


class DatabaseError(LibsqlError):
    """A failure talking to a database: ``code`` says which kind, ``status`` the HTTP status.

    A :class:`libsql_client.LibsqlError`, so code written for libsql-client catches it.
    In-band SQL errors keep the server's code (Turso and the local Turso send the primary
    one, ``SQLITE_CONSTRAINT``; a local ``file:`` database the extended one,
    ``SQLITE_CONSTRAINT_FOREIGNKEY``: match by prefix; ``SQL_PARSE_ERROR``, …); transport
    failures use a :class:`ConnectErrorCode` value.
    Messages name the database by its redacted URL and never hold a token.
    """

    status: int | None

    def __init__(self, message: str, code: str, *, status: int | None = None) -> None:
        super().__init__(message, code)
        self.status = status

    @classmethod
    def of(
        cls, code: ConnectErrorCode, message: str, *, status: int | None = None
    ) -> DatabaseError:
        return cls(message, code.value, status=status)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.explanation, self.code), {"status": self.status})


class Stream(Protocol):
    """A server-side stream (a connection) that outlives one round trip."""

    async def send(self, requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...]:
        """Run ``requests`` in order on this stream, in one round trip. A final
        ``CloseRequest`` closes the stream."""
        ...

    async def close(self) -> None:
        """Close the stream; an open transaction on it is rolled back. Idempotent."""
        ...

    def abandon(self) -> None:
        """Forget the stream without waiting (for synchronous ``close()``); the server
        rolls back and frees it (at once locally, after its idle timeout remotely)."""
        ...


class Transport(Protocol):
    @property
    def supports_v3(self) -> bool:
        """Whether requests of Hrana 3 (``get_autocommit``, ``is_autocommit``) work."""
        ...

    async def pipeline(
        self, requests: Sequence[StreamRequest], *, restartable: bool = False
    ) -> tuple[StreamResult, ...]:
        """Run ``requests`` on a fresh stream in one round trip; one result per request.

        ``restartable`` says that running them again after an interrupted or lock-bound
        attempt is safe (one statement, or one all-or-nothing batch); the local transport
        then tries them on the event loop's thread first."""
        ...

    def stream(self) -> Stream: ...

    async def close(self) -> None: ...
