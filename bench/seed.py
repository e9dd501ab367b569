"""Seed a benchmark database through the Peewee models, in bulk.

    python -m bench.seed DATABASE_URL [--users N --certifications N --enrollments N]

Prints one JSON line: the write key and the layout the wrk scripts need.
"""
import argparse
import datetime
import json
import sys
import time

from bench.ids import ACCOUNT, CERTIFICATION, ENROLLMENT, PARTNER, USER, Layout, uid
from models import Account, ApiKey, Certification, Enrollment, Partner, User, database
from models.db import init_database, is_postgres
from models.migrate import migrate

BATCH = 1000
EPOCH = datetime.datetime(2025, 1, 1)


def _insert(model, fields, rows) -> None:
    for start in range(0, len(rows), BATCH):
        model.insert_many(rows[start:start + BATCH], fields=fields).execute()


def _big_state(e: int) -> dict:
    """A spread of lifecycle states for the big certification's enrollments."""
    bucket = e % 10
    at = EPOCH + datetime.timedelta(seconds=e)
    later = at + datetime.timedelta(days=3)
    if bucket < 4:
        return dict(status="enrolled", progress=0, started=None, completed=None,
                    attempts=0, best=None, passed=None, expires=None)
    if bucket < 7:
        return dict(status="in_progress", progress=10 * (bucket - 3), started=later,
                    completed=None, attempts=bucket - 4, best=40 if bucket > 4 else None,
                    passed=False if bucket > 4 else None, expires=None)
    if bucket < 9:
        return dict(status="completed", progress=100, started=later, completed=later,
                    attempts=1, best=88, passed=True, expires=later + datetime.timedelta(days=365))
    return dict(status="failed", progress=60, started=later, completed=None,
                attempts=3, best=55, passed=False, expires=None)


def _small_state(j: int) -> dict:
    """Open enrollments: the progress and attempt pools must never be closed by the seed."""
    if j % 2:
        return dict(status="enrolled", progress=0, started=None, completed=None,
                    attempts=0, best=None, passed=None, expires=None)
    return dict(status="in_progress", progress=20, started=EPOCH, completed=None,
                attempts=0, best=None, passed=None, expires=None)


def _progress(message: str) -> None:
    """Progress for the person waiting (bench/run.py passes stderr through); stdout
    carries only the result."""
    print(f"  seeding: {message}", file=sys.stderr, flush=True)


def seed(url: str, layout: Layout) -> dict:
    layout.check()
    init_database(url)
    migrate()
    now = EPOCH
    account_id = uid(ACCOUNT, 0)
    with database.atomic():
        Account.insert(uuid=account_id, name="Bench", created_at=now).execute()
        # Counted like any key, but never refused: the load is far above 500 a minute.
        _, key = ApiKey.issue(Account.get_by_id(account_id), "write", rate_limit=10**9)

        _insert(Partner, [Partner.uuid, Partner.account, Partner.name, Partner.created_at,
                          Partner.updated_at],
                [(uid(PARTNER, p), account_id, f"Partner {p}", now, now)
                 for p in range(layout.partners)])
        _progress(f"{layout.partners:,} partners")

        user_fields = [User.uuid, User.account, User.email, User.email_key, User.first_name,
                       User.last_name, User.partner, User.created_at, User.updated_at]
        rows = []
        for u in range(layout.users):
            partner = layout.partner_of(u)
            email = f"user{u}@example.com"
            rows.append((uid(USER, u), account_id, email, email, "Bench", f"User {u}",
                         None if partner is None else uid(PARTNER, partner), now, now))
        _insert(User, user_fields, rows)
        _progress(f"{layout.users:,} users")

        cert_fields = [Certification.uuid, Certification.account, Certification.name,
                       Certification.status, Certification.passing_score,
                       Certification.max_attempts, Certification.validity_days,
                       Certification.created_at, Certification.updated_at]
        _insert(Certification, cert_fields, [
            # The big one caps attempts (so "failed" is reachable); the small ones, whose
            # enrollments the attempt scenario walks, allow unlimited attempts.
            (uid(CERTIFICATION, c), account_id, f"Certification {c}", "published", 70,
             3 if c == 0 else None, 365 if c % 2 == 0 else None, now, now)
            for c in range(layout.certifications)
        ])
        _progress(f"{layout.certifications:,} certifications; {layout.enrollments:,} enrollments next")

        enrollment_fields = [
            Enrollment.uuid, Enrollment.account, Enrollment.certification, Enrollment.user,
            Enrollment.partner, Enrollment.status, Enrollment.progress_percentage,
            Enrollment.enrolled_at, Enrollment.started_at, Enrollment.completed_at,
            Enrollment.assessment_attempts, Enrollment.assessment_best_score,
            Enrollment.assessment_passed, Enrollment.expires_at,
        ]
        rows = []
        for e in range(layout.enrollments):
            if e < layout.big:
                cert, user, state = 0, e, _big_state(e)
            else:
                j = e - layout.big
                (cert, user), state = layout.small_enrollment(j), _small_state(j)
            partner = layout.partner_of(user)
            rows.append((
                uid(ENROLLMENT, e), account_id, uid(CERTIFICATION, cert), uid(USER, user),
                None if partner is None else uid(PARTNER, partner), state["status"],
                state["progress"], EPOCH + datetime.timedelta(seconds=e), state["started"],
                state["completed"], state["attempts"], state["best"], state["passed"],
                state["expires"],
            ))
        _insert(Enrollment, enrollment_fields, rows)
        _progress(f"{layout.enrollments:,} enrollments, committing")
    if not is_postgres():
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.close()
    return {"key": key, "layout": layout.__dict__}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("database_url")
    defaults = Layout()
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--certifications", type=int, default=defaults.certifications)
    parser.add_argument("--enrollments", type=int, default=defaults.enrollments)
    args = parser.parse_args(argv)
    layout = Layout(users=args.users, certifications=args.certifications,
                    enrollments=args.enrollments)
    started = time.perf_counter()
    result = seed(args.database_url, layout)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
