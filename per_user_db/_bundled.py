"""The migrations and schema that ship with the package.

In a wheel they live in ``per_user_db/_bundled/``; in a source checkout (an editable
install) at the top of the repository.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from ._migration_files import load_migrations

if TYPE_CHECKING:
    from .core._migrations import MigrationSet

__all__ = ["bundled_migrations", "bundled_path"]

_PACKAGE = Path(__file__).parent


def bundled_path(kind: str) -> Path:
    """The folder of the bundled ``migrations`` or ``schema``."""
    for candidate in (_PACKAGE / "_bundled" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the bundled {kind} folder is missing from this installation")


@functools.cache
def bundled_migrations() -> MigrationSet:
    """The per-user schema's migrations (read and validated once per process)."""
    return load_migrations(bundled_path("migrations"))
