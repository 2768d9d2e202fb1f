from __future__ import annotations

import hashlib
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


@pytest.mark.parametrize("user_id", ["", "   ", "\t\n"])
def test_blank_user_id_is_rejected(user_id: str) -> None:
    with pytest.raises(InvalidUserId, match="user_id must be a non-blank str"):
        database_name(user_id, app_env=ENV)


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
    with pytest.raises(InvalidNameSecret, match="secret must be non-empty bytes"):
        database_name("u", app_env=ENV, secret=secret)  # type: ignore[arg-type]


def test_too_long_names_say_how_much_room_there_is() -> None:
    # 64 = len(prefix) + len(app_env) + len("--user-") + 16, so 41 characters fit.
    fits = database_name("u", app_env="e" * 31, prefix="p" * 10)
    assert len(fits) == MAX_NAME_LENGTH
    with pytest.raises(NameTooLong, match="at most 41 characters") as info:
        database_name("u", app_env="e" * 32, prefix="p" * 10)
    assert isinstance(info.value, ValueError)


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
