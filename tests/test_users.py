"""/v1/users: CRUD, per-account case-insensitive email uniqueness, filters, partner
references, the 409 on deleting an enrolled user, and one user's enrollments."""
import pytest

from tests.conftest import ABSENT_UUID, expect_error


def test_create_staff_user_with_location_and_nulls(client, tenant):
    response = client.post("/v1/users", json={"email": "ada@acme.example"}, headers=tenant.headers)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/users/{body['uuid']}"
    assert body["email"] == "ada@acme.example"
    assert (body["first_name"], body["last_name"], body["partnership_uuid"]) == (None, None, None)
    assert body["created_at"] == body["updated_at"]
    assert client.get(response.headers["location"], headers=tenant.read_headers).json() == body


def test_create_partner_user_keeps_email_case(api):
    partner = api.partner()
    body = api.user(email="Ada.Lovelace@Acme.Example", first_name="Ada", last_name="Lovelace",
                    partnership_uuid=partner["uuid"])
    assert body["email"] == "Ada.Lovelace@Acme.Example"
    assert (body["first_name"], body["last_name"]) == ("Ada", "Lovelace")
    assert body["partnership_uuid"] == partner["uuid"]


def test_create_accepts_explicit_nulls(api):
    body = api.user(first_name=None, last_name=None, partnership_uuid=None)
    assert (body["first_name"], body["last_name"], body["partnership_uuid"]) == (None, None, None)


def test_create_with_unknown_partner_is_404(client, tenant):
    response = client.post("/v1/users",
                           json={"email": "a@b.example", "partnership_uuid": ABSENT_UUID},
                           headers=tenant.headers)
    assert expect_error(response, 404, "not_found") == "Partner not found"
    assert client.get("/v1/users", headers=tenant.headers).json()["pagination"]["total"] == 0


def test_create_with_uppercase_partner_uuid_stores_it_canonically(api):
    partner = api.partner()
    body = api.user(partnership_uuid=partner["uuid"].upper())
    assert body["partnership_uuid"] == partner["uuid"]


@pytest.mark.parametrize("taken, again", [
    ("ada@acme.example", "ada@acme.example"),
    ("ada@acme.example", "ADA@Acme.Example"),
    ("Ada@ACME.example", "ada@acme.EXAMPLE"),
])
def test_email_unique_per_account_case_insensitively(api, client, tenant, taken, again):
    first = api.user(email=taken)
    response = client.post("/v1/users", json={"email": again}, headers=tenant.headers)
    assert expect_error(response, 409, "conflict") == "A user with this email already exists"
    listed = client.get("/v1/users", headers=tenant.headers).json()
    assert listed["data"] == [first]


def test_same_email_in_another_account_is_fine(api, client, other_tenant):
    mine = api.user(email="ada@acme.example")
    response = client.post("/v1/users", json={"email": "ADA@acme.example"},
                           headers=other_tenant.headers)
    assert response.status_code == 201
    assert response.json()["uuid"] != mine["uuid"]


def test_update_to_taken_email_is_409(api, client, tenant):
    ada, bob = api.user(email="ada@acme.example"), api.user(email="bob@acme.example")
    response = client.patch(f"/v1/users/{bob['uuid']}", json={"email": "Ada@Acme.example"},
                            headers=tenant.headers)
    assert expect_error(response, 409, "conflict") == "A user with this email already exists"
    assert client.get(f"/v1/users/{bob['uuid']}", headers=tenant.headers).json() == bob
    assert client.get(f"/v1/users/{ada['uuid']}", headers=tenant.headers).json() == ada


def test_update_own_email_case_is_allowed(api, client, tenant):
    ada = api.user(email="ada@acme.example")
    response = client.patch(f"/v1/users/{ada['uuid']}", json={"email": "ADA@acme.example"},
                            headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["email"] == "ADA@acme.example"
    # The folded email moved with it: the old spelling still finds the user, and is still taken.
    found = client.get("/v1/users?email=ada@ACME.example", headers=tenant.headers).json()
    assert [u["uuid"] for u in found["data"]] == [ada["uuid"]]
    again = client.post("/v1/users", json={"email": "ada@acme.example"}, headers=tenant.headers)
    expect_error(again, 409, "conflict")


def test_freed_email_can_be_reused(api, client, tenant):
    ada = api.user(email="ada@acme.example")
    client.patch(f"/v1/users/{ada['uuid']}", json={"email": "lovelace@acme.example"},
                 headers=tenant.headers)
    assert api.user(email="Ada@acme.example")["email"] == "Ada@acme.example"


def test_update_fields_and_timestamps(api, client, tenant):
    user = api.user(first_name="Ada")
    response = client.patch(f"/v1/users/{user['uuid']}", json={"last_name": "Lovelace"},
                            headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["first_name"], body["last_name"]) == ("Ada", "Lovelace")
    assert body["email"] == user["email"]
    assert body["created_at"] == user["created_at"]
    assert body["updated_at"] > user["updated_at"]
    cleared = client.patch(f"/v1/users/{user['uuid']}", json={"first_name": None},
                           headers=tenant.headers).json()
    assert cleared["first_name"] is None and cleared["last_name"] == "Lovelace"


def test_update_partnership_set_change_and_clear(api, client, tenant):
    acme, globex = api.partner(name="Acme"), api.partner(name="Globex")
    user = api.user()
    path = f"/v1/users/{user['uuid']}"
    for target in (acme["uuid"], globex["uuid"], None):
        response = client.patch(path, json={"partnership_uuid": target}, headers=tenant.headers)
        assert response.status_code == 200
        assert response.json()["partnership_uuid"] == target
    assert client.get(path, headers=tenant.headers).json()["partnership_uuid"] is None


def test_update_to_unknown_partner_is_404_and_changes_nothing(api, client, tenant):
    user = api.user()
    response = client.patch(f"/v1/users/{user['uuid']}",
                            json={"partnership_uuid": ABSENT_UUID, "first_name": "X"},
                            headers=tenant.headers)
    assert expect_error(response, 404, "not_found") == "Partner not found"
    assert client.get(f"/v1/users/{user['uuid']}", headers=tenant.headers).json() == user


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_user_is_404(client, tenant, method):
    kwargs = {"json": {"first_name": "X"}} if method == "patch" else {}
    response = getattr(client, method)(f"/v1/users/{ABSENT_UUID}", headers=tenant.headers, **kwargs)
    assert expect_error(response, 404, "not_found") == "User not found"


def test_unknown_user_enrollments_is_404(client, tenant):
    response = client.get(f"/v1/users/{ABSENT_UUID}/enrollments", headers=tenant.headers)
    assert expect_error(response, 404, "not_found") == "User not found"


def test_delete_then_gone(api, client, tenant):
    user = api.user()
    response = client.delete(f"/v1/users/{user['uuid']}", headers=tenant.headers)
    assert response.status_code == 204 and response.content == b""
    expect_error(client.get(f"/v1/users/{user['uuid']}", headers=tenant.headers), 404, "not_found")


def test_delete_with_read_key_is_403(api, client, tenant):
    user = api.user()
    response = client.delete(f"/v1/users/{user['uuid']}", headers=tenant.read_headers)
    expect_error(response, 403, "forbidden")
    assert client.get(f"/v1/users/{user['uuid']}", headers=tenant.headers).status_code == 200


def test_delete_refused_while_enrolled(api, client, tenant):
    user = api.user()
    enrollment = api.enroll(api.certification(), user)
    response = client.delete(f"/v1/users/{user['uuid']}", headers=tenant.headers)
    assert "enrollments" in expect_error(response, 409, "conflict")
    assert client.get(f"/v1/users/{user['uuid']}", headers=tenant.headers).json() == user
    path = f"/v1/certifications/{enrollment['certification_uuid']}/enrollments/{enrollment['uuid']}"
    assert client.delete(path, headers=tenant.headers).status_code == 204
    assert client.delete(f"/v1/users/{user['uuid']}", headers=tenant.headers).status_code == 204


def test_list_and_filters(api, client, tenant):
    acme, globex = api.partner(name="Acme"), api.partner(name="Globex")
    staff = api.user(email="Staff@Vendor.example")
    a1 = api.user(email="a1@acme.example", partnership_uuid=acme["uuid"])
    g1 = api.user(email="g1@globex.example", partnership_uuid=globex["uuid"])
    a2 = api.user(email="a2@acme.example", partnership_uuid=acme["uuid"])

    def listed(query=""):
        response = client.get(f"/v1/users{query}", headers=tenant.read_headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["pagination"]["total"] == len(body["data"])
        return [u["uuid"] for u in body["data"]]

    assert listed() == [u["uuid"] for u in (staff, a1, g1, a2)]
    assert listed("?email=staff@vendor.example") == [staff["uuid"]]
    assert listed("?email=STAFF@VENDOR.EXAMPLE") == [staff["uuid"]]
    assert listed("?email=nobody@vendor.example") == []
    assert listed(f"?partnership_uuid={acme['uuid']}") == [a1["uuid"], a2["uuid"]]
    assert listed(f"?partnership_uuid={acme['uuid'].upper()}") == [a1["uuid"], a2["uuid"]]
    assert listed(f"?partnership_uuid={globex['uuid']}&email=G1@globex.example") == [g1["uuid"]]
    assert listed(f"?partnership_uuid={globex['uuid']}&email=a1@acme.example") == []
    # A filter is a filter: an unknown partner matches no one (the spec lists no 404 here).
    assert listed(f"?partnership_uuid={ABSENT_UUID}") == []


@pytest.mark.parametrize("query, message", [
    ("?email=not-an-email", "query/email: Does not match the expected format"),
    ("?partnership_uuid=nope", "query/partnership_uuid: Does not match the expected format"),
    ("?colour=red", "query/colour: Unknown parameter"),
])
def test_list_rejects_bad_filters(client, tenant, query, message):
    response = client.get(f"/v1/users{query}", headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == message


@pytest.mark.parametrize("payload, message", [
    ({}, "body/email: Required"),
    ({"first_name": "Ada"}, "body/email: Required"),
    ({"email": None}, "body/email: Expected string"),
    ({"email": 42}, "body/email: Expected string"),
    ({"email": "ada"}, "body/email: Does not match the expected format"),
    ({"email": "a@b.example", "role": "admin"}, "body/role: Unknown field"),
    ({"email": "a@b.example", "first_name": ""}, "body/first_name: Must not be empty"),
    ({"email": "a@b.example", "last_name": 1}, "body/last_name: Expected string"),
    ({"email": "a@b.example", "partnership_uuid": "acme"},
     "body/partnership_uuid: Does not match the expected format"),
])
def test_create_rejects_invalid_bodies(client, tenant, payload, message):
    response = client.post("/v1/users", json=payload, headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == message


@pytest.mark.parametrize("payload, message", [
    ({}, "body: At least one field is required"),
    ({"email": None}, "body/email: Expected string"),
    ({"email": "ada"}, "body/email: Does not match the expected format"),
    ({"uuid": ABSENT_UUID}, "body/uuid: Unknown field"),
    ({"first_name": 3}, "body/first_name: Expected string"),
])
def test_update_rejects_invalid_bodies(api, client, tenant, payload, message):
    user = api.user()
    response = client.patch(f"/v1/users/{user['uuid']}", json=payload, headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == message
    assert client.get(f"/v1/users/{user['uuid']}", headers=tenant.headers).json() == user


def test_user_enrollments_across_certifications_with_status_filter(api, client, tenant):
    user, bystander = api.user(), api.user()
    certs = [api.certification(name=f"C{i}") for i in range(3)]
    enrolled = [api.enroll(cert, user) for cert in certs]
    api.enroll(certs[0], bystander)
    # One in progress, one completed, one left enrolled.
    api.attempt(enrolled[1], 10)
    api.attempt(enrolled[2], 95)

    def listed(query=""):
        response = client.get(f"/v1/users/{user['uuid']}/enrollments{query}",
                              headers=tenant.read_headers)
        assert response.status_code == 200, response.text
        return response.json()

    body = listed()
    assert [e["uuid"] for e in body["data"]] == [e["uuid"] for e in enrolled]
    assert {e["certification_uuid"] for e in body["data"]} == {c["uuid"] for c in certs}
    assert all(e["user_uuid"] == user["uuid"] and e["user_email"] == user["email"]
               for e in body["data"])
    assert body["pagination"] == {"page": 1, "per_page": 25, "total": 3, "total_pages": 1}
    expected = {"enrolled": enrolled[0], "in_progress": enrolled[1], "completed": enrolled[2]}
    for status, enrollment in expected.items():
        filtered = listed(f"?status={status}")
        assert [e["uuid"] for e in filtered["data"]] == [enrollment["uuid"]], status
        assert filtered["data"][0]["status"] == status
        assert filtered["pagination"]["total"] == 1
    assert listed("?status=failed")["data"] == []
    paged = listed("?per_page=2&page=2")
    assert [e["uuid"] for e in paged["data"]] == [enrolled[2]["uuid"]]
    assert paged["pagination"] == {"page": 2, "per_page": 2, "total": 3, "total_pages": 2}


def test_user_enrollments_reflect_email_change(api, client, tenant):
    user = api.user(email="old@acme.example")
    api.enroll(api.certification(), user)
    client.patch(f"/v1/users/{user['uuid']}", json={"email": "new@acme.example"},
                 headers=tenant.headers)
    body = client.get(f"/v1/users/{user['uuid']}/enrollments", headers=tenant.headers).json()
    assert [e["user_email"] for e in body["data"]] == ["new@acme.example"]


def test_user_enrollments_bad_status_is_422(api, client, tenant):
    user = api.user()
    response = client.get(f"/v1/users/{user['uuid']}/enrollments?status=done",
                          headers=tenant.headers)
    message = expect_error(response, 422, "validation_error")
    assert message.startswith("query/status: Must be one of")


def test_email_filter_takes_an_encoded_plus(api, client, tenant):
    tagged = api.user(email="ada+certs@acme.example")
    api.user(email="ada@acme.example")
    body = client.get("/v1/users?email=ADA%2Bcerts@acme.example", headers=tenant.headers).json()
    assert [u["uuid"] for u in body["data"]] == [tagged["uuid"]]


def test_upper_case_path_uuid_reaches_the_user(api, client, tenant):
    user = api.user()
    path = f"/v1/users/{user['uuid'].upper()}"
    assert client.get(path, headers=tenant.headers).json() == user
    updated = client.patch(path, json={"first_name": "Ada"}, headers=tenant.headers)
    assert updated.status_code == 200 and updated.json()["uuid"] == user["uuid"]
    assert client.delete(path, headers=tenant.headers).status_code == 204
