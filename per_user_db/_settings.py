"""Settings for provisioning, from arguments or the environment.

With ``TURSO_PLATFORM_API_TOKEN`` set, databases are created on Turso; without it, the
embedded default creates SQLite files under ``PER_USER_DB_DATA_DIR``, so everything runs
without a Turso account.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from .core._names import DatabaseNameError, InvalidPrefix, database_name
from .core._result import Err, Ok, Result
from .core._urls import parse_database_url
from .turso._client import DEFAULT_API_URL, Authorization, PlatformClient, RetryPolicy

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Mapping

__all__ = ["Backend", "Settings", "SettingsError"]


def _is_loopback(url: str) -> bool:
    parsed = parse_database_url(url)
    return isinstance(parsed, Ok) and parsed.value.is_loopback


class Backend(Enum):
    TURSO = "turso"
    EMBEDDED = "embedded"


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsError:
    """A setting is missing or invalid; ``variable`` names the environment variable."""

    variable: str
    reason: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where and how user databases are created. ``repr`` hides the secrets."""

    api_token: str | None = field(default=None, repr=False)
    organization: str | None = None
    group: str = "default"
    api_url: str = DEFAULT_API_URL
    app_env: str = "development"
    prefix: str = "next-lift"
    name_secret: bytes | None = field(default=None, repr=False)
    token_days: int | None = 30
    """Lifetime of issued tokens in days; None: they never expire."""
    authorization: Authorization = "full-access"
    data_dir: Path = Path(".per-user-db")
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.api_token is not None and not self.organization:
            raise ValueError("organization is required with an api_token")
        if self.token_days is not None and self.token_days < 1:
            raise ValueError("token_days must be at least 1, or None for never")
        if self.authorization not in ("full-access", "read-only"):
            raise ValueError("authorization must be 'full-access' or 'read-only'")
        database_name("probe", app_env=self.app_env, prefix=self.prefix)

    @property
    def backend(self) -> Backend:
        return Backend.TURSO if self.api_token else Backend.EMBEDDED

    def platform_client(self, *, clock: Callable[[], dt.datetime] | None = None) -> PlatformClient:
        """A Platform API client for these settings (``async with`` it)."""
        if self.api_token is None or self.organization is None:
            raise ValueError("the embedded backend has no Platform API")
        return PlatformClient(
            api_token=self.api_token,
            organization=self.organization,
            api_url=self.api_url,
            retry=self.retry,
            clock=clock,
        )

    def name_of(self, user_id: str) -> str:
        """The database name of ``user_id`` under these settings."""
        return database_name(
            user_id, app_env=self.app_env, prefix=self.prefix, secret=self.name_secret
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Result[Settings, SettingsError]:
        """Read the settings from ``env`` (default ``os.environ``).

        ``TURSO_PLATFORM_API_TOKEN`` (absent: embedded SQLite), ``TURSO_ORGANIZATION``
        (required with a token), ``TURSO_GROUP`` (``default``), ``TURSO_API_URL``,
        ``APP_ENV`` (required with a token; ``development`` otherwise),
        ``PER_USER_DB_PREFIX`` (``next-lift``), ``PER_USER_DB_NAME_SECRET``,
        ``PER_USER_DB_TOKEN_DAYS`` (``30``, or ``never``),
        ``PER_USER_DB_TOKEN_AUTHORIZATION`` (``full-access`` | ``read-only``),
        ``PER_USER_DB_DATA_DIR`` (``.per-user-db``).
        """
        source = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = source.get(name, "").strip()
            return value or None

        token = get("TURSO_PLATFORM_API_TOKEN")
        organization = get("TURSO_ORGANIZATION")
        app_env = get("APP_ENV")
        if token is not None:
            if organization is None:
                return Err(
                    SettingsError(
                        variable="TURSO_ORGANIZATION",
                        reason="required when TURSO_PLATFORM_API_TOKEN is set",
                    )
                )
            if app_env is None:
                return Err(
                    SettingsError(
                        variable="APP_ENV",
                        reason="required when TURSO_PLATFORM_API_TOKEN is set "
                        "(production, ci, development-<name>, preview-pr<N>, ...)",
                    )
                )
        days_text = get("PER_USER_DB_TOKEN_DAYS") or "30"
        if days_text == "never":
            days: int | None = None
        elif days_text.isascii() and days_text.isdigit() and int(days_text) >= 1:
            days = int(days_text)
        else:
            return Err(
                SettingsError(
                    variable="PER_USER_DB_TOKEN_DAYS",
                    reason=f"a whole number of days (at least 1) or 'never', got {days_text!r}",
                )
            )
        authorization = get("PER_USER_DB_TOKEN_AUTHORIZATION") or "full-access"
        if authorization not in ("full-access", "read-only"):
            return Err(
                SettingsError(
                    variable="PER_USER_DB_TOKEN_AUTHORIZATION",
                    reason=f"'full-access' or 'read-only', got {authorization!r}",
                )
            )
        api_url = get("TURSO_API_URL") or DEFAULT_API_URL
        if not api_url.startswith(("https://", "http://")):
            return Err(SettingsError(variable="TURSO_API_URL", reason="must be an http(s) URL"))
        if api_url.startswith("http://") and not _is_loopback(api_url):
            return Err(
                SettingsError(
                    variable="TURSO_API_URL",
                    reason="plain http:// would send the API token unencrypted; use https:// "
                    "(http:// is accepted for 127.0.0.1 and localhost only)",
                )
            )
        secret = get("PER_USER_DB_NAME_SECRET")
        prefix = get("PER_USER_DB_PREFIX") or "next-lift"
        app_env = app_env or "development"
        try:
            database_name("probe", app_env=app_env, prefix=prefix)
        except InvalidPrefix as exc:
            return Err(SettingsError(variable="PER_USER_DB_PREFIX", reason=str(exc)))
        except DatabaseNameError as exc:  # a bad APP_ENV, or the two together too long
            return Err(SettingsError(variable="APP_ENV", reason=str(exc)))
        return Ok(
            cls(
                api_token=token,
                organization=organization,
                group=get("TURSO_GROUP") or "default",
                api_url=api_url,
                app_env=app_env,
                prefix=prefix,
                name_secret=secret.encode() if secret else None,
                token_days=days,
                authorization=authorization,  # type: ignore[arg-type]  # checked above
                data_dir=Path(get("PER_USER_DB_DATA_DIR") or ".per-user-db"),
            )
        )
