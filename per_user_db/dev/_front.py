"""The local server's front door: the SQL pipeline routes without a web framework.

Every request a Turso client sends for a query is ``POST …/v2/pipeline`` (or ``v3``),
and on this server most of that request's cost was aiohttp's: routing, middlewares,
request and response objects, about 90 µs a request before any SQL ran. This protocol
reads those requests itself, as a strict subset of HTTP/1.1, and hands everything else
to aiohttp, connection and buffered bytes alike:

* a request it reads must have the request line ``POST <pipeline route> HTTP/1.1``,
  exactly one ``Host``, exactly one decimal ``Content-Length`` within the body limit,
  no ``Transfer-Encoding``, ``Expect`` or ``Upgrade``, at most one ``Authorization``,
  and a head of visible ASCII (plus tabs) no longer than aiohttp accepts;
* anything else (other routes, the Platform API, WebSocket upgrades, chunked bodies,
  HTTP/1.0, a malformed head) hands the connection over to aiohttp for the rest of its
  life, starting with the bytes that did not fit, so aiohttp answers it exactly as it
  answers any request. A request is never half-read here and half-read there, and
  framing is only ever decided by ``Content-Length``: nothing can be smuggled between
  the two readers.

Requests on a connection are answered one at a time, in order. A client that goes away
cancels its request, which interrupts its SQL, as aiohttp's ``handler_cancellation``
does. A connection idle longer than the keep-alive timeout, or that has sent part of a
request and nothing more for :data:`REQUEST_READ_TIMEOUT`, is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = [
    "MAX_HEAD",
    "REQUEST_READ_TIMEOUT",
    "FrontDoor",
    "PipelineCall",
    "front_door_safe",
    "is_front_door_safe",
    "parse_head",
    "sweep_forever",
]

_log = logging.getLogger(__name__)

MAX_HEAD: Final = 8190
"""Bytes of request line and headers read here; aiohttp's own line limit."""

REQUEST_READ_TIMEOUT: Final = 30.0
"""Seconds a started request may take to arrive completely."""

KEEPALIVE_TIMEOUT: Final = 75.0
"""Seconds an idle kept-alive connection stays open (aiohttp's default)."""

SWEEP_INTERVAL: Final = 1.0
"""Seconds between two looks for connections past those limits."""

# The whole head in one match: the request line of a pipeline route, then header lines
# of a token, a colon and visible characters or tabs (no other control characters, no
# whitespace before the colon, no folded lines).
_HEAD = re.compile(
    rb"POST (?:/db/([a-z0-9-]{1,64}))?/v([23])/pipeline HTTP/1\.1"
    rb"((?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*)*)\Z"
)
_FIELDS = re.compile(
    rb"\r\n(content-length|transfer-encoding|expect|upgrade|connection|authorization|host):"
)
_MAX_LENGTH_DIGITS = 10
_HEAD_END = b"\r\n\r\n"
_SAFE = "_per_user_db_front_door_safe"

_F = TypeVar("_F")


def front_door_safe(middleware: _F) -> _F:
    """Mark an aiohttp middleware as one the pipeline routes may skip: it does nothing
    for them, or the front door does it too. An app with any unmarked middleware is
    served by aiohttp alone."""
    setattr(middleware, _SAFE, True)  # a function attribute, set once
    return middleware


def is_front_door_safe(middleware: object) -> bool:
    return getattr(middleware, _SAFE, False) is True


@dataclass(slots=True)
class PipelineCall:
    """A pipeline request read off the wire."""

    database: str | None
    """The ``/db/<name>/`` of the path; None for the root routes."""
    version: int
    token: str | None = field(repr=False)
    """The bearer token of the ``Authorization`` header (never in a repr)."""
    body: bytes
    close: bool
    """The client asked for ``Connection: close``."""


@dataclass(slots=True)
class _Head:
    database: str | None
    version: int
    token: str | None = field(repr=False)
    length: int
    close: bool


_POST = b"POST /"
# A line end that is not CRLF: a bare LF (or a CR not followed by LF, once followed).
_BARE_LINE_END = re.compile(rb"(?<!\r)\n|\r(?=[^\n])")


def _may_become_ours(start: bytearray) -> bool:
    """Whether an incomplete head could still become a request this door reads: it
    starts like ``POST /`` and has no line end but CRLF. Anything else (a TLS hello on
    the plain port, bare LF line ends, another method) goes to aiohttp at once, which
    answers it, instead of waiting for a head that will never end."""
    prefix = bytes(start[: len(_POST)])
    return _POST.startswith(prefix) and _BARE_LINE_END.search(start) is None


def parse_head(head: bytes, *, max_body: int, root_routes: bool) -> _Head | None:
    """The request ``head`` (without its final blank line) if this door serves it;
    None if aiohttp should read it instead. ``root_routes``: the server has a root
    database (``--db FILE``), so ``/v2/pipeline`` and ``/v3/pipeline`` are its routes."""
    matched = _HEAD.match(head)
    if matched is None:
        return None
    database, version, fields = matched.groups()
    if database is None and not root_routes:
        return None
    length: int | None = None
    token: str | None = None
    authorization_seen = False
    hosts = 0
    close = False
    for found in _FIELDS.finditer(fields.lower()):
        end = fields.find(b"\r\n", found.end())
        value = fields[found.end() : None if end < 0 else end].strip(b" \t")
        key = found.group(1)
        if key == b"content-length":
            if length is not None or not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
                return None
            length = int(value)
        elif key == b"connection":
            options = {option.strip().lower() for option in value.split(b",")}
            if b"upgrade" in options:
                return None
            close = close or b"close" in options
        elif key == b"host":
            hosts += 1
        elif key == b"authorization":
            if authorization_seen:
                return None
            authorization_seen = True
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer":
                token = credentials.strip(b" \t").decode("ascii", "replace") or None
        else:  # transfer-encoding, expect, upgrade: aiohttp's to handle
            return None
    if hosts != 1:
        return None  # HTTP/1.1 wants exactly one Host; aiohttp answers 400 without
    if length is None or length > max_body:
        return None  # aiohttp answers 411 or 413 in its own words
    return _Head(
        database=None if database is None else database.decode("ascii"),
        version=int(version),
        token=token,
        length=length,
        close=close,
    )


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def _response(status: int, body: bytes, *, close: bool) -> bytes:
    reason = _REASONS.get(status, b"Unknown")
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            % (status, reason, len(body)),
            b"Connection: close\r\n\r\n" if close else b"\r\n",
            body,
        )
    )


class FrontDoor(asyncio.Protocol):
    """One client connection: pipeline requests answered here, the rest by aiohttp.

    ``answer(call)`` returns the status and JSON body of a pipeline request;
    ``fallback()`` makes the aiohttp protocol a connection is handed to.
    """

    def __init__(
        self,
        answer: Callable[[PipelineCall], Awaitable[tuple[int, bytes]]],
        fallback: Callable[[], asyncio.Protocol],
        doors: set[FrontDoor],
        *,
        max_body: int,
        root_routes: bool,
    ) -> None:
        self._answer = answer
        self._fallback = fallback
        self._doors = doors
        self._max_body = max_body
        self._root_routes = root_routes
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._writable = True
        self._closing = False
        self.request_started: float | None = None
        """When the first byte of the request not yet complete arrived."""
        self._loop = asyncio.get_running_loop()
        self.last_active = self._loop.time()

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, from asyncio or another event loop (uvloop's are not
        # asyncio.Transport subclasses).
        self._transport = cast("asyncio.Transport", transport)
        self._doors.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._doors.discard(self)
        self._transport = None
        self._buffer.clear()
        if self._task is not None:
            self._task.cancel()  # the client left: its SQL is interrupted

    def data_received(self, data: bytes) -> None:
        if not self._buffer:
            self.request_started = self._loop.time()
        self._buffer += data
        self.last_active = self._loop.time()
        if self._task is None:
            self._next()
        self._read_no_further_ahead()

    def _read_no_further_ahead(self) -> None:
        # A client sending far ahead of the answers it reads (or while it reads none:
        # writing paused) waits until they catch up: reading pauses while a largest
        # request (head and body) is buffered, however much the client pipelines.
        transport = self._transport
        if transport is None:
            return
        if len(self._buffer) > MAX_HEAD + self._max_body:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def eof_received(self) -> bool | None:
        # The client closed its side: it reads no answer, so its request (if one is in
        # flight) is cancelled and its SQL interrupted, as aiohttp does, instead of
        # holding a lock for nobody. The transport closes.
        return False

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        if self._task is None:
            self._next()

    # --- requests ------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No request in flight and none partly received."""
        return self._task is None and not self._buffer

    @property
    def waiting_for_bytes(self) -> bool:
        """Part of a request arrived, and nothing is being answered."""
        return self._task is None and bool(self._buffer)

    def arriving_for(self, now: float) -> float:
        """Seconds the request still arriving has taken so far (0: none is arriving)."""
        if not self.waiting_for_bytes or self.request_started is None:
            return 0.0
        return now - self.request_started

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> asyncio.Task[None] | None:
        """Close the connection and cancel its request; the task to wait for, if any."""
        task = self._task
        if task is not None:
            task.cancel()
        self.close()
        return task

    def _next(self) -> None:
        """Start answering the next complete request in the buffer, if there is one."""
        transport = self._transport
        if transport is None or not self._writable or self._closing:
            return
        buffer = self._buffer
        end = buffer.find(_HEAD_END, 0, MAX_HEAD + len(_HEAD_END))
        if end < 0:
            if len(buffer) > MAX_HEAD or not _may_become_ours(buffer):
                self._hand_over()  # aiohttp answers what is not a request of ours at once
            return
        head = parse_head(
            bytes(buffer[:end]), max_body=self._max_body, root_routes=self._root_routes
        )
        if head is None:
            self._hand_over()
            return
        start = end + len(_HEAD_END)
        if len(buffer) - start < head.length:
            return  # the body is still arriving
        body = bytes(buffer[start : start + head.length])
        del buffer[: start + head.length]
        self.request_started = self._loop.time() if buffer else None
        call = PipelineCall(
            database=head.database,
            version=head.version,
            token=head.token,
            body=body,
            close=head.close,
        )
        # Owned by this connection: cancelled when it is lost, awaited by nobody (its
        # outcome is the response it writes).
        self._task = self._loop.create_task(self._serve(call))

    async def _serve(self, call: PipelineCall) -> None:
        try:
            status, body = await self._answer(call)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001  # logged; the client gets a JSON 500, not a traceback
            _log.exception("unexpected error serving a pipeline request")
            status = 500
            body = b'{"error":"internal error in the local protocol server; see its log"}'
        self._finish(status, body, close=call.close)

    def _finish(self, status: int, body: bytes, *, close: bool) -> None:
        self._task = None
        transport = self._transport
        if transport is None:
            return
        transport.write(_response(status, body, close=close))
        if close:
            self.close()
            return
        self.last_active = self._loop.time()
        if self._buffer:
            self._next()
        self._read_no_further_ahead()

    def _hand_over(self) -> None:
        """The rest of this connection is aiohttp's, from the first unread byte on."""
        transport = self._transport
        if transport is None:
            return
        self._doors.discard(self)
        self._transport = None
        # Undo a pause of the door's own first: from here on aiohttp pauses and resumes
        # (its queue of pipelined requests is bounded), and must not be overruled.
        with contextlib.suppress(AttributeError, RuntimeError):
            transport.resume_reading()
        successor = self._fallback()
        transport.set_protocol(successor)
        successor.connection_made(transport)
        pending, self._buffer = bytes(self._buffer), bytearray()
        if pending:
            successor.data_received(pending)


async def sweep_forever(doors: set[FrontDoor]) -> None:
    """Close connections idle past the keep-alive timeout, and ones whose request has
    taken longer than :data:`REQUEST_READ_TIMEOUT` to arrive, however steadily its bytes
    trickle in (slowloris)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        now = loop.time()
        for door in list(doors):
            if (door.idle and now - door.last_active > KEEPALIVE_TIMEOUT) or door.arriving_for(
                now
            ) > REQUEST_READ_TIMEOUT:
                door.close()
