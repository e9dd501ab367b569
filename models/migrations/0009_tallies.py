"""Counts kept beside the rows they count, so a list's exact `total` and a certification's
stats cost the same at a million enrollments as at ten.

``enrollment_tally`` holds, per certification × partnership × status, the number of
enrollments and the sums the stats average (best scores, days to complete);
``user_tally`` holds the users per account × partnership. Database triggers keep them:
every insert, delete and update of a counted column, whichever code path or foreign-key
cascade makes it, changes the tally in the same transaction. No partnership is the key
'' (a NULL in a primary key would not conflict on PostgreSQL).

SQLite runs one writer at a time, so row triggers suffice. On PostgreSQL a tally row is
locked by the transaction that changes it until commit; statement triggers with
transition tables change each tally row once per statement, in key order, and skip the
rows whose deltas cancel (a progress report that changes no counted column locks none),
so concurrent writers of one certification queue briefly instead of deadlocking.

The migration locks the counted tables while it builds the tallies from the existing rows,
so no write lands between the count and the trigger. It also adds the indexes that make
a filtered list page and the stats' expiry counts index ranges, and drops migration
0005's stats index, which the tallies replace.
"""
from collections.abc import Callable

ENROLLMENT_TABLE = """CREATE TABLE enrollment_tally (
    certification_uuid VARCHAR(36) NOT NULL,
    partner_key VARCHAR(36) NOT NULL,
    status VARCHAR(16) NOT NULL,
    enrollments BIGINT NOT NULL,
    scored BIGINT NOT NULL,
    best_score_sum DOUBLE PRECISION NOT NULL,
    timed BIGINT NOT NULL,
    days_sum DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (certification_uuid, partner_key, status))"""

USER_TABLE = """CREATE TABLE user_tally (
    account_id VARCHAR(36) NOT NULL,
    partner_key VARCHAR(36) NOT NULL,
    users BIGINT NOT NULL,
    PRIMARY KEY (account_id, partner_key))"""

ENROLLMENT_SUMS = ("enrollments", "scored", "best_score_sum", "timed", "days_sum")
ENROLLMENT_KEY = "certification_uuid, partner_key, status"


def _days(row: str, postgres: bool) -> str:
    if postgres:
        return f"EXTRACT(EPOCH FROM ({row}completed_at - {row}enrolled_at)) / 86400.0"
    return f"(julianday({row}completed_at) - julianday({row}enrolled_at))"


def _named(expressions: list[str], names: tuple[str, ...], alias: bool) -> str:
    if not alias:
        return ", ".join(expressions)
    return ", ".join(f"{e} AS {n}" for e, n in zip(expressions, names, strict=True))


def _enrollment_values(row: str, sign: str, postgres: bool, alias: bool = False) -> str:
    """The tally columns one enrollment row contributes (``row`` is 'NEW.', 'OLD.' or '';
    ``alias`` names them, for a derived table)."""
    return _named([
        f"{row}certification_uuid", f"COALESCE({row}partner_uuid, '')", f"{row}status",
        f"{sign}1", f"CASE WHEN {row}assessment_best_score IS NULL THEN 0 ELSE {sign}1 END",
        f"{sign}COALESCE({row}assessment_best_score, 0)",
        f"CASE WHEN {row}completed_at IS NULL THEN 0 ELSE {sign}1 END",
        f"{sign}COALESCE({_days(row, postgres)}, 0)",
    ], ("certification_uuid", "partner_key", "status", *ENROLLMENT_SUMS), alias)


def _user_values(row: str, sign: str, alias: bool = False) -> str:
    return _named([f"{row}account_id", f"COALESCE({row}partner_uuid, '')", f"{sign}1"],
                  ("account_id", "partner_key", "users"), alias)


def _upsert(table: str, key: str, sums: tuple[str, ...]) -> str:
    columns = ", ".join((key, *sums))
    added = ", ".join(f"{s} = {table}.{s} + excluded.{s}" for s in sums)
    return f"INSERT INTO {table} ({columns}) {{rows}} ON CONFLICT ({key}) DO UPDATE SET {added}"


ENROLLMENT_UPSERT = _upsert("enrollment_tally", ENROLLMENT_KEY, ENROLLMENT_SUMS)
USER_UPSERT = _upsert("user_tally", "account_id, partner_key", ("users",))
COUNTED = ("certification_uuid", "partner_uuid", "status", "assessment_best_score",
           "completed_at", "enrolled_at")


def _sqlite_triggers() -> list[str]:
    enrollment = lambda row, sign: ENROLLMENT_UPSERT.format(  # noqa: E731
        rows=f"VALUES ({_enrollment_values(row, sign, False)})")
    user = lambda row, sign: USER_UPSERT.format(  # noqa: E731
        rows=f"VALUES ({_user_values(row, sign)})")
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in COUNTED)
    return [
        f"CREATE TRIGGER enrollment_tally_insert AFTER INSERT ON enrollment "
        f"BEGIN {enrollment('NEW.', '')}; END",
        f"CREATE TRIGGER enrollment_tally_delete AFTER DELETE ON enrollment "
        f"BEGIN {enrollment('OLD.', '-')}; END",
        f"CREATE TRIGGER enrollment_tally_update AFTER UPDATE ON enrollment WHEN {changed} "
        f"BEGIN {enrollment('OLD.', '-')}; {enrollment('NEW.', '')}; END",
        f"CREATE TRIGGER user_tally_insert AFTER INSERT ON \"user\" BEGIN {user('NEW.', '')}; END",
        f"CREATE TRIGGER user_tally_delete AFTER DELETE ON \"user\" BEGIN {user('OLD.', '-')}; END",
        "CREATE TRIGGER user_tally_update AFTER UPDATE ON \"user\" WHEN OLD.account_id IS NOT "
        "NEW.account_id OR OLD.partner_uuid IS NOT NEW.partner_uuid "
        f"BEGIN {user('OLD.', '-')}; {user('NEW.', '')}; END",
    ]


def _grouped(deltas: str, key: str, sums: tuple[str, ...]) -> str:
    """Deltas summed per tally key, in key order (the order rows are locked in), without
    the keys whose deltas cancel."""
    total = ", ".join(f"SUM({s})" for s in sums)
    nonzero = " OR ".join(f"SUM({s}) <> 0" for s in sums)
    # WHERE true: SQLite's parser needs it before an upsert's ON CONFLICT.
    return (f"SELECT {key}, {total} FROM ({deltas}) AS d WHERE true "
            f"GROUP BY {key} HAVING {nonzero} ORDER BY {key}")


def _postgres_function(name: str, upsert: str, key: str, sums: tuple[str, ...],
                       values: Callable[[str, str, bool], str]) -> str:
    def body(deltas: str) -> str:
        return upsert.format(rows=_grouped(deltas, key, sums))

    plus = f"SELECT {values('n.', '', True)} FROM new_rows AS n"
    minus = f"SELECT {values('o.', '-', True)} FROM old_rows AS o"
    return f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {body(plus)};
    ELSIF TG_OP = 'DELETE' THEN
        {body(minus)};
    ELSE
        {body(minus + ' UNION ALL ' + plus)};
    END IF;
    RETURN NULL;
END $$"""


def _postgres_triggers() -> list[str]:
    statements = [
        _postgres_function("enrollment_tally_apply", ENROLLMENT_UPSERT, ENROLLMENT_KEY,
                           ENROLLMENT_SUMS,
                           lambda row, sign, alias: _enrollment_values(row, sign, True, alias)),
        _postgres_function("user_tally_apply", USER_UPSERT, "account_id, partner_key",
                           ("users",), _user_values),
    ]
    for table in ("enrollment", "user"):
        quoted = f'"{table}"'
        for event, referencing in (("INSERT", "NEW TABLE AS new_rows"),
                                   ("DELETE", "OLD TABLE AS old_rows"),
                                   ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows")):
            statements.append(
                f"CREATE TRIGGER {table}_tally_{event.lower()} AFTER {event} ON {quoted} "
                f"REFERENCING {referencing} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION {table}_tally_apply()")
    return statements


def _backfill(postgres: bool) -> list[str]:
    return [
        ENROLLMENT_UPSERT.format(rows=_grouped(
            f"SELECT {_enrollment_values('', '', postgres, True)} FROM enrollment",
            ENROLLMENT_KEY, ENROLLMENT_SUMS)),
        USER_UPSERT.format(rows=_grouped(
            f"SELECT {_user_values('', '', True)} FROM \"user\"",
            "account_id, partner_key", ("users",))),
    ]


# What the stats read beside the tallies: the completed enrollments still valid, by expiry
# (a range of this index, not a scan of the certification).
EXPIRY_INDEX = ("CREATE INDEX enrollment_expiry ON enrollment "
                "(certification_uuid, status, expires_at, partner_uuid)")
# A list filtered by status, in list order: its pages are ranges of this index, with no
# table row visited to test the status.
STATUS_ORDER_INDEX = ("CREATE INDEX enrollment_status_order ON enrollment "
                      "(certification_uuid, status, enrolled_at, uuid)")
# The same for a list filtered by partnership.
PARTNER_ORDER_INDEX = ("CREATE INDEX enrollment_partner_order ON enrollment "
                       "(certification_uuid, partner_uuid, enrolled_at, uuid)")
# Migration 0005's index answered the stats by scanning a certification's slice of it;
# the tallies answer them now and nothing else reads it, so writes stop paying for it.
STATS_INDEX = ("CREATE INDEX enrollment_stats ON enrollment (certification_uuid, partner_uuid, "
               "status, enrolled_at, completed_at, expires_at, assessment_best_score)")


def up(migrator, db):
    from models.db import is_postgres

    postgres = is_postgres(db)
    if postgres:
        db.execute_sql('LOCK TABLE enrollment, "user" IN SHARE ROW EXCLUSIVE MODE')
    statements = [ENROLLMENT_TABLE, USER_TABLE, *_backfill(postgres),
                  *(_postgres_triggers() if postgres else _sqlite_triggers()), EXPIRY_INDEX,
                  STATUS_ORDER_INDEX, PARTNER_ORDER_INDEX, "DROP INDEX enrollment_stats"]
    for statement in statements:
        db.execute_sql(statement)


def down(migrator, db):
    from models.db import is_postgres

    for index in ("enrollment_expiry", "enrollment_status_order", "enrollment_partner_order"):
        db.execute_sql(f"DROP INDEX IF EXISTS {index}")
    db.execute_sql(STATS_INDEX)
    for table in ("enrollment", "user"):
        for event in ("insert", "delete", "update"):
            name = f"{table}_tally_{event}"
            db.execute_sql(f'DROP TRIGGER IF EXISTS {name} ON "{table}"' if is_postgres(db)
                           else f"DROP TRIGGER IF EXISTS {name}")
    if is_postgres(db):
        db.execute_sql("DROP FUNCTION IF EXISTS enrollment_tally_apply()")
        db.execute_sql("DROP FUNCTION IF EXISTS user_tally_apply()")
    db.execute_sql("DROP TABLE IF EXISTS user_tally")
    db.execute_sql("DROP TABLE IF EXISTS enrollment_tally")
