"""The local Turso's TLS mode: ``"libsql://" + Hostname`` unchanged, in three clients.

The server runs in the test process; every client that reads the standard trust
variables runs in a child process that gets them at start, as a user's app would:

- PyPI ``libsql`` must run in a child anyway: it holds the GIL while it waits on the
  network, so an in-process server could never answer it.
- aiohttp (under ``per_user_db.connect``) builds its default verifying ``SSLContext`` once,
  when ``aiohttp.connector`` is imported (``_SSL_CONTEXT_VERIFIED``), so setting
  ``SSL_CERT_FILE`` with monkeypatch inside this already-running process would be
  ignored. The in-process test passes a session that trusts the CA explicitly; the
  ``SSL_CERT_FILE`` claim is checked in a fresh interpreter.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import shutil
import ssl
import stat
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import anyio
import anyio.streams.tls
import pytest
from cryptography import x509

from per_user_db import connect
from per_user_db.core._errors import ConnectErrorCode
from per_user_db.core._result import Err, Ok
from per_user_db.dev import (
    LocalCertificates,
    ServerAddress,
    create_local_turso_app,
    ensure_certificates,
    local_turso,
    serve,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

JS_DIR = Path(__file__).resolve().parents[1] / "interop" / "js"
API_TOKEN = "tls-api-token"
ORG = "local"
TRUST_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS")


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsTurso:
    address: ServerAddress
    certificates: LocalCertificates
    url: str  # "libsql://" + Hostname, as the Platform API handed it out
    token: str


async def _platform(
    address: ServerAddress, context: ssl.SSLContext, method: str, path: str, body: object = None
) -> dict[str, object]:
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(
            method,
            f"{address.url}/v1/organizations/{ORG}{path}",
            json=body,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        payload = await response.json()
    assert isinstance(payload, dict)
    return payload


async def _create_with_token(
    address: ServerAddress, certificates: LocalCertificates, name: str
) -> tuple[str, str]:
    """Create database ``name`` and mint a token over the https Platform API."""
    context = certificates.client_context()
    created = await _platform(
        address, context, "POST", "/databases", {"name": name, "group": "default"}
    )
    database = created["database"]
    assert isinstance(database, dict)
    hostname = database["Hostname"]
    assert isinstance(hostname, str)
    minted = await _platform(address, context, "POST", f"/databases/{name}/auth/tokens")
    token = minted["jwt"]
    assert isinstance(token, str)
    return "libsql://" + hostname, token


@pytest.fixture
async def tls_turso(tmp_path: Path) -> AsyncIterator[TlsTurso]:
    app = create_local_turso_app(tmp_path / "turso", org=ORG, api_token=API_TOKEN, tls=True)
    certificates = local_turso(app).certificates
    assert certificates is not None
    async with serve(app, "127.0.0.1") as address:
        url, token = await _create_with_token(address, certificates, "alice")
        yield TlsTurso(address=address, certificates=certificates, url=url, token=token)


def _env(**trust: str) -> dict[str, str]:
    """This process's environment without any inherited trust settings, plus ``trust``."""
    clean = {k: v for k, v in os.environ.items() if k not in TRUST_VARIABLES}
    return clean | trust


async def _run(argv: list[str], *, env: dict[str, str], cwd: Path | None = None) -> str:
    returncode, out, err = await _run_unchecked(argv, env=env, cwd=cwd)
    assert returncode == 0, f"exit {returncode}\nstdout: {out}\nstderr: {err}"
    return out


async def _run_unchecked(
    argv: list[str], *, env: dict[str, str], cwd: Path | None = None
) -> tuple[int, str, str]:
    with anyio.fail_after(60):
        done = await anyio.run_process(argv, env=env, cwd=cwd, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def _require_pypi_libsql() -> None:
    if importlib.util.find_spec("libsql") is None:
        pytest.skip("PyPI libsql is not installed in this Python (run .ci/install-interop)")


# --- what the server hands out ------------------------------------------------------------


async def test_hostname_and_api_urls_mean_tls(tls_turso: TlsTurso) -> None:
    port = tls_turso.address.port
    assert tls_turso.address.url == f"https://127.0.0.1:{port}"
    assert tls_turso.url == f"libsql://127.0.0.1:{port}/db/alice/"
    assert "tls=0" not in tls_turso.url


async def test_plain_http_is_refused_on_the_tls_port(tls_turso: TlsTurso) -> None:
    async with aiohttp.ClientSession() as session:
        with anyio.fail_after(10), pytest.raises(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{tls_turso.address.port}/health") as r:
                await r.read()


# --- the three clients, each with the URL and token unchanged ---------------------------


async def test_our_client_in_process_with_a_session_trusting_the_ca(
    tls_turso: TlsTurso,
) -> None:
    connector = aiohttp.TCPConnector(ssl=tls_turso.certificates.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        match await connect(tls_turso.url, tls_turso.token, migrate=False, session=session):
            case Ok(db):
                pass
            case Err(error):
                pytest.fail(f"connect failed: {error}")
        try:
            await db.execute("CREATE TABLE notes (body TEXT)")
            await db.execute("INSERT INTO notes VALUES (?)", ["in-process"])
            result = await db.execute("SELECT body FROM notes")
        finally:
            await db.close()
    assert [tuple(row) for row in result.rows] == [("in-process",)]


_OUR_CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    from per_user_db import connect

    async def main() -> None:
        db = (await connect(sys.argv[1], sys.argv[2], migrate=False)).unwrap()
        try:
            await db.execute("CREATE TABLE notes (body TEXT)")
            await db.execute("INSERT INTO notes VALUES (?)", ["ours"])
            rows = (await db.execute("SELECT body FROM notes")).rows
        finally:
            await db.close()
        print(json.dumps([list(row) for row in rows]))

    asyncio.run(main())
    """
)


async def test_our_client_with_ssl_cert_file(tls_turso: TlsTurso) -> None:
    env = _env(SSL_CERT_FILE=str(tls_turso.certificates.ca_path))
    out = await _run([sys.executable, "-c", _OUR_CLIENT, tls_turso.url, tls_turso.token], env=env)
    assert json.loads(out) == [["ours"]]


_NODE_CLIENT = textwrap.dedent(
    """
    const { createClient } = require("@libsql/client");
    (async () => {
      const client = createClient({ url: process.argv[1], authToken: process.argv[2] });
      await client.execute("CREATE TABLE notes (body TEXT)");
      await client.execute({ sql: "INSERT INTO notes VALUES (?)", args: ["node"] });
      const result = await client.execute("SELECT body FROM notes");
      client.close();
      console.log(JSON.stringify(result.rows.map((row) => [row.body])));
    })().catch((error) => { console.error(error); process.exit(1); });
    """
)


@pytest.mark.interop
async def test_npm_libsql_client_with_node_extra_ca_certs(tls_turso: TlsTurso) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (needed for npm @libsql/client)")
    if not (JS_DIR / "node_modules" / "@libsql" / "client").is_dir():
        pytest.skip("@libsql/client is not installed in tests/interop/js (run .ci/install-interop)")
    env = _env(NODE_EXTRA_CA_CERTS=str(tls_turso.certificates.ca_path))
    out = await _run(
        [node, "-e", _NODE_CLIENT, tls_turso.url, tls_turso.token], env=env, cwd=JS_DIR
    )
    assert json.loads(out) == [["node"]]


_PYPI_LIBSQL = textwrap.dedent(
    """
    import json, sys
    import libsql

    conn = libsql.connect(database=sys.argv[1], auth_token=sys.argv[2])
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES (?)", ("pypi",))
    conn.commit()
    print(json.dumps([list(row) for row in conn.execute("SELECT body FROM notes").fetchall()]))
    """
)


@pytest.mark.interop
async def test_pypi_libsql_with_ssl_cert_file(tls_turso: TlsTurso) -> None:
    _require_pypi_libsql()
    env = _env(SSL_CERT_FILE=str(tls_turso.certificates.ca_path))
    out = await _run([sys.executable, "-c", _PYPI_LIBSQL, tls_turso.url, tls_turso.token], env=env)
    assert json.loads(out) == [["pypi"]]


@pytest.mark.interop
async def test_pypi_libsql_refuses_the_server_without_ssl_cert_file(tls_turso: TlsTurso) -> None:
    # The other half of the claim: it is SSL_CERT_FILE that makes the previous test pass.
    _require_pypi_libsql()
    argv = [sys.executable, "-c", _PYPI_LIBSQL, tls_turso.url, tls_turso.token]
    returncode, _, err = await _run_unchecked(argv, env=_env())
    assert returncode != 0
    assert "invalid peer certificate: UnknownIssuer" in err, err


async def test_our_client_fails_clearly_without_trusting_the_ca(
    tls_turso: TlsTurso, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp's default context was built at import, from the system store; this only
    # keeps a trust variable in the environment from confusing the reader of a failure.
    for name in TRUST_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with anyio.fail_after(10):
        # With migrate (the default) connect sends its first request: the schema check.
        opened = await connect(tls_turso.url, tls_turso.token)
    match opened:
        case Ok(db):
            await db.close()
            pytest.fail("a client that does not trust the local CA connected")
        case Err(error):
            assert error.code is ConnectErrorCode.NETWORK_ERROR
            assert "certificate verify failed" in str(error), str(error)
            assert tls_turso.token not in str(error)


# --- certificates on disk -----------------------------------------------------------------


async def _served_certificate(address: ServerAddress, ca: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca))
    with anyio.fail_after(10):
        stream = await anyio.connect_tcp(
            address.host, address.port, ssl_context=context, tls_standard_compatible=False
        )
    async with stream:
        der = stream.extra(anyio.streams.tls.TLSAttribute.peer_certificate_binary)
    assert der is not None
    return der


async def test_first_start_writes_the_ca_and_a_server_certificate(tmp_path: Path) -> None:
    app = create_local_turso_app(tmp_path, api_token=API_TOKEN, tls=True)
    certificates = local_turso(app).certificates
    assert certificates is not None
    assert certificates.directory == tmp_path / "tls"
    assert certificates.trust_env() == {
        "SSL_CERT_FILE": str(tmp_path / "tls" / "ca.pem"),
        "NODE_EXTRA_CA_CERTS": str(tmp_path / "tls" / "ca.pem"),
    }
    for key in (certificates.ca_key_path, certificates.server_key_path):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    ca = x509.load_pem_x509_certificate(certificates.ca_path.read_bytes())
    server = x509.load_pem_x509_certificate(certificates.server_cert_path.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sorted(p.name for p in certificates.directory.iterdir()) == [
        "ca-key.pem",
        "ca.pem",
        "server-key.pem",
        "server.pem",
    ]


async def test_certificates_survive_a_restart(tmp_path: Path) -> None:
    first = create_local_turso_app(tmp_path, api_token=API_TOKEN, tls=True)
    certificates = local_turso(first).certificates
    assert certificates is not None
    async with serve(first) as address:
        url, token = await _create_with_token(address, certificates, "alice")
        served_before = await _served_certificate(address, certificates.ca_path)
    stored = {p.name: p.read_bytes() for p in certificates.directory.iterdir()}

    second = create_local_turso_app(tmp_path, api_token=API_TOKEN, tls=True)
    assert local_turso(second).certificates == certificates
    assert {p.name: p.read_bytes() for p in certificates.directory.iterdir()} == stored
    async with serve(second) as address:
        assert await _served_certificate(address, certificates.ca_path) == served_before
        # A client that trusted the first start's CA reaches the restarted server.
        connector = aiohttp.TCPConnector(ssl=certificates.client_context())
        async with aiohttp.ClientSession(connector=connector) as session:
            url = url.replace(url.split("/")[2], f"127.0.0.1:{address.port}")
            match await connect(url, token, migrate=False, session=session):
                case Ok(db):
                    await db.close()
                case Err(error):
                    pytest.fail(f"connect after restart failed: {error}")


def test_an_expiring_server_certificate_is_replaced_and_the_ca_kept(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    certificates = ensure_certificates(tmp_path, now=now)
    ca, server = certificates.ca_path.read_bytes(), certificates.server_cert_path.read_bytes()

    assert ensure_certificates(tmp_path, now=now + datetime.timedelta(days=30)) == certificates
    assert certificates.server_cert_path.read_bytes() == server

    later = now + datetime.timedelta(days=397)
    ensure_certificates(tmp_path, now=later)
    assert certificates.ca_path.read_bytes() == ca
    renewed = x509.load_pem_x509_certificate(certificates.server_cert_path.read_bytes())
    assert renewed.not_valid_after_utc > later + datetime.timedelta(days=300)
    renewed.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    assert stat.S_IMODE(certificates.server_key_path.stat().st_mode) == 0o600


def test_an_expired_ca_is_replaced_with_its_server_certificate(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    certificates = ensure_certificates(tmp_path, now=now)
    old_ca = certificates.ca_path.read_bytes()
    ensure_certificates(tmp_path, now=now + datetime.timedelta(days=3651))
    assert certificates.ca_path.read_bytes() != old_ca
    new_ca = x509.load_pem_x509_certificate(certificates.ca_path.read_bytes())
    server = x509.load_pem_x509_certificate(certificates.server_cert_path.read_bytes())
    server.verify_directly_issued_by(new_ca)


def test_a_server_certificate_from_another_ca_is_replaced(tmp_path: Path) -> None:
    mine = ensure_certificates(tmp_path / "mine")
    other = ensure_certificates(tmp_path / "other")
    shutil.copy(other.server_cert_path, mine.server_cert_path)
    shutil.copy(other.server_key_path, mine.server_key_path)
    ensure_certificates(tmp_path / "mine")
    server = x509.load_pem_x509_certificate(mine.server_cert_path.read_bytes())
    server.verify_directly_issued_by(x509.load_pem_x509_certificate(mine.ca_path.read_bytes()))


async def test_without_tls_nothing_changes(tmp_path: Path) -> None:
    app = create_local_turso_app(tmp_path, api_token=API_TOKEN)
    turso = local_turso(app)
    assert turso.certificates is None
    assert not (tmp_path / "tls").exists()
    async with serve(app) as address:
        assert address.url.startswith("http://")
        assert turso.database_url("alice", address).endswith("/db/alice/?tls=0")


# --- the command line -----------------------------------------------------------------------


async def test_command_line_tls_prints_the_ca_and_the_variables(tmp_path: Path) -> None:
    data = tmp_path / "data"
    argv = [sys.executable, "-m", "per_user_db.dev", "--tls", "--port", "0", "--data-dir"]
    lines: list[str] = []
    async with await anyio.open_process([*argv, str(data)], env=_env()) as process:
        try:
            assert process.stdout is not None
            with anyio.fail_after(30):
                buffered = b""
                while "press Ctrl-C" not in buffered.decode():
                    buffered += await process.stdout.receive()
            lines = buffered.decode().splitlines()
        finally:
            process.terminate()
    ca = data / "tls" / "ca.pem"
    text = "\n".join(lines)
    assert ca.is_file()
    assert "API base URL: https://127.0.0.1:" in text
    assert "databases:    libsql://127.0.0.1:" in text
    assert "tls=0" not in text
    assert f"TLS CA:       {ca}" in text
    assert f"export SSL_CERT_FILE={ca}" in text
    assert f"export NODE_EXTRA_CA_CERTS={ca}" in text
