"""GET /v1/certifications/{uuid}/stats: the numbers, checked against enrollments whose
states and dates the test sets, with and without a partnership filter."""
import datetime

import pytest

from models import Enrollment
from models.base import utcnow
from tests.conftest import ABSENT_UUID, expect_error


def stats(client, tenant, certification, **params) -> dict:
    response = client.get(f"/v1/certifications/{certification['uuid']}/stats", params=params,
                          headers=tenant.read_headers)
    assert response.status_code == 200, response.text
    return response.json()


def set_dates(enrollment: dict, **fields) -> None:
    Enrollment.update(**fields).where(Enrollment.uuid == enrollment["uuid"]).execute()


def test_an_empty_certification(api, client, tenant):
    certification = api.certification()
    assert stats(client, tenant, certification) == {
        "certification_uuid": certification["uuid"], "partnership_uuid": None,
        "enrollments": {"total": 0, "enrolled": 0, "in_progress": 0, "completed": 0, "failed": 0},
        "pass_rate": None, "average_best_score": None, "average_days_to_complete": None,
        "certified_now": 0, "expiring_within_30_days": 0,
    }


def test_the_numbers(api, client, tenant):
    certification = api.certification(passing_score=70, max_attempts=2, validity_days=365)
    partner = api.partner()

    def enroll(partner_uuid=None):
        if partner_uuid is None:
            return api.enroll(certification, api.user())
        return api.enroll(certification, api.user(partnership_uuid=partner_uuid),
                          partnership_uuid=partner_uuid)

    waiting = enroll()                                      # enrolled, no attempt
    started = enroll()                                      # in_progress, no attempt
    response = client.patch(
        f"/v1/certifications/{certification['uuid']}/enrollments/{started['uuid']}",
        json={"progress_percentage": 30}, headers=tenant.headers)
    assert response.status_code == 200
    trying = enroll()                                       # in_progress with a failed attempt
    api.attempt(trying, 50)
    passed = [enroll(partner["uuid"]) for _ in range(3)]
    for enrollment, score in zip(passed, (80, 90, 100)):
        api.attempt(enrollment, score)
    failed = enroll(partner["uuid"])
    api.attempt(failed, 10)
    api.attempt(failed, 20)
    now = utcnow()
    day = datetime.timedelta(days=1)
    # Completed after 2, 4 and 6 days; one expired, one expiring in 10 days, one valid.
    set_dates(passed[0], enrolled_at=now - 3 * day, completed_at=now - 1 * day, expires_at=now - 1 * day)
    set_dates(passed[1], enrolled_at=now - 10 * day, completed_at=now - 6 * day, expires_at=now + 10 * day)
    set_dates(passed[2], enrolled_at=now - 7 * day, completed_at=now - 1 * day, expires_at=now + 300 * day)

    everyone = stats(client, tenant, certification)
    assert everyone["enrollments"] == {"total": 7, "enrolled": 1, "in_progress": 2, "completed": 3,
                                       "failed": 1}
    assert everyone["pass_rate"] == pytest.approx(3 / 4)   # open enrollments do not count
    assert everyone["average_best_score"] == pytest.approx((50 + 80 + 90 + 100 + 20) / 5)
    assert everyone["average_days_to_complete"] == pytest.approx(4, abs=1e-3)
    assert everyone["certified_now"] == 2
    assert everyone["expiring_within_30_days"] == 1

    theirs = stats(client, tenant, certification, partnership_uuid=partner["uuid"].upper())
    assert theirs["partnership_uuid"] == partner["uuid"]
    assert theirs["enrollments"] == {"total": 4, "enrolled": 0, "in_progress": 0, "completed": 3,
                                     "failed": 1}
    assert theirs["pass_rate"] == pytest.approx(3 / 4)
    assert theirs["average_best_score"] == pytest.approx((80 + 90 + 100 + 20) / 4)
    assert waiting["status"] == "enrolled"


def test_a_completion_that_never_expires_is_certified(api, client, tenant):
    certification = api.certification(passing_score=50)
    api.attempt(api.enroll(certification, api.user()), 60)
    body = stats(client, tenant, certification)
    assert (body["certified_now"], body["expiring_within_30_days"], body["pass_rate"]) == (1, 0, 1)


def test_unknown_partnership_gives_zeros(api, client, tenant):
    certification = api.certification()
    api.enroll(certification, api.user())
    body = stats(client, tenant, certification, partnership_uuid=ABSENT_UUID)
    assert body["partnership_uuid"] == ABSENT_UUID
    assert body["enrollments"]["total"] == 0 and body["pass_rate"] is None


def test_absent_or_foreign_certification_is_404(api, client, tenant, other_tenant):
    from tests.conftest import Api
    theirs = Api(client, other_tenant).certification()
    for certification in ({"uuid": ABSENT_UUID}, theirs):
        response = client.get(f"/v1/certifications/{certification['uuid']}/stats",
                              headers=tenant.headers)
        expect_error(response, 404, "not_found")
    response = client.get(f"/v1/certifications/{theirs['uuid']}/stats",
                          params={"partnership_uuid": "nope"}, headers=other_tenant.headers)
    assert expect_error(response, 422, "validation_error").startswith("query/partnership_uuid")


def test_expiry_counts_at_their_boundaries_with_and_without_a_partnership(api, client, tenant,
                                                                            clock):
    """Each count is one range of the expiry index: a certificate expiring exactly now has
    lapsed, one expiring exactly 30 days from now is certified but not expiring within
    them, one that never expires is certified. Both variants of the prepared statement
    (with and without a partnership) answer in turn, each with its own numbers."""
    certification = api.certification(passing_score=50, validity_days=365)
    partner = api.partner()
    now = clock.freeze()
    day = datetime.timedelta(days=1)
    expiries = {"lapsed": now, "next second": now + datetime.timedelta(seconds=1),
                "in 30 days": now + 30 * day, "never": None, "partner's": now + 29 * day,
                "partner's lapsed": now - day}
    for name, expires_at in expiries.items():
        partner_uuid = partner["uuid"] if name.startswith("partner's") else None
        user = api.user(partnership_uuid=partner_uuid) if partner_uuid else api.user()
        enrollment = api.enroll(certification, user,
                                **({"partnership_uuid": partner_uuid} if partner_uuid else {}))
        api.attempt(enrollment, 80)
        set_dates(enrollment, expires_at=expires_at)

    def listed_total(**params) -> int:
        response = client.get(f"/v1/certifications/{certification['uuid']}/enrollments",
                              params={"per_page": 1, "status": "completed", **params},
                              headers=tenant.read_headers)
        assert response.status_code == 200, response.text
        return response.json()["pagination"]["total"]

    soon = {"expires_after": now.isoformat() + "Z",
            "expires_before": (now + 30 * day).isoformat() + "Z"}
    for _ in range(2):
        theirs = stats(client, tenant, certification, partnership_uuid=partner["uuid"])
        everyone = stats(client, tenant, certification)
        assert (theirs["certified_now"], theirs["expiring_within_30_days"]) == (1, 1)
        assert (everyone["certified_now"], everyone["expiring_within_30_days"]) == (4, 2)
        assert everyone["certified_now"] == listed_total(expired="false")
        assert everyone["expiring_within_30_days"] == listed_total(**soon)
        assert theirs["certified_now"] == listed_total(expired="false",
                                                       partnership_uuid=partner["uuid"])
        assert theirs["expiring_within_30_days"] == listed_total(
            partnership_uuid=partner["uuid"], **soon)
        assert everyone["enrollments"]["completed"] == 6
        assert theirs["enrollments"]["completed"] == 2
