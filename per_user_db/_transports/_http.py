"""Turso's HTTP pipeline protocol (Hrana over HTTP) on aiohttp.

The event loop's shared session (:mod:`._pool`) or the caller's, a deadline on every
request, the token only in the ``Authorization`` header. ``/v3/pipeline`` first; a 404 there is
retried once on ``/v2/pipeline`` (a server that predates Hrana 3) and the answer is
remembered. Nothing else is retried: a request that may have executed is never sent
twice. Every aiohttp error becomes a :class:`DatabaseError` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp

from ..core._errors import ConnectErrorCode, code_for_status, error_body_text
from ..core._hrana import (
    CloseRequest,
    PipelineResponse,
    ProtocolError,
    StreamError,
    decode_pipeline_response,
    encode_pipeline_request,
)
from ._base import FOREIGN_KEYS_ON, DatabaseError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..core._hrana import StreamRequest, StreamResult
    from ..core._urls import DatabaseUrl

__all__ = ["HttpTransport", "TokenProvider"]

TokenProvider = Callable[[], Awaitable[str | None]]
"""Returns a fresh token after the server rejected the current one (None: none to be had)."""


class HttpTransport:
    def __init__(
        self,
        url: DatabaseUrl,
        auth_token: str | None,
        *,
        session: aiohttp.ClientSession,
        timeout: float,
        close_streams: bool = True,
        assert_foreign_keys: bool = False,
        token_provider: TokenProvider | None = None,
    ) -> None:
        self._url = url
        self._endpoint = url.endpoint.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        if auth_token:
            self._headers["Authorization"] = f"Bearer {auth_token}"
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._version = "v3"
        self._token_provider = token_provider
        # The protocol asks for a close at the end of a one-shot pipeline, and Turso frees
        # the stream at once; tursodb --sync-server has no streams and rejects it.
        self._closing = (CloseRequest(),) if close_streams else ()
        # Turso's server (sqld) opens every connection with foreign keys on, as does the
        # local Turso, so a fresh stream needs no PRAGMA; a server that does not can be
        # told on every new stream.
        self._opening = (FOREIGN_KEYS_ON,) if assert_foreign_keys else ()
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"<HttpTransport {self._url.display} {self._version}>"

    @property
    def supports_v3(self) -> bool:
        return self._version == "v3"

    async def _post(self, url: str, body: bytes) -> tuple[int, bytes, str | None]:
        self.requests_sent += 1
        try:
            async with self._session.post(
                url, data=body, headers=self._headers, timeout=self._timeout
            ) as response:
                return response.status, await response.read(), response.headers.get("Retry-After")
        except TimeoutError:
            raise DatabaseError.of(
                ConnectErrorCode.TIMEOUT,
                f"{self._url.display} did not answer within {self._timeout.total} s",
            ) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise DatabaseError.of(
                ConnectErrorCode.NETWORK_ERROR,
                f"cannot verify the TLS certificate of {self._url.display}: {exc}. For a "
                "local Turso started with --tls, trust its CA: SSL_CERT_FILE=<data dir>/tls/"
                "ca.pem (set before the process starts), or pass session= with that CA",
            ) from None
        except aiohttp.ClientError as exc:
            raise DatabaseError.of(
                ConnectErrorCode.NETWORK_ERROR,
                f"cannot reach {self._url.display}: {type(exc).__name__}: {exc}",
            ) from None

    async def send_pipeline(
        self, base: str, baton: str | None, requests: Sequence[StreamRequest]
    ) -> PipelineResponse:
        """POST one pipeline to the stream at ``base``; raises :class:`DatabaseError`."""
        body = encode_pipeline_request(baton, requests)
        version = self._version
        status, payload, retry_after = await self._post(f"{base}/{version}/pipeline", body)
        if status == 401 and self._token_provider is not None:
            # A 401 means nothing ran, so sending again is safe whatever the request.
            fresh = await self._token_provider()
            if fresh:
                self._headers["Authorization"] = f"Bearer {fresh}"
                status, payload, retry_after = await self._post(f"{base}/{version}/pipeline", body)
        if status == 404 and version == "v3" and baton is None:
            # A 404 means nothing ran: safe to ask the Hrana 2 endpoint once.
            status_v2, payload_v2, retry_v2 = await self._post(f"{base}/v2/pipeline", body)
            if status_v2 != 404:
                self._version = "v2"
                status, payload, retry_after = status_v2, payload_v2, retry_v2
        if status != 200:
            message, code = error_body_text(payload)
            hint = f" (retry after {retry_after})" if status == 429 and retry_after else ""
            error_code = code or code_for_status(status).value
            raise DatabaseError(
                f"{self._url.display} answered HTTP {status}: {message}{hint}",
                error_code,
                status=status,
            )
        try:
            return decode_pipeline_response(payload, requests=requests)
        except ProtocolError as exc:
            raise DatabaseError.of(
                ConnectErrorCode.PROTOCOL_ERROR,
                f"{self._url.display} sent a malformed pipeline response: {exc}",
            ) from None

    def opening(self, requests: Sequence[StreamRequest]) -> list[StreamRequest]:
        """``requests`` as the first pipeline of a new stream sends them."""
        return [*self._opening, *requests]

    def opened(self, results: tuple[StreamResult, ...]) -> tuple[StreamResult, ...]:
        """The results of :meth:`opening`'s requests, without what it added."""
        if not self._opening:
            return results
        if isinstance(results[0], StreamError):
            message = results[0].error.message
            raise DatabaseError(f"PRAGMA foreign_keys failed: {message}", "SQL_ERROR")
        return results[1:]

    async def pipeline(
        self, requests: Sequence[StreamRequest], *, restartable: bool = False
    ) -> tuple[StreamResult, ...]:
        full = [*self.opening(requests), *self._closing]
        response = await self.send_pipeline(self._endpoint, None, full)
        return self.opened(response.results)[: len(requests)]

    def stream(self) -> HttpStream:
        return HttpStream(self, self._endpoint)

    async def close(self) -> None:
        """Nothing to free: the session is shared (or the caller's) and outlives us."""


class HttpStream:
    """A stream kept between round trips by its baton (interactive transactions)."""

    def __init__(self, transport: HttpTransport, base: str) -> None:
        self._transport = transport
        self._base = base
        self._baton: str | None = None
        self._started = False
        self._closed = False
        self._lock = asyncio.Lock()

    async def send(self, requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...]:
        async with self._lock:
            if self._closed:
                raise DatabaseError("the stream is closed", "STREAM_CLOSED")
            full = list(requests) if self._started else self._transport.opening(requests)
            try:
                response = await self._transport.send_pipeline(self._base, self._baton, full)
            except BaseException:
                # Failed or cancelled mid-request: what the server did is unknown, so the
                # stream (and its baton) cannot be used again; the server expires it.
                self.abandon()
                raise
            self._baton = response.baton
            if response.base_url:
                self._follow(response.base_url)
            if response.baton is None:
                self._closed = True
            if self._started:
                return response.results
            self._started = True
            return self._transport.opened(response.results)

    def _follow(self, base_url: str) -> None:
        # The token goes wherever the stream goes: only within the same origin.
        here, there = urllib.parse.urlsplit(self._base), urllib.parse.urlsplit(base_url)
        if (here.scheme, here.netloc) != (there.scheme, there.netloc):
            self.abandon()
            raise DatabaseError.of(
                ConnectErrorCode.PROTOCOL_ERROR,
                f"the server moved the stream to another origin ({there.scheme}://"
                f"{there.netloc}); not following it with the token",
            )
        self._base = base_url.rstrip("/")

    async def close(self) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._baton is None:
                return
            # If this fails the server expires the stream (and rolls it back) by itself.
            with contextlib.suppress(DatabaseError):
                await self._transport.send_pipeline(self._base, self._baton, [CloseRequest()])

    def abandon(self) -> None:
        self._closed = True
        self._baton = None
