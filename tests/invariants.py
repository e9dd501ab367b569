"""What must hold in the stored data whatever interleaving or crash produced it. Each
check is a query for rows that break a rule, so a failure names them."""
from tests.databases import query

# (rule, SQL selecting the rows that break it)
RULES = [
    ("every attempt belongs to an enrollment",
     "SELECT a.uuid FROM assessment_attempt a LEFT JOIN enrollment e "
     "ON e.uuid = a.enrollment_uuid WHERE e.uuid IS NULL"),
    ("assessment_attempts equals the number of attempt rows",
     "SELECT e.uuid FROM enrollment e WHERE e.assessment_attempts <> "
     "(SELECT COUNT(*) FROM assessment_attempt a WHERE a.enrollment_uuid = e.uuid)"),
    ("assessment_best_score is the best attempt's score",
     "SELECT e.uuid FROM enrollment e WHERE COALESCE(e.assessment_best_score, -1) <> "
     "COALESCE((SELECT MAX(a.score) FROM assessment_attempt a "
     "WHERE a.enrollment_uuid = e.uuid), -1)"),
    ("attempts never exceed max_attempts",
     "SELECT e.uuid FROM enrollment e JOIN certification c ON c.uuid = e.certification_uuid "
     "WHERE c.max_attempts IS NOT NULL AND e.assessment_attempts > c.max_attempts"),
    ("completed exactly when one attempt passed, with progress 100 and completed_at",
     "SELECT e.uuid FROM enrollment e WHERE "
     "(SELECT COUNT(*) FROM assessment_attempt a WHERE a.enrollment_uuid = e.uuid AND a.passed) "
     "<> (CASE WHEN e.status = 'completed' THEN 1 ELSE 0 END) "
     "OR (e.status = 'completed' AND (e.progress_percentage <> 100 OR e.completed_at IS NULL))"),
    ("failed only when every allowed attempt was used",
     "SELECT e.uuid FROM enrollment e JOIN certification c ON c.uuid = e.certification_uuid "
     "WHERE e.status = 'failed' AND (c.max_attempts IS NULL "
     "OR e.assessment_attempts <> c.max_attempts OR e.completed_at IS NOT NULL)"),
    ("started once anything happened",
     "SELECT e.uuid FROM enrollment e WHERE (e.status = 'enrolled') <> (e.started_at IS NULL)"),
    ("at most one open enrollment per user and certification",
     "SELECT certification_uuid, user_uuid FROM enrollment "
     "WHERE status IN ('enrolled', 'in_progress') "
     "GROUP BY certification_uuid, user_uuid HAVING COUNT(*) > 1"),
    ("a user's non-failed enrollments after the first in a certification are renewals",
     "SELECT certification_uuid, user_uuid FROM enrollment "
     "WHERE status <> 'failed' AND recertifies_enrollment_uuid IS NULL "
     "GROUP BY certification_uuid, user_uuid HAVING COUNT(*) > 1"),
    ("a renewal renews a completion of the same user and certification",
     "SELECT e.uuid FROM enrollment e JOIN enrollment r ON r.uuid = e.recertifies_enrollment_uuid "
     "WHERE r.status <> 'completed' OR r.user_uuid <> e.user_uuid "
     "OR r.certification_uuid <> e.certification_uuid"),
    ("a completion is renewed at most once (failed renewals aside)",
     "SELECT recertifies_enrollment_uuid FROM enrollment "
     "WHERE status <> 'failed' AND recertifies_enrollment_uuid IS NOT NULL "
     "GROUP BY recertifies_enrollment_uuid HAVING COUNT(*) > 1"),
    ("each enrollment tally equals what it counts (and no tally counts rows that are gone)",
     "SELECT a.certification_uuid, a.partner_key, a.status, a.n, t.enrollments FROM ("
     "SELECT certification_uuid, COALESCE(partner_uuid, '') AS partner_key, status, "
     "COUNT(*) AS n, COUNT(assessment_best_score) AS scored, "
     "COALESCE(SUM(assessment_best_score), 0) AS best, COUNT(completed_at) AS timed "
     "FROM enrollment GROUP BY certification_uuid, COALESCE(partner_uuid, ''), status) a "
     "LEFT JOIN enrollment_tally t ON t.certification_uuid = a.certification_uuid "
     "AND t.partner_key = a.partner_key AND t.status = a.status "
     "WHERE t.enrollments IS NULL OR t.enrollments <> a.n OR t.scored <> a.scored "
     "OR t.timed <> a.timed OR ABS(t.best_score_sum - a.best) > 1e-6 * (1 + ABS(a.best)) "
     "UNION ALL SELECT t.certification_uuid, t.partner_key, t.status, 0, t.enrollments "
     "FROM enrollment_tally t WHERE t.enrollments <> (SELECT COUNT(*) FROM enrollment e "
     "WHERE e.certification_uuid = t.certification_uuid "
     "AND COALESCE(e.partner_uuid, '') = t.partner_key AND e.status = t.status)"),
    ("each user tally equals what it counts",
     "SELECT a.account_id, a.partner_key, a.n, t.users FROM ("
     "SELECT account_id, COALESCE(partner_uuid, '') AS partner_key, COUNT(*) AS n "
     "FROM \"user\" GROUP BY account_id, COALESCE(partner_uuid, '')) a "
     "LEFT JOIN user_tally t ON t.account_id = a.account_id AND t.partner_key = a.partner_key "
     "WHERE t.users IS NULL OR t.users <> a.n "
     "UNION ALL SELECT t.account_id, t.partner_key, 0, t.users FROM user_tally t "
     "WHERE t.users <> (SELECT COUNT(*) FROM \"user\" u WHERE u.account_id = t.account_id "
     "AND COALESCE(u.partner_uuid, '') = t.partner_key)"),
]


def violations(url: str) -> dict[str, list]:
    """Rule → offending rows, for every rule some row breaks; SQLite's own integrity and
    foreign-key checks included."""
    found = {rule: rows for rule, sql in RULES if (rows := query(url, sql))}
    if url.startswith("sqlite"):
        integrity = query(url, "PRAGMA integrity_check")
        if integrity != [("ok",)]:
            found["PRAGMA integrity_check"] = integrity
        if fk := query(url, "PRAGMA foreign_key_check"):
            found["PRAGMA foreign_key_check"] = fk
    return found
