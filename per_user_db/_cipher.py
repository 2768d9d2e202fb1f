"""Encrypting database tokens at rest: AES-256-GCM, in the original package's layout.

A stored token is ``base64(nonce ‖ tag ‖ ciphertext)`` with a 12-byte random nonce and a
16-byte tag, so rows written by the TypeScript original stay readable. The key is 32
bytes, given as 64 hex characters (``PER_USER_DB_TOKEN_KEY``). The primitives are the
``cryptography`` package's; nothing here is home-made.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._settings import SettingsError
from .core._result import Err, Ok, Result
from .core._tokens import SecretToken

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["TOKEN_KEY_VARIABLE", "DecryptError", "TokenCipher"]

TOKEN_KEY_VARIABLE = "PER_USER_DB_TOKEN_KEY"  # noqa: S105 - a variable name, not a secret
_NONCE = 12
_TAG = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class DecryptError:
    """A stored token could not be decrypted: a wrong key, or the row was altered."""

    reason: str

    def __str__(self) -> str:
        return f"cannot decrypt the stored token: {self.reason}"


class TokenCipher:
    """Encrypts and decrypts tokens with one AES-256-GCM key. ``repr`` hides the key."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the token key must be 32 bytes (64 hex characters)")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "<TokenCipher AES-256-GCM>"

    @classmethod
    def from_hex(cls, text: str) -> Result[TokenCipher, SettingsError]:
        try:
            key = bytes.fromhex(text.strip())
        except ValueError:
            key = b""
        if len(key) != 32:
            return Err(
                SettingsError(
                    variable=TOKEN_KEY_VARIABLE, reason="must be 64 hexadecimal characters"
                )
            )
        return Ok(cls(key))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Result[TokenCipher, SettingsError]:
        value = (os.environ if env is None else env).get(TOKEN_KEY_VARIABLE, "")
        if not value.strip():
            return Err(
                SettingsError(
                    variable=TOKEN_KEY_VARIABLE,
                    reason="required to store tokens encrypted (64 hex characters, e.g. "
                    "from: python -c 'import secrets; print(secrets.token_hex(32))')",
                )
            )
        return cls.from_hex(value)

    def encrypt(self, token: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, token.encode("utf-8"), None)
        ciphertext, tag = sealed[:-_TAG], sealed[-_TAG:]
        return base64.b64encode(nonce + tag + ciphertext).decode("ascii")

    def decrypt(self, stored: str) -> Result[str, DecryptError]:
        try:
            raw = base64.b64decode(stored, validate=True)
        except (binascii.Error, ValueError):
            return Err(DecryptError(reason="the stored value is not base64"))
        if len(raw) < _NONCE + _TAG:
            return Err(DecryptError(reason="the stored value is too short"))
        nonce, tag, ciphertext = raw[:_NONCE], raw[_NONCE : _NONCE + _TAG], raw[_NONCE + _TAG :]
        try:
            plain = self._aead.decrypt(nonce, ciphertext + tag, None)
        except InvalidTag:
            return Err(DecryptError(reason="wrong key, or the row was altered"))
        try:
            return Ok(SecretToken(plain.decode("utf-8")))
        except UnicodeDecodeError:
            return Err(DecryptError(reason="the decrypted token is not UTF-8"))
