"""Page-numbered lists in a stable order (creation time, then uuid)."""
import math
from typing import Callable

from peewee import ModelSelect


def paginate(query: ModelSelect, order_by: tuple, page: int, per_page: int,
             render: Callable) -> dict:
    total = query.count()
    rows = query.order_by(*order_by).paginate(page, per_page) if total else []
    return {
        "data": [render(row) for row in rows],
        "pagination": {
            "page": page,
            "per_page": per_page,
            "total": total,
            "total_pages": math.ceil(total / per_page),
        },
    }
