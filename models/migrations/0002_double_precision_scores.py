"""Scores and progress as 8-byte floats on PostgreSQL.

0001 declared them FloatField, which is REAL (4 bytes) there: a score of 72.3 came back
as 72.3000030517578. SQLite's REAL is already 8 bytes, so it has nothing to change.
"""
from peewee import DoubleField, PostgresqlDatabase

COLUMNS = (
    ("certification", "passing_score"),
    ("enrollment", "progress_percentage"),
    ("enrollment", "assessment_best_score"),
    ("assessment_attempt", "score"),
)


def up(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        migrator.migrate(*(migrator.alter_column_type(table, column, DoubleField())
                           for table, column in COLUMNS))


def down(migrator, db):
    pass  # widening is harmless to keep
