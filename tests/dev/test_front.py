"""The front door: pipeline requests read without aiohttp, everything else handed to it.

The unit tests pin which heads the door reads itself; the rest talk raw HTTP/1.1 to a
real server on 127.0.0.1, since what matters is the bytes on the wire: order, framing,
keep-alive, and that a connection handed to aiohttp is answered as aiohttp answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from per_user_db.core._hrana import (
    CloseRequest,
    ExecuteRequest,
    Stmt,
    encode_pipeline_request,
)
from per_user_db.dev import _front, create_protocol_app, protocol_state, serve
from per_user_db.dev._front import MAX_HEAD, parse_head
from per_user_db.dev._server import MAX_BODY

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import Server

HEAD = (
    b"POST /db/alice/v2/pipeline HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Content-Type: application/json\r\nAuthorization: Bearer abc.DEF-123\r\n"
    b"Content-Length: 90\r\nConnection: keep-alive"
)


def parse(head: bytes, *, root_routes: bool = False) -> _front._Head | None:
    return parse_head(head, max_body=1000, root_routes=root_routes)


def test_a_pipeline_head_is_read_here() -> None:
    head = parse(HEAD)
    assert head is not None
    assert (head.database, head.version, head.token, head.length, head.close) == (
        "alice",
        2,
        "abc.DEF-123",
        90,
        False,
    )
    v3 = parse(HEAD.replace(b"/v2/", b"/v3/").replace(b"keep-alive", b"close"))
    assert v3 is not None
    assert (v3.version, v3.close) == (3, True)
    # Header names are case-insensitive; a non-bearer scheme is no token.
    lower = parse(HEAD.replace(b"Content-Length", b"content-LENGTH").replace(b"Bearer", b"Basic"))
    assert lower is not None
    assert (lower.length, lower.token) == (90, None)


def test_root_routes_only_when_the_server_has_a_root_database() -> None:
    root = HEAD.replace(b"/db/alice", b"")
    assert parse(root) is None
    served = parse(root, root_routes=True)
    assert served is not None
    assert served.database is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ((b"POST ", b"GET "), "another method"),
        ((b"HTTP/1.1", b"HTTP/1.0"), "HTTP/1.0"),
        ((b"/pipeline", b"/pipeline?x=1"), "a query string"),
        ((b"/v2/pipeline", b"/v3/cursor"), "another route"),
        ((b"/db/alice/", b"/db/Alice/"), "a name the server would refuse"),
        ((b"/db/alice/", b"/db/../alice/"), "a path that is no database name"),
        ((b"Content-Length: 90", b"Transfer-Encoding: chunked"), "a chunked body"),
        ((b"Content-Length: 90", b"Content-Length: 90\r\nContent-Length: 90"), "two lengths"),
        ((b"Content-Length: 90", b"Content-Length: +90"), "a signed length"),
        ((b"Content-Length: 90", b"Content-Length: 0x5a"), "a hex length"),
        ((b"Content-Length: 90", b"Content-Length: 2000"), "a body over the limit"),
        ((b"Content-Length: 90", b"Content-Length: 99999999999"), "a length of 11 digits"),
        ((b"Content-Length: 90\r\n", b""), "no length"),
        ((b"Host:", b"Host :"), "whitespace before the colon"),
        ((b"\r\nContent-Type", b"\r\n Content-Type"), "a folded line"),
        ((b"\r\nContent-Type", b"\nContent-Type"), "a bare LF"),
        ((b"keep-alive", b"keep\ralive"), "a bare CR"),
        ((b"keep-alive", b"keep\x00alive"), "a NUL"),
        ((b"keep-alive", b"Upgrade"), "Connection: upgrade"),
        ((b"Connection: keep-alive", b"Expect: 100-continue"), "Expect"),
        ((b"Connection: keep-alive", b"Upgrade: websocket"), "Upgrade"),
        ((b"Connection: keep-alive", b"Authorization: Bearer x"), "two Authorization headers"),
        ((b"Host: 127.0.0.1:8080\r\n", b""), "no Host"),
        ((b"Connection: keep-alive", b"Host: y"), "two Host headers"),
    ],
)
def test_anything_else_is_left_to_aiohttp(change: tuple[bytes, bytes], why: str) -> None:
    old, new = change
    assert old in HEAD
    assert parse(HEAD.replace(old, new, 1)) is None, why


@given(st.binary(max_size=300))
def test_no_head_makes_the_parser_raise(tail: bytes) -> None:
    head = parse(HEAD + tail)
    if head is not None:
        assert head.length <= 1000


# --- on the wire ---------------------------------------------------------------------------


def pipeline_request(
    sql: str = "SELECT 1", *, path: str = "/db/main/v2/pipeline", extra: bytes = b""
) -> bytes:
    body = encode_pipeline_request(None, [ExecuteRequest(stmt=Stmt(sql=sql)), CloseRequest()])
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


class Wire:
    """One raw HTTP/1.1 connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: Server) -> Wire:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.address.port)
        return cls(reader, writer)

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        async with asyncio.timeout(10):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            if headers.get("transfer-encoding") == "chunked":
                body = b""
                while (size := int((await self.reader.readline()).strip(), 16)) > 0:
                    body += await self.reader.readexactly(size + 2)
                    body = body[:-2]
                await self.reader.readline()
            else:
                body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def closed_by_server(self) -> bool:
        async with asyncio.timeout(10):
            return await self.reader.read(1) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def first_value(body: bytes) -> object:
    result = json.loads(body)["results"][0]["response"]["result"]
    return result["rows"][0][0]["value"]


async def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    wire = await Wire.open(server)
    statements = [f"SELECT {n}" for n in range(20)]
    wire.writer.write(b"".join(pipeline_request(sql) for sql in statements))
    answers = [await wire.response() for _ in statements]
    assert [first_value(body) for _, _, body in answers] == [str(n) for n in range(20)]
    assert server.state.counts.count(route="v2/pipeline", database="main") == 20
    await wire.close()


async def test_a_request_split_into_single_bytes_is_read_whole(server: Server) -> None:
    wire = await Wire.open(server)
    for byte in pipeline_request("SELECT 42"):
        wire.writer.write(bytes([byte]))
        await wire.writer.drain()
    status, _, body = await wire.response()
    assert (status, first_value(body)) == (200, "42")
    await wire.close()


async def test_connection_close_is_honoured(server: Server) -> None:
    wire = await Wire.open(server)
    wire.writer.write(pipeline_request(extra=b"Connection: close\r\n"))
    status, headers, _ = await wire.response()
    assert (status, headers["connection"]) == (200, "close")
    assert await wire.closed_by_server()
    await wire.close()


async def test_a_client_that_closes_its_side_is_gone(server: Server) -> None:
    # As aiohttp does: a client that sent EOF reads no answer; its request is cancelled
    # (its SQL interrupted) and the connection closed. The server serves the next one.
    wire = await Wire.open(server)
    wire.writer.write(pipeline_request("SELECT 7"))
    wire.writer.write_eof()
    assert await wire.closed_by_server()
    await wire.close()
    again = await Wire.open(server)
    again.writer.write(pipeline_request("SELECT 8"))
    assert first_value((await again.response())[2]) == "8"
    await again.close()


async def test_other_requests_hand_the_connection_to_aiohttp(server: Server) -> None:
    wire = await Wire.open(server)
    # A pipeline read here, then a route of aiohttp's, then a pipeline again: the
    # connection stays aiohttp's, which answers pipelines just the same.
    wire.writer.write(pipeline_request("SELECT 1"))
    wire.writer.write(b"GET /db/main/v2 HTTP/1.1\r\nHost: x\r\n\r\n")
    wire.writer.write(pipeline_request("SELECT 3"))
    first, health, third = [await wire.response() for _ in range(3)]
    assert (first[0], first_value(first[2])) == (200, "1")
    assert health[0] == 200
    assert (third[0], first_value(third[2])) == (200, "3")
    await wire.close()


async def test_a_chunked_pipeline_is_read_by_aiohttp(server: Server) -> None:
    body = encode_pipeline_request(
        None, [ExecuteRequest(stmt=Stmt(sql="SELECT 5")), CloseRequest()]
    )
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    wire = await Wire.open(server)
    wire.writer.write(
        b"POST /db/main/v2/pipeline HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
    )
    status, _, answer = await wire.response()
    assert (status, first_value(answer)) == (200, "5")
    await wire.close()


POST = b"POST /db/main/v2/pipeline HTTP/1.1\r\n"


@pytest.mark.parametrize(
    "head",
    [
        POST + b"Host: x\r\nContent-Length: 2\nX: y\r\n\r\n{}",
        POST + b"Host: x\r\n Folded: y\r\nContent-Length: 2\r\n\r\n{}",
        POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        POST + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    ],
)
async def test_malformed_heads_get_aiohttps_400(server: Server, head: bytes) -> None:
    wire = await Wire.open(server)
    wire.writer.write(head)
    status, _, _ = await wire.response()
    assert status == 400
    await wire.close()
    # The server is fine: the next client is served.
    again = await Wire.open(server)
    again.writer.write(pipeline_request("SELECT 9"))
    assert first_value((await again.response())[2]) == "9"
    await again.close()


async def test_limits_of_head_and_body(server: Server) -> None:
    wire = await Wire.open(server)
    wire.writer.write(
        b"POST /db/main/v2/pipeline HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"a" * (MAX_HEAD + 10)
        + b"\r\nContent-Length: 2\r\n\r\n{}"
    )
    status, _, _ = await wire.response()
    assert status in (400, 431)
    await wire.close()

    wire = await Wire.open(server)
    wire.writer.write(
        b"POST /db/main/v2/pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
        % (MAX_BODY + 1)
    )
    wire.writer.write(b"x" * (MAX_BODY + 1))
    status, _, _ = await wire.response()
    assert status == 413
    await wire.close()


async def test_errors_answer_in_json(server: Server) -> None:
    wire = await Wire.open(server)
    body = b'{"baton": null, "requests": [{"type": "nonsense"}]}'
    wire.writer.write(
        b"POST /db/main/v2/pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    status, headers, answer = await wire.response()
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(answer)["code"] == "PROTOCOL_ERROR"
    wire.writer.write(pipeline_request(path="/db/nobody/v2/pipeline"))
    status, _, answer = await wire.response()
    assert status == 404
    assert "nobody" in json.loads(answer)["error"]
    await wire.close()


async def test_a_request_that_stops_arriving_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_front, "REQUEST_READ_TIMEOUT", 0.2)
    monkeypatch.setattr(_front, "KEEPALIVE_TIMEOUT", 0.2)
    monkeypatch.setattr(_front, "SWEEP_INTERVAL", 0.05)
    app = create_protocol_app(tmp_path)
    await protocol_state(app).create_database("main")
    async with serve(app) as address:
        trickle = await asyncio.open_connection("127.0.0.1", address.port)
        trickle[1].write(b"POST /db/main/v2/pipeline HTTP/1.1\r\nContent-Len")
        idle = await asyncio.open_connection("127.0.0.1", address.port)
        idle[1].write(pipeline_request("SELECT 1"))
        answered = Wire(*idle)
        assert (await answered.response())[0] == 200
        assert await Wire(*trickle).closed_by_server()
        assert await answered.closed_by_server()  # kept alive, then idle too long
        await Wire(*trickle).close()
        await answered.close()


async def test_a_client_that_never_reads_cannot_make_the_server_buffer_without_bound() -> None:
    big = b"x" * 200_000  # answers that fill the socket's buffers at once

    async def answer(call: _front.PipelineCall) -> tuple[int, bytes]:
        return 200, big

    doors: set[_front.FrontDoor] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _front.FrontDoor(answer, lambda: asyncio.Protocol(), doors, max_body=1000,
                                 root_routes=True),
        "127.0.0.1",
        0,
    )  # fmt: skip
    port = server.sockets[0].getsockname()[1]
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
    client.setblocking(False)
    await loop.sock_connect(client, ("127.0.0.1", port))
    request = pipeline_request(path="/v2/pipeline")
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                for _ in range(5_000):  # blocks once the server stops reading
                    await loop.sock_sendall(client, request)
                    await asyncio.sleep(0)  # the server's turn
        (door,) = doors
        unread = len(door._buffer)  # what the server holds for this client
        assert unread <= _front.MAX_HEAD + 1000 + 2**18  # the limit, plus one read
    finally:
        client.close()
        for open_door in doors:
            open_door.abort()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)  # the transports finish closing


def test_a_token_never_shows_in_a_repr() -> None:
    token = "eyJhbGciOiJFZERTQSJ9.secret-payload.secret-signature"
    head = parse(HEAD.replace(b"abc.DEF-123", token.encode()))
    assert head is not None
    assert head.token == token
    call = _front.PipelineCall(database="alice", version=2, token=token, body=b"", close=False)
    assert "secret" not in repr(head)
    assert "secret" not in repr(call)
