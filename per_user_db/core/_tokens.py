"""Database token claims, read without checking the signature.

Turso database tokens are EdDSA JWTs. The client cannot verify them (it has no key) and
does not need to: it only reads ``exp`` to know when to refresh, so that the expiry a
caller sees is the server's, not a local guess. Pure: no clock; the caller passes ``now``
where a comparison needs one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass

from ._result import Err, Ok, Result

__all__ = ["InvalidToken", "SecretToken", "TokenClaims", "decode_claims"]


class SecretToken(str):
    """A token that keeps out of ``repr`` (so out of test output and ``Ok(...)`` in logs);
    it is an ordinary ``str`` everywhere else, ``str(token)`` included."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SecretToken('***')"


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidToken:
    """The token is not a JWT whose claims can be read. Never holds the token."""

    reason: str

    def __str__(self) -> str:
        return f"invalid database token: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenClaims:
    expires: int | None
    """``exp`` in Unix seconds; None: the token never expires."""
    issued: int | None
    access: str | None
    """``a``: ``rw`` or ``ro``."""
    database_id: str | None

    @property
    def expires_at(self) -> dt.datetime | None:
        if self.expires is None:
            return None
        return dt.datetime.fromtimestamp(self.expires, tz=dt.UTC)

    def expires_within(self, margin: dt.timedelta, *, now: dt.datetime) -> bool:
        """Whether the token is expired or expires within ``margin`` of ``now``."""
        expires_at = self.expires_at
        return expires_at is not None and expires_at - margin <= now


def _segment(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_claim(claims: dict[str, object], key: str) -> Result[int | None, InvalidToken]:
    value = claims.get(key)
    if value is None:
        return Ok(None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Err(InvalidToken(reason=f"claim {key!r} is not a number"))
    return Ok(int(value))


def decode_claims(token: str) -> Result[TokenClaims, InvalidToken]:
    """The claims of a JWT (header.payload.signature), signature unchecked."""
    untyped: object = token  # callers may hand us anything an API returned
    parts = untyped.split(".") if isinstance(untyped, str) else []
    if len(parts) != 3 or not all(parts[:2]):
        return Err(InvalidToken(reason="expected three dot-separated base64url parts"))
    try:
        claims = json.loads(_segment(parts[1]))
    except (binascii.Error, ValueError):
        return Err(InvalidToken(reason="the payload is not base64url-encoded JSON"))
    if not isinstance(claims, dict):
        return Err(InvalidToken(reason="the payload is not a JSON object"))
    match _int_claim(claims, "exp"), _int_claim(claims, "iat"):
        case Ok(expires), Ok(issued):
            pass
        case (Err(error), _) | (_, Err(error)):
            return Err(error)
    access = claims.get("a")
    database_id = claims.get("id")
    return Ok(
        TokenClaims(
            expires=expires,
            issued=issued,
            access=access if isinstance(access, str) else None,
            database_id=database_id if isinstance(database_id, str) else None,
        )
    )
