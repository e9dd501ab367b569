"""Lookups confined to the caller's account: another tenant's rows are simply absent."""
from typing import Any, TypeVar

from certapi.errors import NotFound
from models.base import BaseModel

Row = TypeVar("Row", bound=BaseModel)


def owned(model: type[Row], uuid: str, label: str, account: str) -> Row:
    """``account``'s ``model`` row with this uuid, or a 404 naming ``label``."""
    row = model.get_or_none(
        (model.uuid == uuid.lower()) & (model.account == account)  # type: ignore[attr-defined]
    )
    if row is None:
        raise NotFound(f"{label} not found")
    return row


def created(body: dict[str, Any], location: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    return body, 201, {"Location": location}


def no_content() -> tuple[None, int]:
    return None, 204
