"""Expiry and recertification.

- ``certification.renewal_window_days``: how many days before a completion expires its
  holder may enroll again. NOT NULL DEFAULT 30, so every existing certification gets the
  documented default as the column is added.
- ``enrollment.recertifies_enrollment_uuid``: the earlier completed enrollment a new one
  renews. ON DELETE SET NULL: deleting an old completion (an operator's clean-up) must not
  take the renewal with it nor be refused because of it; the renewal keeps its own
  status and dates and only loses the link to a record that no longer exists.
- One *open* enrollment per user and certification instead of one non-failed one: a
  renewal is a second enrollment beside the completed one it renews. The rule that a
  completion blocks a new enrollment until it is inside its renewal window is checked by
  certapi.lifecycle; this index is what stops two concurrent enrolls (two renewals of one
  completion included) from both going in, on SQLite and PostgreSQL alike.
- (certification_uuid, expires_at) and (user_uuid, expires_at): the enrollment lists'
  ``expired``/``expires_before``/``expires_after`` filters read a range of one of them.
- (recertifies_enrollment_uuid): deleting an enrollment looks up the rows that point at it
  (PostgreSQL does not index a foreign key by itself).
"""

OPEN_STATUSES = "('enrolled', 'in_progress')"


def up(migrator, db):
    db.execute_sql(
        "ALTER TABLE certification ADD COLUMN renewal_window_days INTEGER NOT NULL DEFAULT 30"
    )
    db.execute_sql(
        "ALTER TABLE enrollment ADD COLUMN recertifies_enrollment_uuid VARCHAR(36) "
        "REFERENCES enrollment (uuid) ON DELETE SET NULL"
    )
    db.execute_sql("DROP INDEX enrollment_one_active")
    db.execute_sql(
        "CREATE UNIQUE INDEX enrollment_one_open ON enrollment (certification_uuid, user_uuid) "
        f"WHERE status IN {OPEN_STATUSES}"
    )
    db.execute_sql("CREATE INDEX enrollment_certification_expires "
                   "ON enrollment (certification_uuid, expires_at)")
    db.execute_sql("CREATE INDEX enrollment_user_expires ON enrollment (user_uuid, expires_at)")
    db.execute_sql("CREATE INDEX enrollment_recertifies "
                   "ON enrollment (recertifies_enrollment_uuid)")


def down(migrator, db):
    # Fails while renewals exist (two non-failed enrollments of one user): the old rule
    # cannot hold them; delete or fail the renewals first.
    db.execute_sql("DROP INDEX enrollment_recertifies")
    db.execute_sql("DROP INDEX enrollment_user_expires")
    db.execute_sql("DROP INDEX enrollment_certification_expires")
    db.execute_sql("DROP INDEX enrollment_one_open")
    db.execute_sql(
        "CREATE UNIQUE INDEX enrollment_one_active ON enrollment (certification_uuid, user_uuid) "
        "WHERE status <> 'failed'"
    )
    migrator.migrate(migrator.drop_column("enrollment", "recertifies_enrollment_uuid"))
    migrator.migrate(migrator.drop_column("certification", "renewal_window_days"))
