from __future__ import annotations

import pytest

from per_user_db.core._result import Err, Ok
from per_user_db.core._urls import TransportKind, parse_database_url, redact_url


@pytest.mark.parametrize(
    ("url", "kind", "endpoint"),
    [
        (
            "libsql://db-org.aws-us-west-2.turso.io",
            TransportKind.HTTP,
            "https://db-org.aws-us-west-2.turso.io",
        ),
        ("libsql://localhost:8080?tls=0", TransportKind.HTTP, "http://localhost:8080"),
        ("https://db.example.com", TransportKind.HTTP, "https://db.example.com"),
        ("http://127.0.0.1:8080/db/alice", TransportKind.HTTP, "http://127.0.0.1:8080/db/alice"),
        ("http://127.0.0.1:8080/db/alice/", TransportKind.HTTP, "http://127.0.0.1:8080/db/alice/"),
        ("http://[::1]:9000", TransportKind.HTTP, "http://[::1]:9000"),
        ("ws://127.0.0.1:8080", TransportKind.WEBSOCKET, "ws://127.0.0.1:8080"),
        ("wss://db.example.com", TransportKind.WEBSOCKET, "wss://db.example.com"),
        ("file:users/alice.db", TransportKind.LOCAL, "users/alice.db"),
        ("file:///tmp/alice.db", TransportKind.LOCAL, "/tmp/alice.db"),
        ("file:///tmp/with%20space.db", TransportKind.LOCAL, "/tmp/with space.db"),
        ("/tmp/alice.db", TransportKind.LOCAL, "/tmp/alice.db"),
        ("alice.db", TransportKind.LOCAL, "alice.db"),
        (":memory:", TransportKind.LOCAL, ":memory:"),
        ("file::memory:", TransportKind.LOCAL, ":memory:"),
    ],
)
def test_transport_by_url(url: str, kind: TransportKind, endpoint: str) -> None:
    result = parse_database_url(url)
    assert isinstance(result, Ok)
    assert result.value.transport is kind
    assert result.value.endpoint == endpoint


def test_token_in_url_is_kept_out_of_repr_and_display() -> None:
    result = parse_database_url("libsql://db.turso.io?authToken=eyJ.secret.sig")
    assert isinstance(result, Ok)
    parsed = result.value
    assert parsed.auth_token == "eyJ.secret.sig"
    assert "secret" not in repr(parsed)
    assert parsed.display == "libsql://db.turso.io?authToken=***"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://host", "unsupported scheme 'ftp'"),
        ("", "expected a non-empty str"),
        ("libsql://", "the URL has no host"),
        ("http://host:99999", "malformed URL"),
        ("libsql://host?authToken=eyJ.secret&mode=rw", "unknown query parameter 'mode'"),
        ("libsql://host?tls=yes", "tls must be 0 or 1"),
        ("https://user:eyJ.secret@host", "credentials in the URL are not supported"),
        ("file:x.db?mode=ro", "file: URLs take no query parameters"),
        ("file://remote/x.db", "file: URLs cannot name a remote host"),
    ],
)
def test_bad_urls_are_errors_without_the_token(url: str, reason: str) -> None:
    result = parse_database_url(url)
    assert isinstance(result, Err)
    assert reason in str(result.error)
    assert "secret" not in str(result.error)


def test_redact_hides_tokens_and_passwords() -> None:
    assert redact_url("https://u:p@h/x?authToken=t&tls=1") == "https://***@h/x?authToken=***&tls=1"
    assert redact_url("file:a.db") == "file:a.db"


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1", True),
        ("http://127.8.0.1", True),
        ("http://localhost:1", True),
        ("http://[::1]", True),
        ("http://10.0.0.1", False),
        ("http://example.com", False),
    ],
)
def test_loopback_detection(url: str, loopback: bool) -> None:
    result = parse_database_url(url)
    assert isinstance(result, Ok)
    assert result.value.is_loopback is loopback
