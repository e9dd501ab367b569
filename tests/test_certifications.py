"""/v1/certifications: CRUD, defaults, the status filter, the 409 on deleting one with
enrollments, and range checks on the rule fields."""
import pytest

from tests.conftest import ABSENT_UUID, expect_error


def test_create_applies_defaults(client, tenant):
    response = client.post("/v1/certifications", json={"name": "Cloud"}, headers=tenant.headers)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/certifications/{body['uuid']}"
    assert body["name"] == "Cloud"
    assert body["status"] == "draft"
    assert body["passing_score"] == 70 and isinstance(body["passing_score"], int)
    assert (body["max_attempts"], body["validity_days"], body["description"]) == (None, None, None)
    assert body["created_at"] == body["updated_at"]
    assert client.get(response.headers["location"], headers=tenant.read_headers).json() == body


def test_create_with_every_field(api):
    fields = {"name": "Cloud Fundamentals", "description": "The basics", "status": "published",
              "passing_score": 82.5, "max_attempts": 3, "validity_days": 365}
    body = api.certification(**fields)
    assert {k: body[k] for k in fields} == fields


@pytest.mark.parametrize("fields", [
    {"passing_score": 0}, {"passing_score": 100}, {"max_attempts": 1}, {"max_attempts": 1000},
    {"validity_days": 1}, {"validity_days": 36500},
    {"max_attempts": None, "validity_days": None, "description": None},
])
def test_create_accepts_bounds_and_nulls(api, fields):
    body = api.certification(**fields)
    assert {k: body[k] for k in fields} == fields


def test_get_list_and_status_filter(api, client, tenant):
    draft = api.certification(name="D", status="draft")
    published = api.certification(name="P", status="published")
    archived = api.certification(name="A", status="archived")
    published2 = api.certification(name="P2")

    def listed(query=""):
        response = client.get(f"/v1/certifications{query}", headers=tenant.read_headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["pagination"]["total"] == len(body["data"])
        return body["data"]

    assert listed() == [draft, published, archived, published2]
    assert listed("?status=draft") == [draft]
    assert listed("?status=published") == [published, published2]
    assert listed("?status=archived") == [archived]
    response = client.get(f"/v1/certifications/{published['uuid']}", headers=tenant.read_headers)
    assert response.status_code == 200 and response.json() == published


def test_bad_status_filter_is_422(client, tenant):
    response = client.get("/v1/certifications?status=live", headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == (
        "query/status: Must be one of: draft, published, archived")


def test_update_fields_and_timestamps(api, client, tenant):
    cert = api.certification(max_attempts=3, validity_days=30)
    path = f"/v1/certifications/{cert['uuid']}"
    response = client.patch(path, json={"status": "archived", "passing_score": 90.5},
                            headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["passing_score"]) == ("archived", 90.5)
    assert (body["name"], body["max_attempts"], body["validity_days"]) == ("Cloud", 3, 30)
    assert body["created_at"] == cert["created_at"]
    assert body["updated_at"] > cert["updated_at"]
    assert client.get(path, headers=tenant.headers).json() == body


def test_update_back_to_unlimited_and_never_expiring(api, client, tenant):
    cert = api.certification(max_attempts=3, validity_days=30, description="d")
    response = client.patch(f"/v1/certifications/{cert['uuid']}",
                            json={"max_attempts": None, "validity_days": None, "description": None},
                            headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["max_attempts"], body["validity_days"], body["description"]) == (None, None, None)


def test_update_rules_apply_to_later_attempts(api, client, tenant):
    cert = api.certification(passing_score=90)
    enrollment = api.enroll(cert, api.user())
    assert api.attempt(enrollment, 80)["passed"] is False
    client.patch(f"/v1/certifications/{cert['uuid']}", json={"passing_score": 75},
                 headers=tenant.headers)
    result = api.attempt(enrollment, 80)
    assert result["passed"] is True and result["enrollment"]["status"] == "completed"


def test_update_with_read_key_is_403(api, client, tenant):
    cert = api.certification()
    response = client.patch(f"/v1/certifications/{cert['uuid']}", json={"name": "X"},
                            headers=tenant.read_headers)
    expect_error(response, 403, "forbidden")
    assert client.get(f"/v1/certifications/{cert['uuid']}", headers=tenant.headers).json() == cert


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_certification_is_404(client, tenant, method):
    kwargs = {"json": {"name": "X"}} if method == "patch" else {}
    path = f"/v1/certifications/{ABSENT_UUID}"
    response = getattr(client, method)(path, headers=tenant.headers, **kwargs)
    assert expect_error(response, 404, "not_found") == "Certification not found"


def test_delete_then_gone(api, client, tenant):
    cert = api.certification()
    path = f"/v1/certifications/{cert['uuid']}"
    response = client.delete(path, headers=tenant.headers)
    assert response.status_code == 204 and response.content == b""
    expect_error(client.get(path, headers=tenant.headers), 404, "not_found")


def test_delete_refused_while_it_has_enrollments(api, client, tenant):
    cert = api.certification()
    enrollment = api.enroll(cert, api.user())
    path = f"/v1/certifications/{cert['uuid']}"
    assert "enrollments" in expect_error(client.delete(path, headers=tenant.headers),
                                         409, "conflict")
    assert client.get(path, headers=tenant.headers).json() == cert
    # A failed enrollment still counts: it is history.
    client.patch(path, json={"max_attempts": 1}, headers=tenant.headers)
    assert api.attempt(enrollment, 0)["enrollment"]["status"] == "failed"
    expect_error(client.delete(path, headers=tenant.headers), 409, "conflict")
    enrollment_path = f"{path}/enrollments/{enrollment['uuid']}"
    assert client.delete(enrollment_path, headers=tenant.headers).status_code == 204
    assert client.delete(path, headers=tenant.headers).status_code == 204


def test_delete_with_read_key_is_403(api, client, tenant):
    cert = api.certification()
    response = client.delete(f"/v1/certifications/{cert['uuid']}", headers=tenant.read_headers)
    expect_error(response, 403, "forbidden")


OUT_OF_RANGE = [
    ({"passing_score": -1}, "body/passing_score: Must be at least 0"),
    ({"passing_score": 100.01}, "body/passing_score: Must be at most 100"),
    ({"passing_score": "70"}, "body/passing_score: Expected number"),
    ({"passing_score": True}, "body/passing_score: Expected number"),
    ({"max_attempts": 0}, "body/max_attempts: Must be at least 1"),
    ({"max_attempts": 1001}, "body/max_attempts: Must be at most 1000"),
    ({"max_attempts": 2.5}, "body/max_attempts: Expected integer"),
    ({"validity_days": 0}, "body/validity_days: Must be at least 1"),
    ({"validity_days": -5}, "body/validity_days: Must be at least 1"),
    ({"validity_days": 36501}, "body/validity_days: Must be at most 36500"),
    ({"validity_days": "365"}, "body/validity_days: Expected integer"),
    ({"status": "live"}, "body/status: Must be one of: draft, published, archived"),
    ({"status": None}, "body/status: Expected string"),
]


@pytest.mark.parametrize("fields, message", OUT_OF_RANGE + [
    ({"passing_score": None}, "body/passing_score: Expected number"),
    ({"name": None}, "body/name: Expected string"),
    ({"name": ""}, "body/name: Must not be empty"),
    ({"level": 2}, "body/level: Unknown field"),
])
def test_create_rejects_invalid_bodies(client, tenant, fields, message):
    response = client.post("/v1/certifications", json={"name": "Cloud", **fields},
                           headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == message
    assert client.get("/v1/certifications", headers=tenant.headers).json()["data"] == []


def test_create_without_name_is_422(client, tenant):
    response = client.post("/v1/certifications", json={"status": "draft"}, headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == "body/name: Required"


@pytest.mark.parametrize("fields, message", OUT_OF_RANGE + [
    ({"passing_score": None}, "body/passing_score: Expected number"),
    ({}, "body: At least one field is required"),
    ({"name": None}, "body/name: Expected string"),
    ({"uuid": ABSENT_UUID}, "body/uuid: Unknown field"),
])
def test_update_rejects_invalid_bodies(api, client, tenant, fields, message):
    cert = api.certification()
    response = client.patch(f"/v1/certifications/{cert['uuid']}", json=fields,
                            headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == message
    assert client.get(f"/v1/certifications/{cert['uuid']}", headers=tenant.headers).json() == cert
