"""Turso's Platform API (databases, tokens, groups, quotas) over aiohttp."""

from __future__ import annotations

from ._client import PlatformClient, RetryPolicy

__all__ = ["PlatformClient", "RetryPolicy"]
