"""Row factories for every table of the per-user schema, derived from the schema itself.

No class per table: :func:`factories` reads :func:`per_user_db.schema.load_schema` and
makes valid rows from each column's type, NOT NULL, DEFAULT, foreign keys and the bounds
its CHECK constraints state::

    f = factories(db)
    (program,) = await f.programs.create()            # {"id": ..., "name": "Program 1", ...}
    days = await f.days.create(3, program_id=program)  # a parent row or its id
    (log,) = await f.set_logs.create(reps=5)           # makes exercise_logs -> workouts, exercises

What a column gets when not overridden:

* a single-column text primary key: a new 12-character id (``secrets.token_urlsafe``);
* a foreign key: the key of a parent row made by that table's factory. One parent is
  shared by the ``n`` rows of a ``create(n)``, except where the key column is unique (or
  the primary key, as in ``weight_reps_params``): then each row gets its own;
* nullable columns and columns with a DEFAULT: nothing (NULL, or the database default);
* enum-like text (no CHECK in the schema, the app treats it as an enum): the first of
  :data:`ENUM_CHOICES`;
* ``name``/``label``/``title``: ``"<Table singular> <n>"`` (``Program 1``, ``Day 2``,
  ``One rep max 3``), other text ``"<column> <n>"``, fitted to its length bounds;
* ``*_order`` integers: ``n - 1``; ``*_at`` integers: epoch milliseconds,
  :data:`EPOCH_MS_BASE` plus ``n - 1`` minutes; other numbers a value inside their bounds
  (``10`` when only a lower bound, the middle of a range: ``rpe`` 5.5).

``n`` is the table's sequence number, counted per :class:`Factories` from 1 (auto-made
parents count too); :meth:`Factories.reset_sequences` starts them over. Relations between
columns (``achieved_at <= registered_at``) are repaired after overrides by moving a
column that was not overridden. An override may be a value, a callable taking ``n``, or,
for a foreign key, the parent row (a mapping) itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from per_user_db.schema import load_schema

if TYPE_CHECKING:
    from per_user_db._database import Database
    from per_user_db.schema import Bounds, Column, ForeignKey, Schema, Table

__all__ = [
    "ENUM_CHOICES",
    "EPOCH_MS_BASE",
    "PARENT_OVERRIDES",
    "Factories",
    "FactoryRow",
    "TableFactory",
    "factories",
    "new_id",
]

FactoryRow = dict[str, Any]
"""An inserted row as the database stores it (read back after the insert)."""

ENUM_CHOICES: Mapping[str, tuple[str, ...]] = {
    # Plain text columns the app reads as enums (the schema has no CHECK for them), by
    # column name wherever it appears. The first choice is the factories' default.
    "plan_type": ("weight_reps", "weight_rpe", "reps_rpe"),
    "weight_type": ("kg", "percent_1rm"),
    "weight_input_unit": ("kg", "lbs"),
    "default_weight_input_unit": ("kg", "lbs"),
}

PARENT_OVERRIDES: Mapping[tuple[str, str], Mapping[str, Any]] = {
    # A parent made for (child table, key column) gets these values: the params row of a
    # set plan belongs to a plan of the matching type.
    ("weight_reps_params", "set_plan_id"): {"plan_type": "weight_reps"},
    ("weight_rpe_params", "set_plan_id"): {"plan_type": "weight_rpe"},
    ("reps_rpe_params", "set_plan_id"): {"plan_type": "reps_rpe"},
}

EPOCH_MS_BASE = 1_767_225_600_000
"""2026-01-01T00:00:00Z in epoch milliseconds: ``*_at`` values start here."""

_MINUTE_MS = 60_000
_NAME_COLUMNS = frozenset({"name", "label", "title"})


def new_id() -> str:
    """A 12-character text id, as the app makes them (URL-safe alphabet)."""
    return secrets.token_urlsafe(9)


def _singular(table: str) -> str:
    words = table.split("_")
    last = words[-1]
    if last.endswith("ies"):
        last = last[:-3] + "y"
    elif last.endswith(("xes", "ches", "shes", "sses")):
        last = last[:-2]
    elif last.endswith("s"):
        last = last[:-1]
    return " ".join([*words[:-1], last]).capitalize()


def _fit(text: str, bounds: Bounds) -> str:
    if bounds.max_length is not None:
        text = text[: bounds.max_length]
    if bounds.min_length is not None and len(text) < bounds.min_length:
        text = text.ljust(bounds.min_length, "x")
    return text


def _clamp(value: float, bounds: Bounds, *, integer: bool) -> float:
    step = 1.0 if integer else 0.5
    low, high = bounds.minimum, bounds.maximum
    if low is not None and (value < low or (value == low and not bounds.minimum_inclusive)):
        value = low if bounds.minimum_inclusive else low + step
    if high is not None and (value > high or (value == high and not bounds.maximum_inclusive)):
        value = high if bounds.maximum_inclusive else high - step
    return value


def _number(column: Column, sequence: int) -> int | float:
    integer = column.type.startswith("int")
    bounds = column.bounds
    if integer and column.name.endswith("_at"):
        return EPOCH_MS_BASE + (sequence - 1) * _MINUTE_MS
    if column.name.endswith("_order"):
        value: float = sequence - 1
    elif bounds.minimum is not None and bounds.maximum is not None:
        value = (bounds.minimum + bounds.maximum) / 2
    elif bounds.minimum is not None:
        value = bounds.minimum + 10
    elif bounds.maximum is not None:
        value = bounds.maximum - 10
    else:
        value = 10
    value = _clamp(value, bounds, integer=integer)
    return int(value) if integer else float(value)


def _generated(table: Table, column: Column, sequence: int) -> object:
    if column.name in ENUM_CHOICES:
        return ENUM_CHOICES[column.name][0]
    if column.primary_key and column.type == "text" and table.primary_key == (column.name,):
        return new_id()
    if column.type == "text":
        stem = _singular(table.name) if column.name in _NAME_COLUMNS else column.name
        return _fit(f"{stem} {sequence}", column.bounds)
    if column.type in ("integer", "int", "real", "numeric", "float", "double"):
        return _number(column, sequence)
    raise TypeError(
        f"the factory of {table.name} cannot make a {column.type!r} value for "
        f"{column.name}; pass it as an override"
    )


_SATISFIED = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _repair(table: Table, values: dict[str, Any], overridden: set[str]) -> None:
    """Make two-column relations hold by moving the side that was not overridden."""
    for left, operator, right in table.relations:
        a, b = values.get(left), values.get(right)
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            continue
        if _SATISFIED[operator](a, b):
            continue
        gap = 0 if operator in ("<=", ">=") else 1
        direction = 1 if operator in ("<", "<=") else -1  # right must be above left for "<"
        if right not in overridden:
            values[right] = a + direction * gap
        elif left not in overridden:
            values[left] = b - direction * gap


def _is_rowid(table: Table, column: Column) -> bool:
    # An INTEGER PRIMARY KEY is SQLite's rowid: the database numbers it.
    return column.type == "integer" and table.primary_key == (column.name,)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class TableFactory:
    """Makes rows of one table; get it as ``factories(db).<table name>``."""

    def __init__(self, owner: Factories, table: Table) -> None:
        self._owner = owner
        self.table = table

    def __repr__(self) -> str:
        return f"<TableFactory {self.table.name}>"

    async def create_one(self, **overrides: Any) -> FactoryRow:
        """Insert one row; see :meth:`create`."""
        (row,) = await self.create(1, **overrides)
        return row

    async def create(self, n: int = 1, **overrides: Any) -> list[FactoryRow]:
        """Insert ``n`` valid rows (one atomic batch, after any parents) and return them
        as the database stored them. ``overrides`` set columns: a value, a callable taking
        the row's sequence number, or for a foreign key column a parent row."""
        table = self.table
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        names = {c.name for c in table.columns}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"{table.name} has no column(s) {unknown}; it has {sorted(names)}")
        keyed = [await self._parent_keys(key, n, overrides) for key in table.foreign_keys]
        statements: list[tuple[str, list[Any]]] = []
        for index in range(n):
            sequence = self._owner._next(table.name)
            values: dict[str, Any] = {}
            for column in table.columns:
                if column.name in overrides or table.foreign_key_of(column.name) is not None:
                    continue
                if column.required and not _is_rowid(table, column):
                    values[column.name] = _generated(table, column, sequence)
            for per_row in keyed:
                values.update(per_row[index])
            for name, given in overrides.items():
                values[name] = self._resolve(name, given, sequence)
            _repair(table, values, set(overrides))
            statements.append(self._insert(values))
            # Read the row back rather than use RETURNING: SQLite's RETURNING reports a
            # whole-number REAL as an integer (10 for 10.0); a SELECT gives the stored type.
            statements.append(
                (f"SELECT * FROM {_quote(table.name)} WHERE rowid = last_insert_rowid()", [])
            )
        results = await self._owner.db.batch(list(statements))
        return [result.rows[0].asdict() for result in results[1::2]]

    def _resolve(self, column: str, given: Any, sequence: int) -> Any:
        key = self.table.foreign_key_of(column)
        if key is not None and isinstance(given, Mapping):
            return given[self._owner._referenced(key)[key.columns.index(column)]]
        if callable(given):
            return given(sequence)
        return given

    async def _parent_keys(
        self, key: ForeignKey, n: int, overrides: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Per row, the key columns' values from newly made parents (none if overridden)."""
        given = [c for c in key.columns if c in overrides]
        if given:
            if len(given) != len(key.columns):
                raise TypeError(
                    f"{self.table.name}: override all of {list(key.columns)} or none of them"
                )
            return [{} for _ in range(n)]
        unique = any(c in self.table.unique_columns for c in key.columns) or (
            key.columns == self.table.primary_key
        )
        parent_overrides = PARENT_OVERRIDES.get((self.table.name, key.columns[0]), {})
        parents = await self._owner[key.table].create(n if unique else 1, **parent_overrides)
        referenced = self._owner._referenced(key)
        return [
            {
                column: parents[index if unique else 0][target]
                for column, target in zip(key.columns, referenced, strict=True)
            }
            for index in range(n)
        ]

    def _insert(self, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
        table = _quote(self.table.name)
        if not values:
            return f"INSERT INTO {table} DEFAULT VALUES", []
        columns = ", ".join(_quote(c) for c in values)
        marks = ", ".join("?" for _ in values)
        return f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values())


class Factories:
    """One factory per table of ``schema`` (default: the bundled one), writing to ``db``.

    ``f.programs``, ``f["programs"]``; :attr:`tables` lists the names. Sequence numbers
    are per table and per :class:`Factories`.
    """

    def __init__(self, db: Database, schema: Schema | None = None) -> None:
        self.db = db
        self.schema = schema if schema is not None else load_schema()
        self._factories = {t.name: TableFactory(self, t) for t in self.schema}
        self._sequences: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Factories {len(self._factories)} tables on {self.db!r}>"

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def __getitem__(self, table: str) -> TableFactory:
        try:
            return self._factories[table]
        except KeyError:
            raise KeyError(f"the schema has no table {table!r}") from None

    def __getattr__(self, table: str) -> TableFactory:
        if table.startswith("_"):
            raise AttributeError(table)
        try:
            return self._factories[table]
        except KeyError:
            raise AttributeError(f"the schema has no table {table!r}") from None

    def reset_sequences(self) -> None:
        """Start every table's sequence at 1 again (``Program 1`` …)."""
        self._sequences.clear()

    def sequence(self, table: str) -> int:
        """The sequence number the last row of ``table`` got (0: none yet)."""
        return self._sequences.get(table, 0)

    def _next(self, table: str) -> int:
        self._sequences[table] = self._sequences.get(table, 0) + 1
        return self._sequences[table]

    def _referenced(self, key: ForeignKey) -> tuple[str, ...]:
        return key.references or self.schema[key.table].primary_key


def factories(db: Database, schema: Schema | None = None) -> Factories:
    """Factories for every table of ``schema`` (default: the bundled per-user schema)."""
    return Factories(db, schema)
