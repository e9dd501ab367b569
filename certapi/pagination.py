"""Page-numbered lists in a stable order (creation time, then uuid)."""
import math
from collections.abc import Callable
from typing import Any

from peewee import Field, ModelSelect


def paginate(query: "ModelSelect[Any]", order_by: tuple, page: int, per_page: int,
             render: Callable, rows: Callable | None = None) -> dict:
    """One page of ``query``: the listed model with the list's filters and no joins.

    ``rows`` turns a plain select of the model into the one that loads a page's rows
    with what ``render`` needs (joins). The page's keys are found first, on the
    (filter, order, key) index alone: a deep OFFSET then steps over index entries, not
    over whole joined rows, and the count reads an index too."""
    key: Field = query.model._meta.primary_key
    keys = query.select(key)
    total = keys.count()
    data = []
    if (page - 1) * per_page < total:
        page_keys = keys.order_by(*order_by).paginate(page, per_page)
        base = query.model.select()
        loaded = (rows(base) if rows else base).where(key.in_(page_keys))
        data = [render(row) for row in loaded.order_by(*order_by)]
    return {
        "data": data,
        "pagination": {
            "page": page,
            "per_page": per_page,
            "total": total,
            "total_pages": math.ceil(total / per_page),
        },
    }
