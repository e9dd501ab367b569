"""An index that answers a certification's stats on its own.

GET /certifications/{uuid}/stats aggregates every enrollment of one certification
(optionally of one partnership). With every column the aggregates read in the index,
the database scans a contiguous slice of it and never visits the table rows; the
partnership filter narrows the same slice further.
"""

COLUMNS = ("certification_uuid", "partner_uuid", "status", "enrolled_at", "completed_at",
           "expires_at", "assessment_best_score")


def up(migrator, db):
    db.execute_sql(f"CREATE INDEX enrollment_stats ON enrollment ({', '.join(COLUMNS)})")


def down(migrator, db):
    db.execute_sql("DROP INDEX enrollment_stats")
