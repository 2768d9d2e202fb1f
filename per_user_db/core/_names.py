"""Deterministic database names derived from user ids.

A user's database name is ``{prefix}-{app_env}-user-{h}`` where ``h`` is the first 16
hex digits of SHA-256 over the normalized user id (lower-cased, ``_`` replaced by
``-``). That is exactly the original package's scheme, so databases it created are
found again.

With a ``secret``, ``h`` is HMAC-SHA256 keyed by the secret instead: a name then no
longer reveals a guessable user id (an e-mail address, a sequential number) to anyone
who can list the organization's databases, at the price that the names depend on the
secret: losing or rotating it loses the mapping from user to database.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = [
    "MAX_NAME_LENGTH",
    "DatabaseNameError",
    "InvalidAppEnv",
    "InvalidNameSecret",
    "InvalidPrefix",
    "InvalidUserId",
    "NameTooLong",
    "database_name",
    "is_valid_database_name",
    "normalize_user_id",
]

MAX_NAME_LENGTH = 64
"""Turso accepts database names of at most 64 characters."""

_HASH_HEX_DIGITS = 16
_SEGMENT = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


class DatabaseNameError(ValueError):
    """Base of every error :func:`database_name` raises for bad input."""


class InvalidUserId(DatabaseNameError):
    """The user id is not a non-blank ``str``."""


class InvalidAppEnv(DatabaseNameError):
    """``app_env`` is not a name segment (``[a-z0-9-]``, no leading/trailing ``-``)."""


class InvalidPrefix(DatabaseNameError):
    """``prefix`` is not a name segment (``[a-z0-9-]``, no leading/trailing ``-``)."""


class InvalidNameSecret(DatabaseNameError):
    """``secret`` is not non-empty ``bytes``."""


class NameTooLong(DatabaseNameError):
    """The name would exceed Turso's limit of :data:`MAX_NAME_LENGTH` characters."""


def normalize_user_id(user_id: str) -> str:
    """Lower-case and replace ``_`` by ``-``, as the original package did."""
    return user_id.lower().replace("_", "-")


def _check_segment(value: object, argument: str, error: type[DatabaseNameError]) -> str:
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise error(
            f"{argument} must be lowercase letters, digits and single '-' between them "
            f"(no leading or trailing '-'), got {value!r}"
        )
    return value


def database_name(
    user_id: str,
    *,
    app_env: str,
    prefix: str = "next-lift",
    secret: bytes | None = None,
) -> str:
    """Return the Turso database name of ``user_id`` in ``app_env``.

    The same user id (up to case and ``_``/``-``) always gives the same name::

        >>> database_name("user-1", app_env="development-test")
        'next-lift-development-test-user-c6c289e49e9c05b2'

    Raises a :class:`DatabaseNameError` subclass naming the argument and the rule it broke.
    """
    # Annotations do not bind untyped callers: check the types we rely on.
    untyped_id: object = user_id
    if not isinstance(untyped_id, str) or not untyped_id.strip():
        shown = repr(untyped_id) if isinstance(untyped_id, str) else type(untyped_id).__name__
        raise InvalidUserId(f"user_id must be a non-blank str, got {shown}")
    _check_segment(app_env, "app_env", InvalidAppEnv)
    _check_segment(prefix, "prefix", InvalidPrefix)
    payload = normalize_user_id(user_id).encode("utf-8")
    if secret is None:
        digest = hashlib.sha256(payload).hexdigest()
    else:
        untyped_secret: object = secret
        if not isinstance(untyped_secret, bytes) or not untyped_secret:
            raise InvalidNameSecret("secret must be non-empty bytes")
        digest = hmac.new(secret, payload, hashlib.sha256).hexdigest()
    name = f"{prefix}-{app_env}-user-{digest[:_HASH_HEX_DIGITS]}"
    if len(name) > MAX_NAME_LENGTH:
        room = MAX_NAME_LENGTH - len("--user-") - _HASH_HEX_DIGITS
        raise NameTooLong(
            f"database name {name!r} is {len(name)} characters, over Turso's "
            f"{MAX_NAME_LENGTH}: prefix and app_env together may have at most {room} characters"
        )
    return name


def is_valid_database_name(name: str) -> bool:
    """Whether ``name`` is acceptable to Turso: ``[a-z0-9-]``, 1-64, no edge ``-``."""
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None
