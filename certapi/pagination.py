"""Page-numbered lists in a stable order (creation time, then uuid)."""
import math
from collections.abc import Callable
from typing import Any

from peewee import Field, ModelSelect


def paginate(query: "ModelSelect[Any]", order_by: tuple, page: int, per_page: int,
             render: Callable, rows: Callable | None = None, total: int | None = None) -> dict:
    """One page of ``query``: the listed model with the list's filters and no joins.

    ``rows`` turns a plain select of the model into the one that loads a page's rows
    with what ``render`` needs (joins). ``total``, when the caller knows it (a tally),
    spares the COUNT, whose cost grows with the matching rows. The page's keys are found
    first, on the (filter, order, key) index alone: a deep OFFSET then steps over index
    entries, not over whole joined rows. A page past the middle is found from the other
    end, in reverse order, so the last page costs what the first does."""
    key: Field = query.model._meta.primary_key
    keys = query.select(key)
    if total is None:
        total = keys.count()
    data = []
    offset = (page - 1) * per_page
    if offset < total:
        from_end = total - offset - per_page
        if from_end < offset:
            reverse = tuple(field.desc() for field in order_by)
            page_keys = keys.order_by(*reverse).limit(per_page + min(from_end, 0)).offset(
                max(from_end, 0))
        else:
            page_keys = keys.order_by(*order_by).limit(per_page).offset(offset)
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
