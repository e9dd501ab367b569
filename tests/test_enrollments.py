"""Enrollments over HTTP: progress, assessment attempts, lists, reads and deletes."""
import datetime

import pytest

from models import AssessmentAttempt


def path_of(enrollment, suffix=""):
    return (f"/v1/certifications/{enrollment['certification_uuid']}/enrollments/"
            f"{enrollment['uuid']}{suffix}")


def parse(ts: str) -> datetime.datetime:
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def enrollment(api):
    return api.enroll(api.certification(passing_score=80, max_attempts=3, validity_days=365),
                      api.user())


def test_progress_moves_to_in_progress_once(client, tenant, enrollment):
    first = client.patch(path_of(enrollment), json={"progress_percentage": 10},
                         headers=tenant.headers)
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "in_progress" and body["progress_percentage"] == 10
    assert body["started_at"] is not None
    second = client.patch(path_of(enrollment), json={"progress_percentage": 55.5},
                          headers=tenant.headers).json()
    assert second["progress_percentage"] == 55.5
    assert second["started_at"] == body["started_at"]


def test_progress_going_down_is_409_and_keeps_value(client, tenant, enrollment):
    client.patch(path_of(enrollment), json={"progress_percentage": 60}, headers=tenant.headers)
    response = client.patch(path_of(enrollment), json={"progress_percentage": 59},
                            headers=tenant.headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert client.get(path_of(enrollment), headers=tenant.headers).json()["progress_percentage"] == 60


@pytest.mark.parametrize("body, message", [
    ({}, "body/progress_percentage: Required"),
    ({"progress_percentage": 101}, "body/progress_percentage: Must be at most 100"),
    ({"progress_percentage": -1}, "body/progress_percentage: Must be at least 0"),
    ({"progress_percentage": "50"}, "body/progress_percentage: Expected number"),
    ({"progress_percentage": 5, "status": "completed"}, "body/status: Unknown field"),
])
def test_progress_validation(client, tenant, enrollment, body, message):
    response = client.patch(path_of(enrollment), json=body, headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == message


def test_progress_refused_after_completion(api, client, tenant, enrollment):
    api.attempt(enrollment, 90)
    response = client.patch(path_of(enrollment), json={"progress_percentage": 100},
                            headers=tenant.headers)
    assert response.status_code == 409


def test_passing_attempt_completes_with_expiry(api, client, tenant, enrollment):
    result = api.attempt(enrollment, 85)
    assert result["score"] == 85 and result["passed"] is True
    done = result["enrollment"]
    assert done["status"] == "completed" and done["progress_percentage"] == 100
    assert done["assessment_attempts"] == 1 and done["assessment_best_score"] == 85
    assert done["assessment_passed"] is True
    completed = parse(done["completed_at"])
    assert parse(done["expires_at"]) == completed + datetime.timedelta(days=365)
    assert parse(done["started_at"]) == completed  # the attempt started it
    assert client.get(path_of(enrollment), headers=tenant.headers).json() == done


def test_attempt_location_and_reads(api, client, tenant, enrollment):
    response = client.post(path_of(enrollment, "/assessment-attempts"), json={"score": 40},
                           headers=tenant.headers)
    assert response.status_code == 201
    attempt = response.json()
    assert response.headers["location"] == path_of(enrollment, f"/assessment-attempts/{attempt['uuid']}")
    fetched = client.get(response.headers["location"], headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.json() == {k: attempt[k] for k in ("uuid", "score", "passed", "submitted_at")}
    missing = client.get(path_of(enrollment, "/assessment-attempts/3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"),
                         headers=tenant.headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Assessment attempt not found"


def test_attempts_until_failed_then_409(api, client, tenant, enrollment):
    scores = [10, 50, 30]
    results = [api.attempt(enrollment, s)["enrollment"] for s in scores]
    assert [r["status"] for r in results] == ["in_progress", "in_progress", "failed"]
    last = results[-1]
    assert last["assessment_best_score"] == 50 and last["assessment_passed"] is False
    assert last["completed_at"] is None and last["expires_at"] is None
    refused = client.post(path_of(enrollment, "/assessment-attempts"), json={"score": 99},
                          headers=tenant.headers)
    assert refused.status_code == 409
    listed = client.get(path_of(enrollment, "/assessment-attempts"), headers=tenant.headers).json()
    assert [a["score"] for a in listed["data"]] == scores
    assert [a["passed"] for a in listed["data"]] == [False, False, False]
    assert listed["pagination"]["total"] == 3


def test_attempt_after_completion_is_409(api, client, tenant, enrollment):
    api.attempt(enrollment, 100)
    response = client.post(path_of(enrollment, "/assessment-attempts"), json={"score": 100},
                           headers=tenant.headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize("body, message", [
    ({}, "body/score: Required"),
    ({"score": 100.5}, "body/score: Must be at most 100"),
    ({"score": None}, "body/score: Expected number"),
])
def test_attempt_validation(client, tenant, enrollment, body, message):
    response = client.post(path_of(enrollment, "/assessment-attempts"), json=body,
                           headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == message


def test_list_filters(api, client, tenant):
    partner = api.partner()
    cert = api.certification()
    staff, partner_user = api.user(), api.user(partnership_uuid=partner["uuid"])
    a = api.enroll(cert, staff)
    b = api.enroll(cert, partner_user, partnership_uuid=partner["uuid"])
    client.patch(path_of(b), json={"progress_percentage": 5}, headers=tenant.headers)
    base = f"/v1/certifications/{cert['uuid']}/enrollments"

    def uuids(query=""):
        response = client.get(base + query, headers=tenant.headers)
        assert response.status_code == 200
        return [e["uuid"] for e in response.json()["data"]]

    assert uuids() == [a["uuid"], b["uuid"]]
    assert uuids("?status=in_progress") == [b["uuid"]]
    assert uuids("?status=enrolled") == [a["uuid"]]
    assert uuids("?status=failed") == []
    assert uuids(f"?user_uuid={staff['uuid']}") == [a["uuid"]]
    assert uuids(f"?partnership_uuid={partner['uuid']}") == [b["uuid"]]
    bad = client.get(base + "?status=done", headers=tenant.headers)
    assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("query/status: ")


def test_list_of_unknown_certification_is_404(client, tenant):
    response = client.get("/v1/certifications/3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51/enrollments",
                          headers=tenant.headers)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Certification not found"


def test_enrollment_under_another_certification_is_404(api, client, tenant, enrollment):
    other = api.certification(name="Other")
    response = client.get(f"/v1/certifications/{other['uuid']}/enrollments/{enrollment['uuid']}",
                          headers=tenant.headers)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Enrollment not found"


@pytest.mark.parametrize("method, suffix, body", [
    ("GET", "", None),
    ("PATCH", "", {"progress_percentage": 1}),
    ("DELETE", "", None),
    ("GET", "/assessment-attempts", None),
    ("POST", "/assessment-attempts", {"score": 1}),
])
def test_unknown_enrollment_is_404(client, tenant, enrollment, method, suffix, body):
    path = (f"/v1/certifications/{enrollment['certification_uuid']}/enrollments/"
            f"3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51{suffix}")
    response = client.request(method, path, json=body, headers=tenant.headers)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Enrollment not found"


def test_delete_removes_enrollment_and_attempts(api, client, tenant, enrollment):
    api.attempt(enrollment, 10)
    api.attempt(enrollment, 20)
    assert client.delete(path_of(enrollment), headers=tenant.headers).status_code == 204
    assert client.get(path_of(enrollment), headers=tenant.headers).status_code == 404
    assert AssessmentAttempt.select().where(
        AssessmentAttempt.enrollment == enrollment["uuid"]).count() == 0
    assert client.delete(path_of(enrollment), headers=tenant.headers).status_code == 404


def test_user_enrollments_across_certifications(api, client, tenant):
    user = api.user()
    first = api.enroll(api.certification(name="One"), user)
    second = api.enroll(api.certification(name="Two"), user)
    listed = client.get(f"/v1/users/{user['uuid']}/enrollments", headers=tenant.headers).json()
    assert [e["uuid"] for e in listed["data"]] == [first["uuid"], second["uuid"]]
    assert {e["user_email"] for e in listed["data"]} == {user["email"]}


def test_enroll_racing_a_delete_is_409_without_claiming_a_duplicate(api, client, tenant, monkeypatch):
    """A foreign key failing at insert (the user deleted meanwhile) is a retryable 409,
    not "already enrolled"."""
    from peewee import IntegrityError

    from models import Enrollment

    cert, user = api.certification(), api.user()

    def deleted_meanwhile(**_fields):
        raise IntegrityError("FOREIGN KEY constraint failed")

    monkeypatch.setattr(Enrollment, "create", deleted_meanwhile)
    response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments",
                           json={"user_uuid": user["uuid"]}, headers=tenant.headers)
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        "The user, certification or partner changed meanwhile; retry")
