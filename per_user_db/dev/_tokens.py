"""Database tokens of the local Turso: Ed25519-signed JWTs, and the rules that accept them.

A token carries the claims Turso's own tokens carry (``iat``, ``exp`` unless it never
expires, ``a`` = ``rw`` | ``ro``, and ``id`` = the database's ``DbId``, or ``gid`` = the
group's id for a group token) plus ``gen``: the generation of the database (or group)
when the token was minted. ``POST …/auth/rotate`` bumps the generation, which is how
every earlier token stops working without a revocation list.

Everything here is pure apart from signing: the caller passes ``now`` (unix seconds).
"""

from __future__ import annotations

import base64
import binascii
import collections
import enum
import json
import re
from dataclasses import dataclass
from typing import TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from per_user_db.core._result import Err, Ok, Result
from per_user_db.dev._state import Access

__all__ = [
    "INVALID_EXPIRATION",
    "InvalidExpiration",
    "TokenClaims",
    "TokenRejection",
    "TokenSigner",
    "access_for",
    "parse_expiration",
]

INVALID_EXPIRATION = "Invalid expiration format"
"""The message Turso answers a bad ``expiration`` with (400)."""

_UNIT_SECONDS = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_EXPIRATION = re.compile(r"(?:[0-9]+[wdhms])+\Z")
_PART = re.compile(r"([0-9]+)([wdhms])")
# Ten years: far beyond any real use, and it keeps ``iat + lifetime`` a sane integer.
_MAX_LIFETIME = 10 * 365 * 86_400

_HEADER = {"alg": "EdDSA", "typ": "JWT"}
_ACCESS_CLAIM = {Access.READ_WRITE: "rw", Access.READ_ONLY: "ro"}
_CLAIM_ACCESS = {claim: access for access, claim in _ACCESS_CLAIM.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidExpiration:
    """``expiration`` is not ``never`` nor a sum of ``<N>w|d|h|m|s`` parts."""

    text: str

    def __str__(self) -> str:
        return (
            f"{INVALID_EXPIRATION}: {self.text!r} (use 'never' or parts like '30d', '2w1d30m' "
            "with units w, d, h, m, s)"
        )


def parse_expiration(text: str | None) -> Result[int | None, InvalidExpiration]:
    """Seconds until expiry for Turso's ``expiration`` parameter; ``None`` means never.

    A missing or empty parameter is ``never``, Turso's documented default. Units may
    repeat (``1d1d`` is two days) and come in any order; a total of zero is refused
    because such a token would be dead on arrival.
    """
    if text is None or text == "" or text == "never":
        return Ok(None)
    if not _EXPIRATION.match(text):
        return Err(InvalidExpiration(text=text))
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    if seconds <= 0 or seconds > _MAX_LIFETIME:
        return Err(InvalidExpiration(text=text))
    return Ok(seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenClaims:
    """What a token says. Exactly one of ``database_id`` / ``group_id`` is set."""

    access: Access
    issued_at: int
    expires_at: int | None
    database_id: str | None = None
    group_id: str | None = None
    generation: int = 0

    def __post_init__(self) -> None:
        if (self.database_id is None) == (self.group_id is None):
            raise ValueError("a token names either a database (id) or a group (gid), not both")

    def to_json(self) -> dict[str, object]:
        claims: dict[str, object] = {"iat": self.issued_at, "a": _ACCESS_CLAIM[self.access]}
        if self.expires_at is not None:
            claims["exp"] = self.expires_at
        if self.database_id is not None:
            claims["id"] = self.database_id
        if self.group_id is not None:
            claims["gid"] = self.group_id
        claims["gen"] = self.generation
        return claims

    @classmethod
    def from_json(cls, claims: object) -> TokenClaims | None:
        """The claims of a verified payload, or None if they are not ours."""
        if not isinstance(claims, dict):
            return None
        access = _CLAIM_ACCESS.get(str(claims.get("a")))
        iat, exp, gen = claims.get("iat"), claims.get("exp"), claims.get("gen", 0)
        db_id, group_id = claims.get("id"), claims.get("gid")
        if (
            access is None
            or not _is_int(iat)
            or not (exp is None or _is_int(exp))
            or not _is_int(gen)
            or not (db_id is None or isinstance(db_id, str))
            or not (group_id is None or isinstance(group_id, str))
        ):
            return None
        try:
            return cls(
                access=access,
                issued_at=iat,
                expires_at=exp,
                database_id=db_id,
                group_id=group_id,
                generation=gen,
            )
        except ValueError:  # names both a database and a group, or neither
            return None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class TokenRejection(enum.Enum):
    """Why a token does not open a database (every one of them is a 401)."""

    MALFORMED = "the token is not a JWT signed by this server"
    BAD_SIGNATURE = "the token's signature does not verify"
    EXPIRED = "the token has expired"
    OTHER_DATABASE = "the token was minted for another database or group"
    ROTATED = "the token was invalidated by POST …/auth/rotate"


VERIFIED_TOKENS = 4096
"""How many verified tokens a signer remembers (a few MB at most)."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Mints and verifies tokens with one Ed25519 key (kept in the data dir).

    Checking a signature costs more than serving a small query (about 100 us), and a
    client sends the same token with every request: the claims of the last
    :data:`VERIFIED_TOKENS` tokens whose signature held are remembered, keyed by the
    whole token, so a remembered token is one dictionary lookup. Expiry is still checked
    on every call, and what the claims grant (generations, rotation) by the caller.
    Tokens that fail are never remembered.
    """

    __slots__ = ("_key", "_public", "_verified")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public = key.public_key()
        self._verified: collections.OrderedDict[str, TokenClaims] = collections.OrderedDict()

    def __repr__(self) -> str:
        return "TokenSigner(<Ed25519 key>)"

    @classmethod
    def generate(cls) -> TokenSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> TokenSigner:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def public_key_pem(self) -> str:
        """For anyone who wants to check tokens elsewhere (e.g. a self-hosted sqld)."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def mint(self, claims: TokenClaims) -> str:
        header = _b64encode(json.dumps(_HEADER, separators=(",", ":")).encode())
        payload = _b64encode(json.dumps(claims.to_json(), separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode("ascii")
        return f"{header}.{payload}.{_b64encode(self._key.sign(signing_input))}"

    def verify(self, token: str, *, now: float) -> Result[TokenClaims, TokenRejection]:
        """The claims of a token this key signed that has not expired at ``now``."""
        claims = self._verified.get(token)
        if claims is None:
            match self._check(token):
                case Err() as refused:
                    return refused
                case Ok(claims):
                    self._remember(token, claims)
        else:
            self._verified.move_to_end(token)
        if claims.expires_at is not None and now >= claims.expires_at:
            return Err(TokenRejection.EXPIRED)
        return Ok(claims)

    def _remember(self, token: str, claims: TokenClaims) -> None:
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)

    def _signature_holds(self, signature: bytes, signed: bytes) -> bool:
        try:
            self._public.verify(signature, signed)
        except InvalidSignature:
            return False
        return True

    def _check(self, token: str) -> Result[TokenClaims, TokenRejection]:
        """Claims of a token with a valid signature and form (expiry not checked)."""
        parts = token.split(".")
        if len(parts) != 3:
            return Err(TokenRejection.MALFORMED)
        header_b64, payload_b64, signature_b64 = parts
        try:
            header = json.loads(_b64decode(header_b64))
            signature = _b64decode(signature_b64)
        except (ValueError, binascii.Error):
            return Err(TokenRejection.MALFORMED)
        if not isinstance(header, dict) or header.get("alg") != "EdDSA":
            return Err(TokenRejection.MALFORMED)
        if not self._signature_holds(signature, f"{header_b64}.{payload_b64}".encode()):
            return Err(TokenRejection.BAD_SIGNATURE)
        try:
            claims = TokenClaims.from_json(json.loads(_b64decode(payload_b64)))
        except (ValueError, binascii.Error):
            return Err(TokenRejection.MALFORMED)
        if claims is None:
            return Err(TokenRejection.MALFORMED)
        return Ok(claims)


def access_for(
    claims: TokenClaims,
    *,
    database_id: str,
    database_generation: int,
    group_id: str,
    group_generation: int,
) -> Result[Access, TokenRejection]:
    """What verified ``claims`` grant on one database, given its current ids and generations."""
    if claims.database_id is not None:
        if claims.database_id != database_id:
            return Err(TokenRejection.OTHER_DATABASE)
        current = database_generation
    else:
        if claims.group_id != group_id:
            return Err(TokenRejection.OTHER_DATABASE)
        current = group_generation
    if claims.generation != current:
        return Err(TokenRejection.ROTATED)
    return Ok(claims.access)
