"""CSV answers for the lists (``Accept: text/csv`` or ``?format=csv``).

Every row that matches the list's filters goes out, streamed: the rows are read in
keyset-ordered chunks (the list's own order and index, no OFFSET, no cursor held across
the whole export) and written as they are read, so memory does not grow with the row
count. RFC 4180 (CRLF, minimal quoting), UTF-8, a header row of the JSON field names in
the JSON order, null as an empty cell, values as the JSON has them.
"""
import csv
import datetime
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from flask import Response, request, stream_with_context
from peewee import (
    BooleanField,
    DateTimeField,
    Field,
    FloatField,
    ForeignKeyField,
    IntegerField,
    ModelSelect,
    Node,
    Tuple,
)

from certapi.spec import SPEC
from models import database
from models.base import number, rfc3339

CSV = "text/csv"
JSON = "application/json"
CHUNK_ROWS = 1000
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def wants_csv(format: str | None) -> bool:
    """``format`` (the query parameter) wins; otherwise the Accept header decides, JSON on a tie."""
    if format is not None:
        return format == "csv"
    return request.accept_mimetypes.best_match([JSON, CSV]) == CSV


def json_answer(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A JSON answer of an operation that also documents text/csv: Connexion cannot pick
    the media type itself then and needs it named (connexion #1500, #1956)."""
    return body, 200, {"Content-Type": JSON}


def columns(schema: str) -> list[str]:
    """The JSON field names of a components/schemas object, in the documented order."""
    return list(SPEC["components"]["schemas"][schema]["properties"])


def cell(value: Any) -> Any:
    """A text value as a cell: the formula guard."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


# Rows are read as the database driver returns them, without building model instances
# or converting through Peewee's fields (which cost three quarters of an export's time),
# and written as the JSON writes them (models.base.rfc3339 and number).
def _text(value: Any) -> Any:
    if value is None:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _number(value: Any) -> Any:
    return "" if value is None else number(value)


def _boolean(value: Any) -> str:
    return "" if value is None else "true" if value else "false"


def _timestamp(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):  # SQLite: "YYYY-MM-DD HH:MM:SS[.ffffff]", as the driver stored it
        if len(value) == 26 and value[10] == " ":
            return f"{value[:10]}T{value[11:]}Z"
        if len(value) == 19 and value[10] == " ":
            return f"{value[:10]}T{value[11:]}.000000Z"
        value = datetime.datetime.fromisoformat(value)
    return rfc3339(value) or ""


class Computed(NamedTuple):
    """A column the database computes (a JSON field no table column holds), and how its
    value is written."""
    expression: Node
    format: Callable[[Any], Any] | None


def boolean(expression: Node) -> Computed:
    return Computed(expression, _boolean)


Column = Field | Computed


def _format(field: Column) -> Callable[[Any], Any] | None:
    if isinstance(field, Computed):
        return field.format
    if isinstance(field, ForeignKeyField) or field.primary_key:
        return None  # a uuid the server made or the pattern checked: nothing to guard
    if isinstance(field, DateTimeField):
        return _timestamp
    if isinstance(field, BooleanField):
        return _boolean
    if isinstance(field, FloatField):
        return _number
    if isinstance(field, IntegerField):
        return None  # the csv module writes None as an empty cell
    return _text


def keyset_chunks(query: "ModelSelect[Any]", order: tuple[Field, ...], positions: tuple[int, int],
                  size: int | None = None) -> Iterator[list[tuple]]:
    """``query``'s rows, as the driver returns them, in ``order`` (a column, then a unique
    key: at ``positions`` in each row), ``size`` at a time, each chunk a fresh query
    starting after the last row of the one before."""
    size = size or CHUNK_ROWS
    first, key = order
    after: tuple[Any, Any] | None = None
    while True:
        chunk = query
        if after is not None:
            # A row-value comparison: the index seeks to it (an OR of the two columns
            # made SQLite scan from the list's first row for every chunk).
            chunk = chunk.where(Tuple(first, key) > Tuple(*after))
        sql, params = chunk.order_by(*order).limit(size).sql()
        rows = database.execute_sql(sql, params).fetchall()
        if rows:
            yield rows
        if len(rows) < size:
            return
        after = (rows[-1][positions[0]], rows[-1][positions[1]])


def _lines(names: list[str], formats: list[Callable[[Any], Any] | None],
           chunks: Iterable[list[tuple]]) -> Iterator[bytes]:
    converted = [(i, f) for i, f in enumerate(formats) if f is not None]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(names)
    yield buffer.getvalue().encode()  # the header at once: the first byte does not wait
    for rows in chunks:
        buffer.seek(0)
        buffer.truncate()
        lines = []
        for row in rows:
            cells = list(row)
            for i, convert in converted:
                cells[i] = convert(cells[i])
            lines.append(cells)
        writer.writerows(lines)
        yield buffer.getvalue().encode()


def _position(fields: list[Column], wanted: Field) -> int:
    return next(i for i, field in enumerate(fields) if field is wanted)


def csv_answer(query: "ModelSelect[Any]", order: tuple[Field, ...], fields: Mapping[str, Column],
               filename: str) -> Response:
    """Stream every row of ``query`` as CSV: one column per JSON name of ``fields``, read
    from the field it maps to (the list's joins already in ``query``)."""
    selected = list(fields.values())
    positions = (_position(selected, order[0]), _position(selected, order[1]))
    expressions = [f.expression if isinstance(f, Computed) else f for f in selected]
    chunks = keyset_chunks(query.select(*expressions), order, positions)
    body = _lines(list(fields), [_format(field) for field in selected], chunks)
    return Response(
        stream_with_context(body), status=200, mimetype=CSV,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
