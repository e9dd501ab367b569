"""/v1/partners: CRUD, the 409 on deleting a partner in use, its users, and input errors."""
import pytest

from tests.conftest import ABSENT_UUID, expect_error


def test_create_returns_resource_with_location_and_nulls(client, tenant):
    response = client.post("/v1/partners", json={"name": "Acme"}, headers=tenant.headers)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/partners/{body['uuid']}"
    assert body["name"] == "Acme"
    for name in ("email", "website_url", "description"):
        assert body[name] is None, name
    assert body["created_at"] == body["updated_at"]
    assert client.get(response.headers["location"], headers=tenant.headers).json() == body


def test_create_with_every_field(api):
    fields = {"name": "Acme Consulting", "email": "partners@acme.example",
              "website_url": "https://acme.example/partners", "description": "Gold partner"}
    body = api.partner(**fields)
    assert {k: body[k] for k in fields} == fields


def test_create_accepts_explicit_nulls_for_nullable_fields(api):
    body = api.partner(email=None, website_url=None, description=None)
    assert (body["email"], body["website_url"], body["description"]) == (None, None, None)


def test_list_shows_own_partners_in_creation_order(api, client, tenant):
    made = [api.partner(name=f"P{i}") for i in range(3)]
    response = client.get("/v1/partners", headers=tenant.read_headers)
    assert response.status_code == 200
    body = response.json()
    assert [p["uuid"] for p in body["data"]] == [p["uuid"] for p in made]
    assert body["data"] == made
    assert body["pagination"] == {"page": 1, "per_page": 25, "total": 3, "total_pages": 1}


def test_get_with_read_key(api, client, tenant):
    partner = api.partner()
    response = client.get(f"/v1/partners/{partner['uuid']}", headers=tenant.read_headers)
    assert response.status_code == 200
    assert response.json() == partner


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_partner_is_404(client, tenant, method):
    kwargs = {"json": {"name": "X"}} if method == "patch" else {}
    path = f"/v1/partners/{ABSENT_UUID}"
    response = getattr(client, method)(path, headers=tenant.headers, **kwargs)
    assert expect_error(response, 404, "not_found") == "Partner not found"


def test_unknown_partner_users_is_404(client, tenant):
    response = client.get(f"/v1/partners/{ABSENT_UUID}/users", headers=tenant.headers)
    assert expect_error(response, 404, "not_found") == "Partner not found"


@pytest.mark.parametrize("path", ["/v1/partners/not-a-uuid", "/v1/partners/not-a-uuid/users"])
def test_malformed_uuid_is_422(client, tenant, path):
    message = expect_error(client.get(path, headers=tenant.headers), 422, "validation_error")
    assert message.startswith("path/uuid: ")


def test_update_changes_only_given_fields(api, client, tenant):
    partner = api.partner(email="a@acme.example", description="old")
    response = client.patch(f"/v1/partners/{partner['uuid']}",
                            json={"description": "new"}, headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["description"] == "new"
    assert body["email"] == "a@acme.example" and body["name"] == partner["name"]
    assert client.get(f"/v1/partners/{partner['uuid']}", headers=tenant.headers).json() == body


def test_update_to_null_clears_nullable_fields(api, client, tenant):
    partner = api.partner(email="a@acme.example", website_url="https://acme.example",
                          description="d")
    response = client.patch(f"/v1/partners/{partner['uuid']}",
                            json={"email": None, "website_url": None, "description": None},
                            headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["email"], body["website_url"], body["description"]) == (None, None, None)


def test_update_moves_updated_at_not_created_at(api, client, tenant):
    partner = api.partner()
    body = client.patch(f"/v1/partners/{partner['uuid']}", json={"name": "Renamed"},
                        headers=tenant.headers).json()
    assert body["created_at"] == partner["created_at"]
    # RFC 3339 with fixed-width microseconds and Z: string order is time order.
    assert body["updated_at"] > partner["updated_at"]


def test_update_with_read_key_is_403(api, client, tenant):
    partner = api.partner()
    response = client.patch(f"/v1/partners/{partner['uuid']}", json={"name": "X"},
                            headers=tenant.read_headers)
    expect_error(response, 403, "forbidden")
    assert client.get(f"/v1/partners/{partner['uuid']}", headers=tenant.headers).json() == partner


def test_delete_then_gone(api, client, tenant):
    partner = api.partner()
    response = client.delete(f"/v1/partners/{partner['uuid']}", headers=tenant.headers)
    assert response.status_code == 204
    assert response.content == b""
    path = f"/v1/partners/{partner['uuid']}"
    expect_error(client.get(path, headers=tenant.headers), 404, "not_found")
    expect_error(client.delete(path, headers=tenant.headers), 404, "not_found")


def test_delete_refused_while_users_refer(api, client, tenant):
    partner = api.partner()
    user = api.user(partnership_uuid=partner["uuid"])
    response = client.delete(f"/v1/partners/{partner['uuid']}", headers=tenant.headers)
    assert "users" in expect_error(response, 409, "conflict")
    assert client.get(f"/v1/partners/{partner['uuid']}", headers=tenant.headers).status_code == 200
    # Once the user is gone the partner can go too.
    assert client.delete(f"/v1/users/{user['uuid']}", headers=tenant.headers).status_code == 204
    assert client.delete(f"/v1/partners/{partner['uuid']}",
                         headers=tenant.headers).status_code == 204


def test_delete_refused_while_enrollments_refer(api, client, tenant):
    partner = api.partner()
    user = api.user(partnership_uuid=partner["uuid"])
    enrollment = api.enroll(api.certification(passing_score=50), user,
                            partnership_uuid=partner["uuid"])
    api.attempt(enrollment, 90)  # finished: a user with open enrollments cannot move
    # The user moves to the vendor's staff; the enrollment still names the partner.
    moved = client.patch(f"/v1/users/{user['uuid']}", json={"partnership_uuid": None},
                         headers=tenant.headers)
    assert moved.status_code == 200 and moved.json()["partnership_uuid"] is None
    response = client.delete(f"/v1/partners/{partner['uuid']}", headers=tenant.headers)
    assert "enrollments" in expect_error(response, 409, "conflict")
    path = f"/v1/certifications/{enrollment['certification_uuid']}/enrollments/{enrollment['uuid']}"
    assert client.delete(path, headers=tenant.headers).status_code == 204
    assert client.delete(f"/v1/partners/{partner['uuid']}",
                         headers=tenant.headers).status_code == 204


def test_partner_users_lists_only_that_partners_users(api, client, tenant):
    acme, other = api.partner(name="Acme"), api.partner(name="Other")
    mine = [api.user(partnership_uuid=acme["uuid"]) for _ in range(3)]
    api.user(partnership_uuid=other["uuid"])
    api.user()  # vendor staff
    response = client.get(f"/v1/partners/{acme['uuid']}/users", headers=tenant.read_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == mine
    assert body["pagination"] == {"page": 1, "per_page": 25, "total": 3, "total_pages": 1}
    paged = client.get(f"/v1/partners/{acme['uuid']}/users?per_page=2&page=2",
                       headers=tenant.headers).json()
    assert paged["data"] == mine[2:]
    assert paged["pagination"] == {"page": 2, "per_page": 2, "total": 3, "total_pages": 2}


def test_partner_without_users_lists_empty(api, client, tenant):
    partner = api.partner()
    body = client.get(f"/v1/partners/{partner['uuid']}/users", headers=tenant.headers).json()
    assert body == {"data": [], "pagination": {"page": 1, "per_page": 25, "total": 0,
                                               "total_pages": 0}}


@pytest.mark.parametrize("payload, message", [
    ({}, "body/name: Required"),
    ({"email": "a@b.example"}, "body/name: Required"),
    ({"name": "Acme", "colour": "red"}, "body/colour: Unknown field"),
    ({"name": 5}, "body/name: Expected string"),
    ({"name": None}, "body/name: Expected string"),
    ({"name": ""}, "body/name: Must not be empty"),
    ({"name": "   "}, "body/name: Does not match the expected format"),
    ({"name": "x" * 201}, "body/name: Must be at most 200 characters"),
    ({"name": "Acme", "email": 7}, "body/email: Expected string"),
    ({"name": "Acme", "email": "no-at-sign"}, "body/email: Does not match the expected format"),
    ({"name": "Acme", "website_url": "ftp://acme.example"},
     "body/website_url: Does not match the expected format"),
    ({"name": "Acme", "description": ["a"]}, "body/description: Expected string"),
    (["Acme"], "body: Expected object"),
])
def test_create_rejects_invalid_bodies(client, tenant, payload, message):
    response = client.post("/v1/partners", json=payload, headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == message
    listed = client.get("/v1/partners", headers=tenant.headers).json()
    assert listed["pagination"]["total"] == 0


@pytest.mark.parametrize("payload, message", [
    ({}, "body: At least one field is required"),
    ({"name": None}, "body/name: Expected string"),
    ({"name": ""}, "body/name: Must not be empty"),
    ({"uuid": ABSENT_UUID}, "body/uuid: Unknown field"),
    ({"created_at": "2020-01-01T00:00:00Z"}, "body/created_at: Unknown field"),
    ({"email": False}, "body/email: Expected string"),
])
def test_update_rejects_invalid_bodies(api, client, tenant, payload, message):
    partner = api.partner()
    response = client.patch(f"/v1/partners/{partner['uuid']}", json=payload,
                            headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == message
    assert client.get(f"/v1/partners/{partner['uuid']}", headers=tenant.headers).json() == partner


def test_upper_case_path_uuid_reaches_the_partner(api, client, tenant):
    partner = api.partner()
    path = f"/v1/partners/{partner['uuid'].upper()}"
    assert client.get(path, headers=tenant.headers).json() == partner
    assert client.get(f"{path}/users", headers=tenant.headers).status_code == 200
    assert client.delete(path, headers=tenant.headers).status_code == 204
