"""Table statistics for SQLite's query planner.

Without them (SQLite gathers none by itself) the planner picks among indexes by shape
alone, and for "this user's enrollment in this certification" it walked the
certification's index: half a million entries on a 1,000,000-enrollment database, tens of
milliseconds per enroll, where the user's index finds one or two rows. ``ANALYZE`` with
``analysis_limit`` samples each index (0.6 s on that database) instead of reading it
whole. PostgreSQL keeps its own statistics (autovacuum), so there is nothing to do there.

Refreshed by `certapi migrate`, and by the background worker when it starts and then
every ``REFRESH_SECONDS``: data grows after the migration, and a plan chosen on an empty
table's statistics would be as blind as none."""
from models.db import database, is_postgres

REFRESH_SECONDS = 3600
# Rows sampled per index: SQLite's documented suggestion for "fast, approximate".
ANALYSIS_LIMIT = 400


def refresh() -> None:
    if is_postgres():
        return
    with database.atomic():  # the write lock, as every SQLite writer takes it
        database.execute_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        database.execute_sql("ANALYZE")
