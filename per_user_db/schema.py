"""The bundled per-user schema as typed values, parsed from ``schema/*.sql`` with sqlglot.

    >>> from per_user_db.schema import load_schema
    >>> schema = load_schema()
    >>> schema["programs"].column("name").bounds.max_length
    200

:func:`load_schema` reads the packaged files once (or a folder you pass) and parses them;
nothing else is touched. :func:`parse_schema` does the same from texts.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from ._bundled import bundled_path
from .core._migrations import split_statements
from .core._schema import Bounds, Check, Column, ForeignKey, Index, Schema, Table

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "Bounds",
    "Check",
    "Column",
    "ForeignKey",
    "Index",
    "Schema",
    "SchemaError",
    "Table",
    "check_sql",
    "load_schema",
    "parse_schema",
]


class SchemaError(ValueError):
    """A schema file that does not describe tables the way we understand them."""


def check_sql(expression: exp.Expression) -> str:
    """A CHECK expression as normalised SQLite SQL: no table qualifiers, no quoting noise."""
    copy = expression.copy()
    for column in copy.find_all(exp.Column):
        column.set("table", None)
    return copy.sql(dialect="sqlite")


def _number(node: exp.Expression) -> float | None:
    if isinstance(node, exp.Neg):
        inner = _number(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this)
    return None


def _column_name(node: exp.Expression) -> str | None:
    return node.name if isinstance(node, exp.Column) else None


_OP: dict[type[exp.Expression], str] = {exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


def _learn(
    node: exp.Expression,
    bounds: dict[str, Bounds],
    relations: list[tuple[str, str, str]],
) -> None:
    """Record what ``node`` (a CHECK expression) says about single columns."""
    if isinstance(node, exp.Paren):
        _learn(node.this, bounds, relations)
    elif isinstance(node, exp.And):
        _learn(node.this, bounds, relations)
        _learn(node.expression, bounds, relations)
    elif isinstance(node, exp.Or):
        # "x IS NULL OR <rule>": the rule applies whenever there is a value.
        for side, other in ((node.this, node.expression), (node.expression, node.this)):
            if isinstance(side, exp.Is) and isinstance(side.expression, exp.Null):
                _learn(other, bounds, relations)
                return
    elif isinstance(node, exp.Between):
        low, high = _number(node.args["low"]), _number(node.args["high"])
        target = node.this
        if isinstance(target, exp.Length) and (name := _column_name(target.this)):
            current = bounds.get(name, Bounds())
            bounds[name] = replace(
                current,
                min_length=int(low) if low is not None else current.min_length,
                max_length=int(high) if high is not None else current.max_length,
            )
        elif name := _column_name(target):
            current = bounds.get(name, Bounds())
            bounds[name] = replace(current, minimum=low, maximum=high)
    elif (operator := _OP.get(type(node))) is not None:
        left, right = node.this, node.expression
        lname, rname = _column_name(left), _column_name(right)
        if lname and rname:
            relations.append((lname, operator, rname))
            return
        name, value, op = (
            (lname, _number(right), operator) if lname else (rname, _number(left), _FLIP[operator])
        )
        if name is None or value is None:
            return
        current = bounds.get(name, Bounds())
        if op in (">", ">="):
            bounds[name] = replace(current, minimum=value, minimum_inclusive=op == ">=")
        else:
            bounds[name] = replace(current, maximum=value, maximum_inclusive=op == "<=")


def _references(key: exp.ForeignKey) -> tuple[str, tuple[str, ...], str, str]:
    reference = key.args["reference"]
    target = reference.this
    table = target.this.name if isinstance(target, exp.Schema) else target.name
    columns = tuple(c.name for c in target.expressions) if isinstance(target, exp.Schema) else ()
    on_update = on_delete = "NO ACTION"
    for option in reference.args.get("options") or []:
        text = str(option).upper()
        if text.startswith("ON UPDATE "):
            on_update = text.removeprefix("ON UPDATE ")
        elif text.startswith("ON DELETE "):
            on_delete = text.removeprefix("ON DELETE ")
    return table, columns, on_update, on_delete


def _table(create: exp.Create, source: str) -> Table:
    schema = create.this
    if not isinstance(schema, exp.Schema):
        raise SchemaError(f"{source}: CREATE TABLE without a column list")
    name = schema.this.name
    columns: list[Column] = []
    primary: list[str] = []
    keys: list[ForeignKey] = []
    checks: list[Check] = []
    bounds: dict[str, Bounds] = {}
    relations: list[tuple[str, str, str]] = []

    def add_check(expression: exp.Expression, check_name: str | None) -> None:
        checks.append(
            Check(
                name=check_name,
                sql=check_sql(expression),
                columns=tuple(sorted({c.name for c in expression.find_all(exp.Column)})),
            )
        )
        _learn(expression, bounds, relations)

    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            kind = item.args.get("kind")
            column = Column(name=item.name, type=kind.sql(dialect="sqlite").lower() if kind else "")
            for constraint in item.args.get("constraints") or []:
                rule = constraint.args.get("kind")
                if isinstance(rule, exp.NotNullColumnConstraint):
                    column = replace(column, not_null=True)
                elif isinstance(rule, exp.PrimaryKeyColumnConstraint):
                    column = replace(column, primary_key=True)
                    primary.append(column.name)
                elif isinstance(rule, exp.DefaultColumnConstraint):
                    column = replace(column, default=rule.this.sql(dialect="sqlite"))
                elif isinstance(rule, exp.CheckColumnConstraint):
                    constraint_name = constraint.args.get("this")
                    add_check(rule.this, constraint_name.name if constraint_name else None)
            columns.append(column)
        elif isinstance(item, exp.ForeignKey):
            table, references, on_update, on_delete = _references(item)
            keys.append(
                ForeignKey(
                    columns=tuple(c.name for c in item.expressions),
                    table=table,
                    references=references,
                    on_update=on_update,
                    on_delete=on_delete,
                )
            )
        elif isinstance(item, exp.Constraint):
            for rule in item.expressions:
                if isinstance(rule, exp.CheckColumnConstraint):
                    add_check(rule.this, item.name)
        elif isinstance(item, exp.PrimaryKey):
            primary.extend(e.name for e in item.expressions)
        else:
            raise SchemaError(f"{source}: table {name}: unsupported clause {item.sql()!r}")
    columns = [replace(c, bounds=bounds.get(c.name, Bounds())) for c in columns]
    return Table(
        name=name,
        columns=tuple(columns),
        primary_key=tuple(primary),
        foreign_keys=tuple(keys),
        checks=tuple(checks),
        relations=tuple(relations),
    )


def parse_schema(files: Mapping[str, str]) -> Schema:
    """A :class:`Schema` from ``{filename: SQL}``: CREATE TABLE and CREATE INDEX statements
    separated by ``--> statement-breakpoint`` lines."""
    tables: dict[str, Table] = {}
    indexes: list[tuple[str, Index, str]] = []
    for filename in sorted(files):
        for statement in split_statements(files[filename]):
            try:
                parsed = sqlglot.parse_one(statement, read="sqlite")
            except sqlglot.errors.ParseError as exc:
                raise SchemaError(f"{filename}: {exc}") from None
            if not isinstance(parsed, exp.Create):
                raise SchemaError(f"{filename}: only CREATE TABLE and CREATE INDEX belong here")
            kind = str(parsed.args.get("kind", "")).upper()
            if kind == "TABLE":
                table = _table(parsed, filename)
                tables[table.name] = table
            elif kind == "INDEX":
                index = parsed.this
                columns = tuple(
                    o.this.name if isinstance(o, exp.Ordered) else o.name
                    for o in index.args["params"].args["columns"]
                )
                owner = index.args["table"].name
                indexes.append(
                    (
                        owner,
                        Index(
                            name=index.name, columns=columns, unique=bool(parsed.args.get("unique"))
                        ),
                        filename,
                    )
                )
            else:
                raise SchemaError(f"{filename}: unsupported statement CREATE {kind}")
    for owner, index, filename in indexes:
        if owner not in tables:
            raise SchemaError(f"{filename}: index {index.name} is on unknown table {owner}")
        tables[owner] = replace(tables[owner], indexes=(*tables[owner].indexes, index))
    return Schema(tables=tuple(tables[name] for name in sorted(tables)))


def read_schema_files(path: Path) -> dict[str, str]:
    return {f.name: f.read_text(encoding="utf-8") for f in sorted(path.glob("*.sql"))}


@functools.cache
def _bundled() -> Schema:
    return parse_schema(read_schema_files(bundled_path("schema")))


def load_schema(path: str | Path | None = None) -> Schema:
    """The schema in ``path`` (default: the bundled per-user schema, parsed once)."""
    if path is None:
        return _bundled()
    return parse_schema(read_schema_files(Path(path)))
