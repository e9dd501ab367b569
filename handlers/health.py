from peewee import PeeweeException

from models.db import database


def get_health() -> dict[str, str] | tuple[dict[str, str], int]:
    try:
        database.execute_sql("SELECT 1")
    except PeeweeException:
        if not database.is_closed():
            database.close()  # reconnect on the next call instead of reusing a dead link
        return {"status": "unavailable"}, 503
    return {"status": "ok"}
