"""The test kit's own tests; pytester runs throwaway projects against the installed plugin."""

from __future__ import annotations

pytest_plugins = ["pytester"]
