"""The tallies (migration 0009) that give list totals and stats: every kind of write
keeps them equal to the rows they count, the migration builds them for rows that already
exist, and the lists read from them answer what counting would. (Concurrent writers on 4
workers: tests/test_concurrency.py checks the same invariants after its storms.)"""
import importlib

import pytest

from models import Account, Enrollment, User, database
from tests.conftest import Api, make_tenant
from tests.invariants import RULES, violations

TALLY_RULES = [rule for rule, _ in RULES if "tally" in rule]
tallies = importlib.import_module("models.migrations.0009_tallies")


def tally_violations(database_url: str) -> dict:
    return {rule: rows for rule, rows in violations(database_url).items() if "tally" in rule}


def enrollments_path(certification: dict) -> str:
    return f"/v1/certifications/{certification['uuid']}/enrollments"


def listed(client, tenant, path: str, **params) -> dict:
    response = client.get(path, params=params, headers=tenant.read_headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_invariants_name_the_tallies():
    assert len(TALLY_RULES) == 2


def test_every_kind_of_write_keeps_the_tallies_exact(api, client, tenant, database_url):
    certification = api.certification(passing_score=70, max_attempts=2, validity_days=30)
    partner = api.partner()
    members = [api.user(partnership_uuid=partner["uuid"]) for _ in range(3)] + [
        api.user() for _ in range(3)]
    single = api.enroll(certification, members[3])
    response = client.post(enrollments_path(certification) + "/bulk", headers=tenant.headers,
                           json={"enrollments": [
                               {"user_uuid": m["uuid"], "partnership_uuid": partner["uuid"]}
                               for m in members[:3]] + [{"user_uuid": members[4]["uuid"]}]})
    assert response.status_code == 200 and response.json()["summary"]["created"] == 4
    bulk = [r["enrollment"] for r in response.json()["data"]]
    response = client.patch(f"{enrollments_path(certification)}/{single['uuid']}",
                            json={"progress_percentage": 40}, headers=tenant.headers)
    assert response.status_code == 200
    api.attempt(bulk[0], 90)                 # completed
    api.attempt(bulk[1], 10)
    api.attempt(bulk[1], 20)                 # failed
    api.attempt(bulk[2], 50)                 # in progress, scored
    response = client.delete(f"{enrollments_path(certification)}/{bulk[3]['uuid']}",
                             headers=tenant.headers)
    assert response.status_code == 204
    response = client.patch(f"/v1/users/{members[5]['uuid']}", headers=tenant.headers,
                            json={"partnership_uuid": partner["uuid"]})
    assert response.status_code == 200
    response = client.delete(f"/v1/users/{members[4]['uuid']}", headers=tenant.headers)
    assert response.status_code == 204
    assert tally_violations(database_url) == {}

    # What the lists and stats read from the tallies is what counting says.
    path = enrollments_path(certification)
    assert listed(client, tenant, path)["pagination"]["total"] == 4
    assert listed(client, tenant, path, status="completed")["pagination"]["total"] == 1
    assert listed(client, tenant, path, status="in_progress")["pagination"]["total"] == 2
    assert listed(client, tenant, path, partnership_uuid=partner["uuid"].upper(),
                  status="failed")["pagination"]["total"] == 1
    # user_uuid is not tallied: the fallback counts.
    assert listed(client, tenant, path, user_uuid=members[0]["uuid"])["pagination"]["total"] == 1
    assert listed(client, tenant, "/v1/users")["pagination"]["total"] == 5
    assert listed(client, tenant, "/v1/users",
                  partnership_uuid=partner["uuid"])["pagination"]["total"] == 4
    assert listed(client, tenant, "/v1/users", email=members[0]["email"].upper()
                  )["pagination"]["total"] == 1
    numbers = listed(client, tenant, f"/v1/certifications/{certification['uuid']}/stats")
    assert numbers["enrollments"] == {"total": 4, "enrolled": 0, "in_progress": 2,
                                      "completed": 1, "failed": 1}
    assert numbers["average_best_score"] == pytest.approx((90 + 20 + 50) / 3)
    assert numbers["certified_now"] == 1 and numbers["expiring_within_30_days"] == 1


def test_a_foreign_key_cascade_keeps_the_tallies_exact(client, database_url):
    """Deleting an account removes its users and enrollments through ON DELETE CASCADE,
    which no handler sees; the triggers still do."""
    doomed = make_tenant("Doomed")
    api = Api(client, doomed)
    certification = api.certification()
    partner = api.partner()
    api.enroll(certification, api.user())
    api.enroll(certification, api.user(partnership_uuid=partner["uuid"]),
               partnership_uuid=partner["uuid"])
    assert Enrollment.select().where(Enrollment.account == doomed.uuid).count() == 2
    with database.atomic():
        Account.delete().where(Account.uuid == doomed.uuid).execute()
    assert Enrollment.select().where(Enrollment.account == doomed.uuid).count() == 0
    assert User.select().where(User.account == doomed.uuid).count() == 0
    assert tally_violations(database_url) == {}


def test_the_migration_builds_tallies_for_existing_rows(api, database_url):
    certification = api.certification()
    for _ in range(3):
        api.enroll(certification, api.user())
    with database.atomic():
        tallies.down(None, database.obj)
        tallies.up(None, database.obj)
    assert tally_violations(database_url) == {}
    assert Enrollment.select().where(Enrollment.certification == certification["uuid"]).count() == 3
    rows = database.execute_sql(
        "SELECT enrollments FROM enrollment_tally WHERE certification_uuid = %s"
        .replace("%s", database.param), (certification["uuid"],)).fetchall()
    assert rows == [(3,)]


@pytest.mark.parametrize("per_page", [1, 3, 4, 7])
def test_pages_from_either_end_list_each_row_once_in_order(api, client, tenant, per_page):
    """A page past the middle is read in reverse from the end: the pages together are the
    whole list in order, each row once, for even and odd splits."""
    certification = api.certification()
    for _ in range(10):
        api.enroll(certification, api.user())
    path = enrollments_path(certification)
    everything = [e["uuid"] for e in listed(client, tenant, path, per_page=100)["data"]]
    assert len(everything) == 10
    pages = []
    for page in range(1, -(-10 // per_page) + 2):
        body = listed(client, tenant, path, page=page, per_page=per_page)
        assert body["pagination"]["total"] == 10
        pages += [e["uuid"] for e in body["data"]]
    assert pages == everything
