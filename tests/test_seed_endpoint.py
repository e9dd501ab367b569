"""POST /v1/certifications/{uuid}/enrollments, held to the endpoint's public reference
page (its fields, as the contract suite keeps them in certapi/contract/seed.py) and the
rules openapi.yaml states for the operation."""
import re

import pytest

from certapi.contract.seed import SEED_FIELDS
from certapi.contract.seed import UUID as SEED_UUID
from tests.conftest import SPEC

# The seed page's facts live once, in the portable contract suite.
UUID_PATTERN = SEED_UUID.pattern
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_spec_matches_seed_page():
    op = SPEC["paths"]["/certifications/{uuid}/enrollments"]["post"]
    assert op["summary"] == "Enroll a user in a certification"
    params = SPEC["paths"]["/certifications/{uuid}/enrollments"]["parameters"]
    assert params == [{"$ref": "#/components/parameters/Uuid"}]
    assert SPEC["components"]["parameters"]["Uuid"]["name"] == "uuid"
    assert SPEC["components"]["parameters"]["Uuid"]["in"] == "path"
    uuid_schema = SPEC["components"]["schemas"]["Uuid"]
    assert uuid_schema["pattern"] == UUID_PATTERN
    body = SPEC["components"]["schemas"]["EnrollmentCreate"]
    assert body["required"] == ["user_uuid"]
    assert set(body["properties"]) == {"user_uuid", "partnership_uuid"}
    response = SPEC["components"]["schemas"]["Enrollment"]
    assert "201" in op["responses"]
    for name, (types, nullable) in SEED_FIELDS.items():
        assert name in response["required"], name
        assert bool(response["properties"][name].get("nullable")) == nullable, name
    assert response["properties"]["status"]["$ref"].endswith("/EnrollmentStatus")
    assert SPEC["components"]["schemas"]["EnrollmentStatus"]["enum"] == [
        "enrolled", "in_progress", "completed", "failed"]


def test_enroll_creates_enrolled_with_exact_shape(api, client, tenant):
    cert, user = api.certification(), api.user(email="Ada@Example.com")
    response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments",
                           json={"user_uuid": user["uuid"]}, headers=tenant.headers)
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert response.headers["location"] == f"/v1/certifications/{cert['uuid']}/enrollments/{body['uuid']}"
    for name, (types, nullable) in SEED_FIELDS.items():
        value = body[name]
        assert (value is None and nullable) or isinstance(value, types), (name, value)
    assert re.match(UUID_PATTERN, body["uuid"])
    assert body["user_uuid"] == user["uuid"]
    assert body["user_email"] == "Ada@Example.com"
    assert body["certification_uuid"] == cert["uuid"]
    assert body["status"] == "enrolled"
    assert body["progress_percentage"] == 0
    assert RFC3339_Z.match(body["enrolled_at"])
    for name in ("started_at", "completed_at", "assessment_best_score", "assessment_passed",
                 "expires_at", "partnership_uuid"):
        assert body[name] is None, name
    assert body["assessment_attempts"] == 0
    fetched = client.get(response.headers["location"], headers=tenant.headers).json()
    assert fetched == body


def test_path_uuid_is_case_insensitive(api, client, tenant):
    cert, user = api.certification(), api.user()
    response = client.post(f"/v1/certifications/{cert['uuid'].upper()}/enrollments",
                           json={"user_uuid": user["uuid"].upper()}, headers=tenant.headers)
    assert response.status_code == 201
    assert response.json()["certification_uuid"] == cert["uuid"]


@pytest.mark.parametrize("path_uuid, status", [
    ("00000000-0000-0000-0000-000000000000", 404),
    ("ffffffff-ffff-ffff-ffff-ffffffffffff", 404),
    ("3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51", 404),
    ("3f2b8c1e-7d4a-9c2e-9b1a-2f6d8e0c4a51", 422),  # version digit 9 is outside [1-8]
    ("3f2b8c1e-7d4a-4c2e-7b1a-2f6d8e0c4a51", 422),  # variant 7 is outside [89ab]
    ("not-a-uuid", 422),
])
def test_certification_path_uuid(api, client, tenant, path_uuid, status):
    user = api.user()
    response = client.post(f"/v1/certifications/{path_uuid}/enrollments",
                           json={"user_uuid": user["uuid"]}, headers=tenant.headers)
    assert response.status_code == status
    code = "not_found" if status == 404 else "validation_error"
    assert response.json()["error"]["code"] == code
    if status == 404:
        assert response.json()["error"]["message"] == "Certification not found"
    else:
        assert response.json()["error"]["message"].startswith("path/uuid: ")


def test_unknown_user_is_404(api, client, tenant):
    cert = api.certification()
    response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments",
                           json={"user_uuid": "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"},
                           headers=tenant.headers)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "User not found"}}


def test_unknown_partnership_is_404(api, client, tenant):
    cert, user = api.certification(), api.user()
    response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments",
                           json={"user_uuid": user["uuid"],
                                 "partnership_uuid": "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"},
                           headers=tenant.headers)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Partner not found"


@pytest.mark.parametrize("status", ["draft", "archived"])
def test_unpublished_certification_is_409(api, client, tenant, status):
    cert, user = api.certification(status=status), api.user()
    response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments",
                           json={"user_uuid": user["uuid"]}, headers=tenant.headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_missing_user_uuid_is_422_naming_the_field(api, client, tenant):
    cert = api.certification()
    response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments", json={},
                           headers=tenant.headers)
    assert response.status_code == 422
    assert response.json() == {"error": {"code": "validation_error",
                                         "message": "body/user_uuid: Required"}}


@pytest.mark.parametrize("body, message", [
    ({"user_uuid": 5}, "body/user_uuid: Expected string"),
    ({"user_uuid": "nope"}, "body/user_uuid: Does not match the expected format"),
    ({"user_uuid": "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51", "extra": 1}, "body/extra: Unknown field"),
    ({"user_uuid": "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51", "partnership_uuid": None},
     "body/partnership_uuid: Expected string"),
])
def test_invalid_bodies_are_422(api, client, tenant, body, message):
    cert = api.certification()
    response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments", json=body,
                           headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == message


def test_partner_user_requires_partnership(api, client, tenant):
    partner = api.partner()
    cert, user = api.certification(), api.user(partnership_uuid=partner["uuid"])
    response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments",
                           json={"user_uuid": user["uuid"]}, headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "body/partnership_uuid: Required for partner users"
    enrolled = api.enroll(cert, user, partnership_uuid=partner["uuid"])
    assert enrolled["partnership_uuid"] == partner["uuid"]


def test_partnership_must_be_the_users_own(api, client, tenant):
    own, other = api.partner(name="Own"), api.partner(name="Other")
    cert = api.certification()
    partner_user = api.user(partnership_uuid=own["uuid"])
    staff = api.user()
    for user in (partner_user, staff):
        response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments",
                               json={"user_uuid": user["uuid"], "partnership_uuid": other["uuid"]},
                               headers=tenant.headers)
        assert response.status_code == 422
        assert response.json()["error"]["message"].startswith("body/partnership_uuid: ")


@pytest.mark.parametrize("finish", ["enrolled", "in_progress", "completed"])
def test_second_enrollment_while_active_is_409(api, client, tenant, finish):
    cert, user = api.certification(), api.user()
    first = api.enroll(cert, user)
    path = f"/v1/certifications/{cert['uuid']}/enrollments/{first['uuid']}"
    if finish == "in_progress":
        client.patch(path, json={"progress_percentage": 10}, headers=tenant.headers)
    if finish == "completed":
        api.attempt(first, 100)
    response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments",
                           json={"user_uuid": user["uuid"]}, headers=tenant.headers)
    assert response.status_code == 409
    assert response.json()["error"]["message"] == "User is already enrolled in this certification"


def test_reenroll_after_failed_keeps_history(api, client, tenant):
    cert, user = api.certification(max_attempts=1), api.user()
    first = api.enroll(cert, user)
    assert api.attempt(first, 10)["enrollment"]["status"] == "failed"
    second = api.enroll(cert, user)
    assert second["uuid"] != first["uuid"] and second["status"] == "enrolled"
    listed = client.get(f"/v1/certifications/{cert['uuid']}/enrollments?user_uuid={user['uuid']}",
                        headers=tenant.headers).json()
    assert [e["status"] for e in listed["data"]] == ["failed", "enrolled"]


def test_reenroll_after_delete(api, client, tenant):
    cert, user = api.certification(), api.user()
    first = api.enroll(cert, user)
    path = f"/v1/certifications/{cert['uuid']}/enrollments/{first['uuid']}"
    assert client.delete(path, headers=tenant.headers).status_code == 204
    assert api.enroll(cert, user)["status"] == "enrolled"
