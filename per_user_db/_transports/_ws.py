"""``ws://`` and ``wss://``: libsql-client's own WebSocket transport (self-hosted sqld).

Turso Cloud no longer accepts WebSocket Hrana, but a self-hosted libSQL server does, and
libsql-client 0.3 speaks it. Its stream object takes raw Hrana statements and batches,
so our requests go through unchanged; only execute, batch, sequence and close exist
there (Hrana 2 over WebSocket has no describe/store_sql in libsql-client's stream API).
libsql-client's in-band errors arrive as raised ``LibsqlError`` and become in-band
``StreamError`` results here, as over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import aiohttp
from libsql_client import LibsqlError, create_client

from ..core._errors import ConnectErrorCode
from ..core._hrana import (
    BatchRequest,
    BatchResponse,
    CloseRequest,
    CloseResponse,
    ExecuteRequest,
    ExecuteResponse,
    HranaError,
    ProtocolError,
    SequenceRequest,
    SequenceResponse,
    StreamError,
    StreamOk,
    decode_batch_result,
    decode_stmt_result,
    encode_batch,
    encode_stmt,
)
from ._base import FOREIGN_KEYS_ON, DatabaseError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..core._hrana import StreamRequest, StreamResponse, StreamResult
    from ..core._urls import DatabaseUrl

__all__ = ["WsTransport"]


# libsql-client reports a broken connection with these codes: they are transport
# failures, not SQL errors, and mean the request may not have run.
_TRANSPORT_CODES = frozenset({"HRANA_WEBSOCKET_ERROR", "HRANA_PROTO_ERROR", "CLIENT_CLOSED"})


def _in_band(error: LibsqlError) -> StreamError:
    return StreamError(error=HranaError(message=error.explanation, code=error.code))


def _consume(pending: list[asyncio.Future[Any] | StreamResult]) -> None:
    # Failures of requests nobody will await any more are retrieved here, so that
    # asyncio does not report them as "never retrieved".
    for item in pending:
        if isinstance(item, asyncio.Future):
            item.add_done_callback(lambda f: f.cancelled() or f.exception())


class WsTransport:
    def __init__(self, url: DatabaseUrl, auth_token: str | None, *, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._auth_token = auth_token
        self._client: Any = None

    def open_stream(self) -> Any:
        # libsql-client connects as soon as its client exists: create it on first use, so
        # that opening a database sends nothing.
        if self._client is None:
            self._client = create_client(self._url.endpoint, auth_token=self._auth_token)
        return self._client._open_stream()

    def __repr__(self) -> str:
        return f"<WsTransport {self._url.display}>"

    @property
    def supports_v3(self) -> bool:
        return False

    async def run(self, stream: Any, requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...]:
        # Send everything first (the connection pipelines them), then collect in order.
        pending: list[asyncio.Future[Any] | StreamResult] = []
        for request in requests:
            match request:
                case ExecuteRequest(stmt=stmt):
                    pending.append(stream.execute(encode_stmt(stmt)))
                case BatchRequest(batch=batch):
                    pending.append(stream.batch(encode_batch(batch)))
                case SequenceRequest(sql=sql, sql_id=sql_id):
                    pending.append(stream.sequence(sql if sql is not None else sql_id))
                case CloseRequest():
                    stream.close()
                    pending.append(StreamOk(response=CloseResponse()))
                case _:
                    pending.append(
                        StreamError(
                            error=HranaError(
                                message=f"{type(request).__name__} is not available over "
                                "libsql-client's WebSocket transport",
                                code="NOT_SUPPORTED",
                            )
                        )
                    )
        results: list[StreamResult] = []
        try:
            async with asyncio.timeout(self._timeout):
                for request, item in zip(requests, pending, strict=True):
                    if not isinstance(item, asyncio.Future):
                        results.append(item)
                        continue
                    try:
                        raw = await item
                    except LibsqlError as exc:
                        if exc.code in _TRANSPORT_CODES:
                            raise
                        results.append(_in_band(exc))
                        continue
                    results.append(StreamOk(response=self._response(request, raw)))
        except TimeoutError:
            _consume(pending)
            await self._drop_client()
            raise DatabaseError.of(
                ConnectErrorCode.TIMEOUT,
                f"{self._url.display} did not answer within {self._timeout} s",
            ) from None
        except (aiohttp.ClientError, OSError, LibsqlError) as exc:
            _consume(pending)
            await self._drop_client()
            raise DatabaseError.of(
                ConnectErrorCode.NETWORK_ERROR,
                f"cannot reach {self._url.display}: {type(exc).__name__}: {exc}",
            ) from None
        except ProtocolError as exc:
            raise DatabaseError.of(
                ConnectErrorCode.PROTOCOL_ERROR, f"{self._url.display} sent {exc}"
            ) from None
        return tuple(results)

    @staticmethod
    def _response(request: StreamRequest, raw: Any) -> StreamResponse:
        match request:
            case ExecuteRequest():
                return ExecuteResponse(result=decode_stmt_result(raw))
            case BatchRequest():
                return BatchResponse(result=decode_batch_result(raw))
            case _:
                return SequenceResponse()

    async def pipeline(
        self, requests: Sequence[StreamRequest], *, restartable: bool = False
    ) -> tuple[StreamResult, ...]:
        stream = self.open_stream()
        try:
            results = await self.run(stream, [FOREIGN_KEYS_ON, *requests])
        finally:
            stream.close()
        return results[1:]

    def stream(self) -> WsStream:
        return WsStream(self)

    async def _drop_client(self) -> None:
        """Close a client whose connection broke; the next request connects again."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    async def close(self) -> None:
        await self._drop_client()


class WsStream:
    def __init__(self, transport: WsTransport) -> None:
        self._transport = transport
        self._stream: Any = None
        self._closed = False

    async def send(self, requests: Sequence[StreamRequest]) -> tuple[StreamResult, ...]:
        if self._closed:
            raise DatabaseError("the stream is closed", "STREAM_CLOSED")
        if requests and isinstance(requests[-1], CloseRequest):
            self._closed = True
        if self._stream is None:
            self._stream = self._transport.open_stream()
            results = await self._transport.run(self._stream, [FOREIGN_KEYS_ON, *requests])
            return results[1:]
        return await self._transport.run(self._stream, requests)

    async def close(self) -> None:
        self.abandon()

    def abandon(self) -> None:
        self._closed = True
        if self._stream is not None:
            self._stream.close()
