"""The lazily imported public names: every one resolves, and the maps that say where each
lives agree with the modules' own ``__all__`` (so they cannot drift apart)."""

from __future__ import annotations

import importlib

import pytest

import per_user_db
import per_user_db.testing


@pytest.mark.parametrize("package", [per_user_db, per_user_db.testing])
def test_every_public_name_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(package, name) is not None, name


def test_the_package_map_points_at_each_names_home() -> None:
    assert set(per_user_db._EXPORTS) == set(per_user_db.__all__)
    for name, module in per_user_db._EXPORTS.items():
        home = importlib.import_module(module, "per_user_db")
        assert getattr(home, name) is getattr(per_user_db, name), name


def test_the_test_kit_map_matches_its_modules() -> None:
    for module, names in per_user_db.testing._HOME.items():
        home = importlib.import_module(f"per_user_db.testing.{module}")
        assert set(names) == set(home.__all__), module
