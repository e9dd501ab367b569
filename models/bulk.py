"""Queries about many rows at once: an INSERT of many rows, a match against many keys.

Peewee builds a query node per value and renders it value by value: for the thousand
enrollments, events and deliveries of a bulk enrollment (and the thousand keys it looks
up) that rendering took longer than the database's own work. Here the statement text is
made once and the values are only converted (each field's ``db_value``, as Peewee does),
so the same values reach the driver as the same parameters."""
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from peewee import SQL, Expression, Field, Model

from models.db import database

# Bound values per statement: under SQLite's default limit (32,766; PostgreSQL's is 65,535).
MAX_VALUES = 30_000


def among(field: Field, values: Collection[Any]) -> Expression:
    """``field IN (values)`` with one placeholder per value, written in one piece."""
    if not values:
        return field.in_([])
    placeholders = "(" + ", ".join([database.param] * len(values)) + ")"
    return field.in_(SQL(placeholders, [field.db_value(value) for value in values]))


def unindexed(field: Field) -> Expression:
    """``field`` as an expression no index serves (``field || ''``, the same text), for a
    condition to be checked on the rows another condition's index finds. SQLite, with no
    table statistics, prefers an index on an equality to one on a long IN list: for the
    rows of a thousand users in one certification it walked all of the certification's
    enrollments, and for a thousand users of one account, all of the account's users."""
    return field.concat("")


def _absent(field: Field) -> Any:
    """What Peewee's insert stores for a field a row leaves out: its default (called if
    callable), else NULL for a nullable field."""
    if field.default is not None:
        return field.default() if callable(field.default) else field.default
    if field.null:
        return None
    raise ValueError(f"Missing value for {field.name}.")


def _statement(model: type[Model], fields: list[Field], rows: int) -> str:
    quote = database.quote
    table = model._meta.table_name.join(quote)
    columns = ", ".join(field.column_name.join(quote) for field in fields)
    row = "(" + ", ".join([database.param] * len(fields)) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row] * rows)


def insert_rows(model: type[Model], rows: Iterable[Mapping[str, Any]]) -> int:
    """INSERT ``rows`` (field name → value, e.g. a model instance's ``__data__``) into
    ``model``'s table, every column named; how many rows went in. A batch of rows is one
    statement: it goes in whole or, refused (an IntegrityError), not at all."""
    fields = list(model._meta.sorted_fields)
    per_batch = max(1, MAX_VALUES // len(fields))
    convert = [(field.name, field.db_value, field) for field in fields]
    statements: dict[int, str] = {}
    params: list[Any] = []
    size = done = 0

    def flush() -> None:
        if size not in statements:
            statements[size] = _statement(model, fields, size)
        database.execute_sql(statements[size], params)

    for row in rows:
        for name, db_value, field in convert:
            params.append(db_value(row[name] if name in row else _absent(field)))
        size += 1
        if size == per_batch:
            flush()
            done, size, params = done + size, 0, []
    if size:
        flush()
    return done + size
