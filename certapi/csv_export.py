"""CSV answers for the lists (``Accept: text/csv`` or ``?format=csv``).

Every row that matches the list's filters goes out, streamed: the rows are read in
keyset-ordered chunks (the list's own order and index, no OFFSET, no cursor held across
the whole export) and written as they are read, so memory does not grow with the row
count. RFC 4180 (CRLF, minimal quoting), UTF-8, a header row of the JSON field names in
the JSON order, null as an empty cell, values as the JSON has them.
"""
import csv
import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Response, request, stream_with_context
from peewee import Field, ModelSelect

from certapi.spec import SPEC

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
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def keyset_chunks(query: "ModelSelect[Any]", order: tuple[Field, ...],
                  size: int | None = None) -> Iterator[list[Any]]:
    """``query``'s rows in ``order`` (which ends with a unique key), ``size`` at a time,
    each chunk a fresh query starting after the last row of the one before."""
    size = size or CHUNK_ROWS
    first, key = order
    after: tuple[Any, Any] | None = None
    while True:
        chunk = query
        if after is not None:
            chunk = chunk.where((first > after[0]) | ((first == after[0]) & (key > after[1])))
        rows = list(chunk.order_by(*order).limit(size))
        if rows:
            yield rows
        if len(rows) < size:
            return
        last = rows[-1]
        after = (getattr(last, first.name), getattr(last, key.name))


def _lines(names: list[str], chunks: Iterable[list[Any]],
           render: Callable[[Any], dict[str, Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(names)
    yield buffer.getvalue().encode()  # the header at once: the first byte does not wait
    for rows in chunks:
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            data = render(row)
            writer.writerow([cell(data[name]) for name in names])
        yield buffer.getvalue().encode()


def csv_answer(query: "ModelSelect[Any]", order: tuple[Field, ...], render: Callable[[Any], dict],
               schema: str, filename: str) -> Response:
    """Stream every row of ``query`` as CSV, one line per ``render(row)``."""
    body = _lines(columns(schema), keyset_chunks(query, order), render)
    return Response(
        stream_with_context(body), status=200, mimetype=CSV,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
