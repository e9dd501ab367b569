"""CSV on the three lists (Accept: text/csv or ?format=csv): every matching row, the
filters honoured, RFC 4180, the JSON's fields and values, the formula guard."""
import csv
import io

import pytest

from certapi import csv_export
from models import Enrollment
from tests.conftest import ABSENT_UUID, SPEC, expect_error

CSV_HEADERS = {"Accept": "text/csv"}


def fields(schema: str) -> list[str]:
    return list(SPEC["components"]["schemas"][schema]["properties"])


def as_cell(value) -> str:
    """A JSON value as the export writes it (the guard aside)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def export(client, headers, path, params=None, accept=True) -> tuple[list[str], list[dict], str]:
    response = client.get(path, params=params or {}, headers={**headers, **(CSV_HEADERS if accept else {})})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="')
    assert response.headers["content-disposition"].endswith('.csv"')
    text = response.content.decode("utf-8")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    return header, [dict(zip(header, row, strict=True)) for row in body], text


def listed(client, headers, path, params=None) -> list[dict]:
    response = client.get(path, params={"per_page": 100, **(params or {})}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()["data"]


@pytest.fixture
def program(api, client, tenant):
    certification = api.certification(passing_score=60, validity_days=30)
    partner = api.partner()
    staff = [api.user(first_name=f"Staff {i}") for i in range(3)]
    members = [api.user(partnership_uuid=partner["uuid"]) for _ in range(2)]
    enrollments = [api.enroll(certification, u) for u in staff]
    enrollments += [api.enroll(certification, u, partnership_uuid=partner["uuid"]) for u in members]
    api.attempt(enrollments[0], 85.5)
    api.attempt(enrollments[1], 20)
    return certification, partner, staff, members


def test_certification_enrollments_as_csv_equal_the_json(client, tenant, program):
    certification, *_ = program
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    header, rows, _ = export(client, tenant.headers, path, {"per_page": 1, "page": 3})
    assert header == fields("Enrollment")
    expected = listed(client, tenant.headers, path)
    assert len(rows) == len(expected) == 5  # page and per_page do not apply
    assert rows == [{name: as_cell(item[name]) for name in header} for item in expected]
    assert rows[0]["assessment_best_score"] == "85.5" and rows[0]["assessment_passed"] == "true"
    assert rows[1]["assessment_passed"] == "false" and rows[2]["assessment_passed"] == ""


def test_filters_are_honoured(client, tenant, program):
    certification, partner, staff, members = program
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    for params in ({"status": "completed"}, {"status": "in_progress"}, {"user_uuid": staff[2]["uuid"]},
                   {"partnership_uuid": partner["uuid"]}, {"partnership_uuid": ABSENT_UUID}):
        _, rows, _ = export(client, tenant.headers, path, params)
        assert [r["uuid"] for r in rows] == [e["uuid"] for e in listed(client, tenant.headers, path, params)]
    _, rows, _ = export(client, tenant.headers, path, {"partnership_uuid": partner["uuid"]})
    assert len(rows) == 2


def test_format_parameter_and_accept_header(client, tenant, program):
    certification, *_ = program
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    _, rows, _ = export(client, tenant.headers, path, {"format": "csv"}, accept=False)
    assert len(rows) == 5
    for headers, params in (({"Accept": "text/csv"}, {"format": "json"}), ({"Accept": "*/*"}, {}),
                            ({"Accept": "application/json, text/csv"}, {}), ({}, {})):
        response = client.get(path, params=params, headers={**tenant.headers, **headers})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json", headers
        assert len(response.json()["data"]) == 5
    response = client.get(path, params={"format": "xml"}, headers=tenant.headers)
    assert expect_error(response, 422, "validation_error").startswith("query/format")


def test_user_enrollments_and_users(api, client, tenant, program):
    certification, partner, staff, members = program
    other = api.certification(name="Second")
    api.enroll(other, staff[0])
    path = f"/v1/users/{staff[0]['uuid']}/enrollments"
    header, rows, _ = export(client, tenant.headers, path)
    assert header == fields("Enrollment")
    assert [r["certification_uuid"] for r in rows] == [certification["uuid"], other["uuid"]]
    _, rows, _ = export(client, tenant.headers, path, {"status": "enrolled"})
    assert [r["certification_uuid"] for r in rows] == [other["uuid"]]

    header, rows, text = export(client, tenant.headers, "/v1/users")
    assert header == fields("User")
    expected = listed(client, tenant.headers, "/v1/users")
    assert rows == [{name: as_cell(item[name]) for name in header} for item in expected]
    _, rows, _ = export(client, tenant.headers, "/v1/users", {"partnership_uuid": partner["uuid"]})
    assert sorted(r["uuid"] for r in rows) == sorted(m["uuid"] for m in members)
    _, rows, _ = export(client, tenant.headers, "/v1/users", {"email": staff[1]["email"].upper()})
    assert [r["uuid"] for r in rows] == [staff[1]["uuid"]]


def test_quoting_and_the_formula_guard(api, client, tenant):
    names = ["=HYPERLINK(\"http://x.example\")", "+1", "-2", "@SUM(A1)", 'Ada, "the" Countess', "Plain"]
    for name in names:
        api.user(first_name=name, last_name="é ü 中")
    api.user(email="=cmd@example.com")
    _, rows, text = export(client, tenant.headers, "/v1/users")
    firsts = [r["first_name"] for r in rows]
    assert firsts[:6] == ["'=HYPERLINK(\"http://x.example\")", "'+1", "'-2", "'@SUM(A1)",
                          'Ada, "the" Countess', "Plain"]
    assert rows[0]["last_name"] == "é ü 中"
    assert rows[6]["email"] == "'=cmd@example.com"
    assert '"Ada, ""the"" Countess"' in text and "\"'=HYPERLINK(\"\"http://x.example\"\")\"" in text
    # Tabs and carriage returns cannot enter through the API's text fields; the guard has them.
    assert [csv_export.cell(v) for v in ("\tx", "\rx", "x=1", "", 0, -1.5)] == [
        "'\tx", "'\rx", "x=1", "", 0, -1.5]


def test_rows_across_chunks_and_equal_timestamps(api, client, tenant, monkeypatch):
    """The export reads in keyset chunks; rows sharing a timestamp straddle a chunk
    boundary and each comes out once, in the list's order."""
    certification = api.certification()
    enrollments = [api.enroll(certification, api.user()) for _ in range(7)]
    same = Enrollment.get_by_id(enrollments[0]["uuid"]).enrolled_at
    Enrollment.update(enrolled_at=same).where(
        Enrollment.uuid.in_([e["uuid"] for e in enrollments[:5]])).execute()
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 2)
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    _, rows, _ = export(client, tenant.headers, path)
    assert [r["uuid"] for r in rows] == [e["uuid"] for e in listed(client, tenant.headers, path)]
    assert len({r["uuid"] for r in rows}) == 7


def test_empty_export_has_the_header(api, client, tenant):
    certification = api.certification()
    header, rows, text = export(client, tenant.headers, f"/v1/certifications/{certification['uuid']}/enrollments")
    assert rows == [] and text == ",".join(fields("Enrollment")) + "\r\n"


def test_errors_stay_json(client, tenant, other_tenant, api):
    theirs = api.user()
    for path in (f"/v1/certifications/{ABSENT_UUID}/enrollments", f"/v1/users/{theirs['uuid']}/enrollments"):
        response = client.get(path, params={"format": "csv"}, headers=other_tenant.headers)
        expect_error(response, 404, "not_found")
    expect_error(client.get("/v1/users", headers=CSV_HEADERS), 401, "unauthorized")
