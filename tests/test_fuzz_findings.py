"""What Schemathesis found (tests/test_fuzz.py, .ci/fuzz_server.py), pinned as plain
examples so each stays fixed however the fuzz budget or seed changes."""
import pytest

UUID = "3f2b8c1e-7d4a-4c2e-9b1a-2f6d8e0c4a51"


def error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    return response.json()["error"]["message"]


@pytest.mark.parametrize("path, place", [
    ("/v1/partners/abc%0A", "path/uuid"),
    (f"/v1/certifications/{UUID}/enrollments/{UUID}/assessment-attempts/x%0Ay", "path/attempt_uuid"),
    (f"/v1/users/{UUID}%0D", "path/uuid"),
])
def test_a_control_character_in_a_path_parameter_is_a_422(client, tenant, path, place):
    # An encoded newline got past Connexion's router but not Flask's: a 500.
    message = error(client.get(path, headers=tenant.headers), 422, "validation_error")
    assert message == f"{place}: Does not match the expected format"


def test_a_control_character_in_a_fixed_segment_is_an_unknown_route(client, tenant):
    error(client.get("/v1/part%0Aners", headers=tenant.headers), 404, "not_found")


@pytest.mark.parametrize("name", ["Acme\x1f", "\x1fAcme", "Acme\n", "\n", "Ac\x00me"])
def test_a_name_with_a_control_character_is_refused(api, client, tenant, name):
    # JSON Schema patterns are ECMA-262: there `\S` takes \x1c-\x1f (Python's does not)
    # and `$` is the end of the text (Python's also matches before a final newline).
    response = client.post("/v1/partners", json={"name": name}, headers=tenant.headers)
    assert error(response, 422, "validation_error") == "body/name: Does not match the expected format"


def test_names_that_are_text_are_accepted(api):
    for name in ("Acme", " Acme Consulting ", "Ünïcødé ☃", "a"):
        assert api.partner(name=name)["name"] == name


@pytest.mark.parametrize("query", ["user_uuid", "partnership_uuid"])
def test_a_uuid_filter_with_a_trailing_newline_is_refused(api, client, tenant, query):
    certification = api.certification()
    response = client.get(f"/v1/certifications/{certification['uuid']}/enrollments",
                          params={query: UUID + "\n"}, headers=tenant.headers)
    assert error(response, 422, "validation_error") == f"query/{query}: Does not match the expected format"


def test_an_email_with_a_trailing_newline_is_refused(client, tenant):
    response = client.post("/v1/users", json={"email": "ada@example.com\n"}, headers=tenant.headers)
    assert error(response, 422, "validation_error") == "body/email: Does not match the expected format"
