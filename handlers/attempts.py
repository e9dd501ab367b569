from typing import Any

from certapi import lifecycle, webhooks
from certapi.errors import NotFound
from certapi.pagination import paginate
from handlers.enrollments import change, find, location, render
from handlers.scoping import created
from models import AssessmentAttempt, Enrollment
from models.base import utcnow

Json = dict[str, Any]


def list_attempts(uuid: str, enrollment_uuid: str, page: int, per_page: int, user: str) -> Json:
    enrollment = find(uuid, enrollment_uuid, user)
    query = AssessmentAttempt.select().where(AssessmentAttempt.enrollment == enrollment)
    order = (AssessmentAttempt.submitted_at, AssessmentAttempt.uuid)
    return paginate(query, order, page, per_page, AssessmentAttempt.as_json)


def create_attempt(uuid: str, enrollment_uuid: str, body: Json,
                   user: str) -> tuple[Json, int, dict[str, str]]:
    now = utcnow()
    score = body["score"]

    def record(enrollment: Enrollment) -> AssessmentAttempt:
        passed = lifecycle.record_attempt(enrollment, enrollment.certification, score, now)
        attempt = AssessmentAttempt.create(
            enrollment=enrollment, score=score, passed=passed, submitted_at=now
        )
        webhooks.enrollment_changed(enrollment.account_id, render(enrollment),
                                    enrollment.started_at == now, attempt.as_json())
        return attempt

    enrollment, attempt = change(uuid, enrollment_uuid, user, record)
    body = {**attempt.as_json(), "enrollment": render(enrollment)}
    return created(body, f"{location(enrollment)}/assessment-attempts/{attempt.uuid}")


def get_attempt(uuid: str, enrollment_uuid: str, attempt_uuid: str, user: str) -> Json:
    enrollment = find(uuid, enrollment_uuid, user)
    attempt = AssessmentAttempt.get_or_none(
        (AssessmentAttempt.uuid == attempt_uuid.lower())
        & (AssessmentAttempt.enrollment == enrollment)
    )
    if attempt is None:
        raise NotFound("Assessment attempt not found")
    return attempt.as_json()
