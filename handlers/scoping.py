"""Lookups confined to the caller's account: another tenant's rows are simply absent."""
from certapi.auth import account_uuid
from certapi.errors import NotFound


def owned(model, uuid: str, label: str):
    """The caller's ``model`` row with this uuid, or a 404 naming ``label``."""
    row = model.get_or_none((model.uuid == uuid.lower()) & (model.account == account_uuid()))
    if row is None:
        raise NotFound(f"{label} not found")
    return row


def created(body: dict, location: str):
    return body, 201, {"Location": location}


def no_content():
    return None, 204
