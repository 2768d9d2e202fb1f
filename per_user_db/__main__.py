"""``python -m per_user_db`` is the ``per-user-db`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
