"""Database tokens of the local Turso: the ``expiration`` parser, signing and the rules."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from per_user_db.core._result import Err, Ok
from per_user_db.dev import (
    Access,
    InvalidExpiration,
    TokenClaims,
    TokenRejection,
    TokenSigner,
    parse_expiration,
)
from per_user_db.dev import _tokens as tokens_module
from per_user_db.dev._tokens import INVALID_EXPIRATION, access_for

DAY = 86_400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (None, None),
        ("", None),
        ("never", None),
        ("30d", 30 * DAY),
        ("1d", DAY),
        ("2w1d30m", 15 * DAY + 30 * 60),
        ("1h", 3600),
        ("90s", 90),
        ("1d1d", 2 * DAY),
        ("30m2w", 14 * DAY + 1800),
    ],
)
def test_parse_expiration_accepts_turso_forms(text: str | None, seconds: int | None) -> None:
    assert parse_expiration(text) == Ok(seconds)


@pytest.mark.parametrize(
    "text", ["30", "d", "1y", "-1d", "1.5d", "1 d", "Never", "0d", "0s0m", "1d ", "99999w"]
)
def test_parse_expiration_refuses_everything_else(text: str) -> None:
    match parse_expiration(text):
        case Err(InvalidExpiration() as error):
            assert error.text == text
            assert str(error).startswith(INVALID_EXPIRATION)
        case other:
            pytest.fail(f"{text!r} parsed as {other}")


_UNITS = {"w": 7 * DAY, "d": DAY, "h": 3600, "m": 60, "s": 1}


@given(st.lists(st.tuples(st.integers(1, 50), st.sampled_from(sorted(_UNITS))), min_size=1))
def test_parse_expiration_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert parse_expiration(text) == Ok(sum(n * _UNITS[unit] for n, unit in parts))


def _payload(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return decoded


def _claims(**changes: object) -> TokenClaims:
    fields: dict[str, object] = {
        "access": Access.READ_WRITE,
        "issued_at": 1_000,
        "expires_at": 2_000,
        "database_id": "db-1",
        "generation": 3,
    }
    fields.update(changes)
    return TokenClaims(**fields)  # type: ignore[arg-type]


def test_minted_token_has_turso_claims_and_verifies() -> None:
    signer = TokenSigner.generate()
    token = signer.mint(_claims())
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "typ": "JWT"}
    assert _payload(token) == {"iat": 1_000, "exp": 2_000, "a": "rw", "id": "db-1", "gen": 3}
    assert signer.verify(token, now=1_999) == Ok(_claims())


def test_never_expiring_token_has_no_exp_and_read_only_says_ro() -> None:
    signer = TokenSigner.generate()
    token = signer.mint(_claims(expires_at=None, access=Access.READ_ONLY))
    assert "exp" not in _payload(token)
    assert _payload(token)["a"] == "ro"
    assert signer.verify(token, now=10**12) == Ok(_claims(expires_at=None, access=Access.READ_ONLY))


def test_expired_at_exp_exactly() -> None:
    signer = TokenSigner.generate()
    assert signer.verify(signer.mint(_claims()), now=2_000) == Err(TokenRejection.EXPIRED)


def test_key_survives_a_round_trip_through_bytes() -> None:
    signer = TokenSigner.generate()
    again = TokenSigner.from_private_bytes(signer.private_bytes())
    assert again.verify(signer.mint(_claims()), now=1_500) == Ok(_claims())
    assert "BEGIN PUBLIC KEY" in again.public_key_pem()
    assert "Ed25519" in repr(again)
    assert signer.private_bytes().hex() not in repr(again)


class CountingSigner(TokenSigner):
    """Counts the signatures it really checks."""

    __slots__ = ("checked",)

    def __init__(self, signer: TokenSigner) -> None:
        super().__init__(signer._key)  # the same key, to count its checks
        self.checked = 0

    def _signature_holds(self, signature: bytes, signed: bytes) -> bool:
        self.checked += 1
        return super()._signature_holds(signature, signed)


def test_a_verified_token_is_remembered_but_still_expires() -> None:
    signer = CountingSigner(TokenSigner.generate())
    token = signer.mint(_claims())
    for now in (1_000, 1_500, 1_999):
        assert signer.verify(token, now=now) == Ok(_claims())
    assert signer.checked == 1  # one signature check for three requests
    assert signer.verify(token, now=2_000) == Err(TokenRejection.EXPIRED)


def test_refused_tokens_are_never_remembered() -> None:
    signer = CountingSigner(TokenSigner.generate())
    foreign = TokenSigner.generate().mint(_claims())
    for _ in range(3):
        assert signer.verify(foreign, now=1_500) == Err(TokenRejection.BAD_SIGNATURE)
    assert signer.checked == 3
    header, payload, signature = signer.mint(_claims()).split(".")
    # A remembered token does not vouch for another with its signature.
    assert signer.verify(f"{header}.{payload}.{signature}", now=1_500) == Ok(_claims())
    other = signer.mint(_claims(database_id="db-2")).split(".")[1]
    assert signer.verify(f"{header}.{other}.{signature}", now=1_500) == Err(
        TokenRejection.BAD_SIGNATURE
    )


def test_remembered_tokens_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens_module, "VERIFIED_TOKENS", 3)
    signer = CountingSigner(TokenSigner.generate())
    minted = [signer.mint(_claims(generation=n)) for n in range(5)]
    for token in minted:
        assert signer.verify(token, now=1_500).is_ok()
    assert signer.checked == 5
    assert signer.verify(minted[-1], now=1_500).is_ok()  # still remembered
    assert signer.verify(minted[0], now=1_500).is_ok()  # forgotten: checked again
    assert signer.checked == 6


def test_other_key_and_tampering_are_bad_signatures() -> None:
    signer = TokenSigner.generate()
    token = signer.mint(_claims())
    assert TokenSigner.generate().verify(token, now=1_500) == Err(TokenRejection.BAD_SIGNATURE)
    header, _, signature = token.split(".")
    forged = base64.urlsafe_b64encode(
        json.dumps({"iat": 1_000, "a": "rw", "id": "db-2", "gen": 3}).encode()
    )
    tampered = f"{header}.{forged.decode().rstrip('=')}.{signature}"
    assert signer.verify(tampered, now=1_500) == Err(TokenRejection.BAD_SIGNATURE)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        # alg "none": a classic JWT downgrade, refused before any signature check
        base64.urlsafe_b64encode(b'{"alg":"none"}').decode() + ".e30.",
    ],
)
def test_malformed_tokens(token: str) -> None:
    assert TokenSigner.generate().verify(token, now=0) == Err(TokenRejection.MALFORMED)


@pytest.mark.parametrize(
    "payload",
    [
        {"iat": 1, "a": "admin", "id": "x"},
        {"iat": "1", "a": "rw", "id": "x"},
        {"iat": 1, "a": "rw"},
        {"iat": 1, "a": "rw", "id": "x", "gid": "g"},
        {"iat": 1, "a": "rw", "id": "x", "exp": True},
        [1, 2],
    ],
)
def test_signed_but_foreign_claims_are_malformed(payload: object) -> None:
    signer = TokenSigner.generate()
    # Sign the payload with the real key through a valid token's layout.
    header = base64.urlsafe_b64encode(b'{"alg":"EdDSA","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    signature = signer._key.sign(f"{header}.{body}".encode())
    token = f"{header}.{body}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"
    assert signer.verify(token, now=0) == Err(TokenRejection.MALFORMED)


def test_claims_name_a_database_or_a_group() -> None:
    with pytest.raises(ValueError, match="either"):
        _claims(group_id="g")
    with pytest.raises(ValueError, match="either"):
        _claims(database_id=None)


def test_access_for_checks_database_and_generation() -> None:
    def check(claims: TokenClaims, database_generation: int) -> object:
        return access_for(
            claims,
            database_id="db-1",
            database_generation=database_generation,
            group_id="g-1",
            group_generation=0,
        )

    assert check(_claims(), 3) == Ok(Access.READ_WRITE)
    assert check(_claims(), 4) == Err(TokenRejection.ROTATED)
    assert check(_claims(database_id="db-2"), 3) == Err(TokenRejection.OTHER_DATABASE)


def test_access_for_group_tokens() -> None:
    group_token = _claims(database_id=None, group_id="g-1", generation=1, access=Access.READ_ONLY)

    def check(group_id: str, group_generation: int) -> object:
        return access_for(
            group_token,
            database_id="db-1",
            database_generation=0,
            group_id=group_id,
            group_generation=group_generation,
        )

    assert check("g-1", 1) == Ok(Access.READ_ONLY)
    assert check("g-1", 2) == Err(TokenRejection.ROTATED)
    assert check("g-2", 1) == Err(TokenRejection.OTHER_DATABASE)
