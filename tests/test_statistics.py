"""SQLite's query planner with and without table statistics (models/statistics.py): the
lookup every enroll makes — this user's enrollments in this certification — must go
through the user's index, not walk the certification's."""
from bench.ids import Layout
from bench.seed import seed
from models import Enrollment, database, statistics


def _plan_of_the_enroll_lookup() -> str:
    certification, user = (Enrollment.select(Enrollment.certification, Enrollment.user)
                           .order_by(Enrollment.uuid).tuples().first())
    query = Enrollment.select(Enrollment.uuid, Enrollment.status).where(
        (Enrollment.certification == certification) & (Enrollment.user == user))
    sql, params = query.sql()
    return " ".join(row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql,
                                                            params).fetchall())


def test_refreshed_statistics_send_the_enroll_lookup_through_the_users_index(
        tmp_path, keep_database_binding):
    # One big certification (half the enrollments), as a real program has.
    seed(f"sqlite:///{tmp_path / 'plans.db'}", Layout(users=1_200, enrollments=2_000))
    before = _plan_of_the_enroll_lookup()
    assert "(certification_uuid=?)" in before, before  # blind: the certification's index
    statistics.refresh()
    after = _plan_of_the_enroll_lookup()
    assert "(user_uuid=?)" in after and "certification_uuid=?" not in after, after
    assert database.execute_sql(
        "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'enrollment'").fetchone()[0] > 0
