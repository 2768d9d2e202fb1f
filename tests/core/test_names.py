from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from per_user_db import (
    InvalidAppEnv,
    InvalidNameSecret,
    InvalidPrefix,
    InvalidUserId,
    NameTooLong,
    database_name,
)
from per_user_db.core._names import MAX_NAME_LENGTH, is_valid_database_name, normalize_user_id

ENV = "development-test"
TURSO_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [
        ("user-1", "next-lift-development-test-user-c6c289e49e9c05b2"),
        ("User-1", "next-lift-development-test-user-c6c289e49e9c05b2"),
        ("user_1_abc", "next-lift-development-test-user-1e400cee7ba55d4f"),
    ],
)
def test_original_vectors(user_id: str, expected: str) -> None:
    assert database_name(user_id, app_env=ENV) == expected


def test_prefix_and_env_are_segments_of_the_name() -> None:
    name = database_name("user-1", app_env="preview-pr12", prefix="acme")
    assert name == "acme-preview-pr12-user-c6c289e49e9c05b2"


def test_secret_uses_hmac_and_hides_the_plain_hash() -> None:
    plain = database_name("alice@example.com", app_env="production")
    keyed = database_name("alice@example.com", app_env="production", secret=b"k1")
    other_key = database_name("alice@example.com", app_env="production", secret=b"k2")
    assert keyed != plain
    assert keyed != other_key
    assert plain.endswith(hashlib.sha256(b"alice@example.com").hexdigest()[:16])
    assert database_name("Alice@example.com", app_env="production", secret=b"k1") == keyed


def test_a_keyed_name_is_hmac_sha256_of_the_normalized_id() -> None:
    # A fixed vector: an HMAC swapped for sha256(secret + id), or keyed over the wrong
    # bytes, gives another name and would lose every keyed user's database.
    expected = hmac.new(b"k1", b"alice-smith@example.com", hashlib.sha256).hexdigest()[:16]
    assert expected == "9ce2782b758e5a52"
    name = database_name("Alice_Smith@example.com", app_env="production", secret=b"k1")
    assert name == "next-lift-production-user-9ce2782b758e5a52"
    assert database_name("alice@example.com", app_env="production", secret=b"k1") == (
        "next-lift-production-user-e97a3c597641b2b9"
    )


@pytest.mark.parametrize("user_id", ["", "   ", "\t\n"])
def test_blank_user_id_is_rejected(user_id: str) -> None:
    with pytest.raises(InvalidUserId) as info:
        database_name(user_id, app_env=ENV)
    assert str(info.value) == f"user_id must be a non-blank str, got {user_id!r}"


@pytest.mark.parametrize("user_id", [None, 42, b"user-1"])
def test_non_str_user_id_is_rejected(user_id: object) -> None:
    with pytest.raises(InvalidUserId, match=f"got {type(user_id).__name__}"):
        database_name(user_id, app_env=ENV)  # type: ignore[arg-type]


@pytest.mark.parametrize("app_env", ["", "Prod", "dev_1", "-dev", "dev-", "a--b", "dev env", 3])
def test_bad_app_env_names_the_argument_and_rule(app_env: object) -> None:
    with pytest.raises(InvalidAppEnv, match=r"app_env must be lowercase letters, digits"):
        database_name("u", app_env=app_env)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "Next", "next_lift", "next-", "ünï"])
def test_bad_prefix_names_the_argument_and_rule(prefix: str) -> None:
    with pytest.raises(InvalidPrefix, match=r"prefix must be lowercase letters, digits"):
        database_name("u", app_env=ENV, prefix=prefix)


@pytest.mark.parametrize("secret", [b"", "text-secret"])
def test_bad_secret(secret: object) -> None:
    with pytest.raises(InvalidNameSecret) as info:
        database_name("u", app_env=ENV, secret=secret)  # type: ignore[arg-type]
    assert str(info.value) == "secret must be non-empty bytes"


def test_too_long_names_say_how_much_room_there_is() -> None:
    # 64 = len(prefix) + len(app_env) + len("--user-") + 16, so 41 characters fit.
    fits = database_name("u", app_env="e" * 31, prefix="p" * 10)
    assert len(fits) == MAX_NAME_LENGTH
    with pytest.raises(NameTooLong) as info:
        database_name("u", app_env="e" * 32, prefix="p" * 10)
    assert isinstance(info.value, ValueError)
    name = f"{'p' * 10}-{'e' * 32}-user-{fits[-16:]}"
    assert str(info.value) == (
        f"database name {name!r} is 65 characters, over Turso's 64: prefix and app_env "
        "together may have at most 41 characters"
    )


def test_prefix_rule_is_stated_with_the_rejected_value() -> None:
    with pytest.raises(InvalidPrefix) as info:
        database_name("u", app_env=ENV, prefix="-next")
    assert str(info.value) == (
        "prefix must be lowercase letters, digits and single '-' between them "
        "(no leading or trailing '-'), got '-next'"
    )


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a" * 64, True),
        ("a" * 65, False),
        ("a" + "-b" * 31 + "c", True),  # 64 characters with inner dashes
        ("a", True),
        ("", False),
        ("-abc", False),
        ("abc-", False),
        ("-", False),
        ("ab-c", True),
        ("Abc", False),
        ("a_b", False),
    ],
)
def test_is_valid_database_name_boundaries(name: str, valid: bool) -> None:
    assert is_valid_database_name(name) is valid


segments = st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,2}", fullmatch=True)
user_ids = st.text(min_size=1).filter(lambda s: s.strip() != "")


@given(user_id=user_ids, app_env=segments, prefix=segments)
def test_names_are_always_valid_for_turso(user_id: str, app_env: str, prefix: str) -> None:
    try:
        name = database_name(user_id, app_env=app_env, prefix=prefix)
    except NameTooLong:
        assert len(prefix) + len(app_env) > MAX_NAME_LENGTH - len("--user-") - 16
        return
    assert TURSO_NAME.fullmatch(name)
    assert len(name) <= MAX_NAME_LENGTH
    assert is_valid_database_name(name)


@given(user_id=user_ids, secret=st.none() | st.binary(min_size=1, max_size=32))
def test_names_are_deterministic_and_normalization_invariant(
    user_id: str, secret: bytes | None
) -> None:
    name = database_name(user_id, app_env=ENV, secret=secret)
    assert database_name(user_id, app_env=ENV, secret=secret) == name
    assert database_name(normalize_user_id(user_id), app_env=ENV, secret=secret) == name
    assert database_name(user_id.replace("-", "_"), app_env=ENV, secret=secret) == name


@given(user_id=st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True))
def test_ascii_case_does_not_matter(user_id: str) -> None:
    assert database_name(user_id.swapcase(), app_env=ENV) == database_name(user_id, app_env=ENV)


def test_no_collisions_among_100k_random_ids() -> None:
    import random

    rng = random.Random(20261127)
    ids = {f"{rng.getrandbits(128):032x}" for _ in range(100_000)}
    names = {database_name(user_id, app_env=ENV) for user_id in ids}
    assert len(names) == len(ids)
