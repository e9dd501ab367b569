from certapi import lifecycle, webhooks
from certapi.errors import NotFound
from certapi.pagination import paginate
from handlers.enrollments import change, find, location, render
from handlers.scoping import created
from models import AssessmentAttempt
from models.base import utcnow


def list_attempts(uuid, enrollment_uuid, page, per_page):
    enrollment = find(uuid, enrollment_uuid)
    query = AssessmentAttempt.select().where(AssessmentAttempt.enrollment == enrollment)
    order = (AssessmentAttempt.submitted_at, AssessmentAttempt.uuid)
    return paginate(query, order, page, per_page, AssessmentAttempt.as_json)


def create_attempt(uuid, enrollment_uuid, body):
    now = utcnow()
    score = body["score"]

    def record(enrollment):
        return lifecycle.record_attempt(enrollment, enrollment.certification, score, now)

    def store(enrollment, passed):
        attempt = AssessmentAttempt.create(
            enrollment=enrollment, score=score, passed=passed, submitted_at=now
        )
        webhooks.enrollment_changed(enrollment.account_id, render(enrollment),
                                    enrollment.started_at == now, attempt.as_json())
        return attempt

    enrollment, attempt = change(uuid, enrollment_uuid, record, after=store)
    body = {**attempt.as_json(), "enrollment": render(enrollment)}
    return created(body, f"{location(enrollment)}/assessment-attempts/{attempt.uuid}")


def get_attempt(uuid, enrollment_uuid, attempt_uuid):
    enrollment = find(uuid, enrollment_uuid)
    attempt = AssessmentAttempt.get_or_none(
        (AssessmentAttempt.uuid == attempt_uuid.lower())
        & (AssessmentAttempt.enrollment == enrollment)
    )
    if attempt is None:
        raise NotFound("Assessment attempt not found")
    return attempt.as_json()
