"""The per-user schema as values: tables, columns, keys, CHECKs, indexes.

Built by :mod:`per_user_db.schema` from the declarative ``schema/*.sql`` files. Besides
the shape, each column carries the simple bounds its CHECK constraints state
(``length(x) BETWEEN 1 AND 200``, ``x > 0``, ``x BETWEEN 1 AND 10``), so a test factory
can make valid rows without hand-written rules per table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Bounds", "Check", "Column", "ForeignKey", "Index", "Schema", "Table"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Bounds:
    """What the CHECK constraints allow for one column (None: unbounded)."""

    minimum: float | None = None
    minimum_inclusive: bool = True
    maximum: float | None = None
    maximum_inclusive: bool = True
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    name: str
    type: str
    """The declared type, lower-case (``text``, ``integer``, ``real``)."""
    not_null: bool = False
    default: str | None = None
    """The DEFAULT as SQL text (``'kg'``, ``2.5``), None without one."""
    primary_key: bool = False
    bounds: Bounds = field(default_factory=Bounds)

    @property
    def required(self) -> bool:
        """An INSERT must give it a value: NOT NULL (or the key) and no default."""
        return (self.not_null or self.primary_key) and self.default is None


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str
    references: tuple[str, ...]
    on_update: str = "NO ACTION"
    on_delete: str = "NO ACTION"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    name: str | None
    sql: str
    """The check's expression as SQLite SQL, normalised (no table qualifiers)."""
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    checks: tuple[Check, ...] = ()
    indexes: tuple[Index, ...] = ()
    relations: tuple[tuple[str, str, str], ...] = ()
    """Checks between two columns, as ``(left, operator, right)``: ``("achieved_at", "<=",
    "registered_at")``."""

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name} has no column {name!r}")

    def foreign_key_of(self, column: str) -> ForeignKey | None:
        for key in self.foreign_keys:
            if column in key.columns:
                return key
        return None

    @property
    def unique_columns(self) -> frozenset[str]:
        """Columns that are unique on their own (a one-column unique index or key)."""
        single = {i.columns[0] for i in self.indexes if i.unique and len(i.columns) == 1}
        if len(self.primary_key) == 1:
            single.add(self.primary_key[0])
        return frozenset(single)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schema:
    tables: tuple[Table, ...]

    def __iter__(self) -> Iterator[Table]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"the schema has no table {name!r}")

    def __getitem__(self, name: str) -> Table:
        return self.table(name)

    def in_dependency_order(self) -> tuple[Table, ...]:
        """Parents before children (by foreign keys); ties broken by name."""
        done: list[Table] = []
        placed: set[str] = set()
        pending = sorted(self.tables, key=lambda t: t.name)
        while pending:
            ready = [
                t
                for t in pending
                if all(k.table in placed or k.table == t.name for k in t.foreign_keys)
            ]
            if not ready:  # a cycle: place the rest as they are
                ready = pending[:1]
            for table in ready:
                done.append(table)
                placed.add(table.name)
                pending.remove(table)
        return tuple(done)
