"""POST /v1/certifications/{uuid}/enrollments/bulk: per-item results in order, each item
judged by the seed endpoint's rules (certapi.lifecycle, the same functions), whole-request
404/409/422 with nothing applied, and each item atomic."""
import pytest

import handlers.bulk
from certapi import lifecycle
from certapi.errors import ValidationFailed
from models import Enrollment
from tests.conftest import ABSENT_UUID, expect_error


def bulk_path(certification: dict) -> str:
    return f"/v1/certifications/{certification['uuid']}/enrollments/bulk"


def bulk(client, tenant, certification, items, expect=200):
    response = client.post(bulk_path(certification), json={"enrollments": items},
                           headers=tenant.headers)
    assert response.status_code == expect, response.text
    return response.json()


def stored(certification: dict) -> list[tuple[str, str]]:
    return [(e.user_uuid, e.status) for e in Enrollment.select().where(
        Enrollment.certification == certification["uuid"]).order_by(Enrollment.enrolled_at)]


def test_each_item_judged_on_its_own_in_order(api, client, tenant):
    certification, partner, stranger = api.certification(), api.partner(), api.partner()
    staff, other = api.user(), api.user()
    member = api.user(partnership_uuid=partner["uuid"])
    items = [
        {"user_uuid": staff["uuid"]},                                         # 201
        {"user_uuid": staff["uuid"]},                                         # 409: twice
        {"user_uuid": ABSENT_UUID},                                           # 404 user
        {"user_uuid": member["uuid"]},                                        # 422 partner missing
        {"user_uuid": member["uuid"], "partnership_uuid": stranger["uuid"]},  # 422 not theirs
        {"user_uuid": other["uuid"], "partnership_uuid": ABSENT_UUID},        # 404 partner
        {"user_uuid": member["uuid"].upper(), "partnership_uuid": partner["uuid"]},  # 201
        {"user_uuid": other["uuid"]},                                         # 201
    ]
    body = bulk(client, tenant, certification, items)
    assert [r["index"] for r in body["data"]] == list(range(len(items)))
    assert [r["status"] for r in body["data"]] == [201, 409, 404, 422, 422, 404, 201, 201]
    assert body["summary"] == {"created": 3, "failed": 5}
    errors = [r["error"] for r in body["data"]]
    assert errors[1] == {"code": "conflict", "message": "User is already enrolled in this certification"}
    assert errors[2] == {"code": "not_found", "message": "User not found"}
    assert errors[3]["code"] == "validation_error"
    assert errors[3]["message"].startswith("body/partnership_uuid")
    assert errors[5] == {"code": "not_found", "message": "Partner not found"}
    for result in body["data"]:
        assert (result["enrollment"] is None) == (result["status"] != 201)
        assert (result["error"] is None) == (result["status"] == 201)
    created = [r["enrollment"] for r in body["data"] if r["status"] == 201]
    assert [e["user_uuid"] for e in created] == [staff["uuid"], member["uuid"], other["uuid"]]
    assert created[1]["partnership_uuid"] == partner["uuid"]
    assert created[0]["user_email"] == staff["email"]
    for enrollment in created:  # what was answered is what was stored
        got = client.get(f"/v1/certifications/{certification['uuid']}/enrollments/{enrollment['uuid']}",
                         headers=tenant.headers)
        assert got.json() == enrollment
    assert sorted(stored(certification)) == sorted(
        [(staff["uuid"], "enrolled"), (member["uuid"], "enrolled"), (other["uuid"], "enrolled")])


def test_existing_enrollments_count_and_failed_ones_do_not(api, client, tenant):
    certification = api.certification(max_attempts=1, passing_score=50)
    holder, failer = api.user(), api.user()
    api.enroll(certification, holder)
    failed = api.enroll(certification, failer)
    api.attempt(failed, 10)
    body = bulk(client, tenant, certification,
                [{"user_uuid": holder["uuid"]}, {"user_uuid": failer["uuid"]}])
    assert [r["status"] for r in body["data"]] == [409, 201]


def test_items_use_the_lifecycle_rules_themselves(api, client, tenant, monkeypatch):
    """Not a copy of the rules: a change to certapi.lifecycle shows in bulk answers."""
    certification, first, second = api.certification(), api.user(), api.user()

    def refuse_second(certification_row, user, partner):
        if user.uuid == second["uuid"]:
            raise ValidationFailed("body/user_uuid: Refused by the rule under test")

    monkeypatch.setattr(lifecycle, "check_enrollment", refuse_second)
    body = bulk(client, tenant, certification,
                [{"user_uuid": first["uuid"]}, {"user_uuid": second["uuid"]}])
    assert [r["status"] for r in body["data"]] == [201, 422]
    assert body["data"][1]["error"]["message"] == "body/user_uuid: Refused by the rule under test"


def test_other_accounts_rows_are_absent(api, client, tenant, other_tenant):
    from tests.conftest import Api
    theirs = Api(client, other_tenant)
    certification = api.certification()
    their_user, their_partner = theirs.user(), theirs.partner()
    mine = api.user()
    body = bulk(client, tenant, certification, [
        {"user_uuid": their_user["uuid"]},
        {"user_uuid": mine["uuid"], "partnership_uuid": their_partner["uuid"]},
    ])
    assert [(r["status"], r["error"]["message"]) for r in body["data"]] == [
        (404, "User not found"), (404, "Partner not found")]
    theirs_cert = theirs.certification()
    expect_error(client.post(bulk_path(theirs_cert), json={"enrollments": [{"user_uuid": mine["uuid"]}]},
                             headers=tenant.headers), 404, "not_found")


def test_whole_request_errors_apply_nothing(api, client, tenant):
    user = api.user()
    items = {"enrollments": [{"user_uuid": user["uuid"]}]}
    absent = {"uuid": ABSENT_UUID}
    assert "Certification" in expect_error(
        client.post(bulk_path(absent), json=items, headers=tenant.headers), 404, "not_found")
    for state in ("draft", "archived"):
        certification = api.certification(status=state)
        expect_error(client.post(bulk_path(certification), json=items, headers=tenant.headers),
                     409, "conflict")
        assert stored(certification) == []
    certification = api.certification()
    bad = [
        ({"enrollments": []}, "body/enrollments"),
        ({"enrollments": [{"user_uuid": user["uuid"]}] * 1001}, "body/enrollments"),
        ({"enrollments": [{"user_uuid": user["uuid"]}, {}]}, "body/enrollments/1/user_uuid"),
        ({"enrollments": [{"user_uuid": user["uuid"]}, {"user_uuid": "nope"}]},
         "body/enrollments/1/user_uuid"),
        ({"enrollments": [{"user_uuid": user["uuid"], "extra": 1}]}, "body/enrollments/0"),
        ({}, "body/enrollments"),
    ]
    for body, place in bad:
        message = expect_error(client.post(bulk_path(certification), json=body,
                                           headers=tenant.headers), 422, "validation_error")
        assert message.startswith(place), (body, message)
    assert stored(certification) == []


def test_a_thousand_items(api, client, tenant):
    certification = api.certification()
    users = [api.user() for _ in range(20)]
    items = [{"user_uuid": users[i % 20]["uuid"]} for i in range(1000)]
    body = bulk(client, tenant, certification, items)
    assert len(body["data"]) == 1000
    assert [r["status"] for r in body["data"][:20]] == [201] * 20
    assert {r["status"] for r in body["data"][20:]} == {409}
    assert body["summary"] == {"created": 20, "failed": 980}


def test_an_insert_the_database_refuses_undoes_that_item_only(api, client, tenant, monkeypatch):
    """A race the rules cannot see: the second user's enrollment is committed after the
    request read the enrollments. The unique index refuses it; each item then goes in its
    own savepoint, and only that one is a 409."""
    certification, first, second, third = api.certification(), api.user(), api.user(), api.user()
    raced = api.enroll(certification, second)
    read = handlers.bulk._held

    def before_the_race(certification_row, users):
        held = read(certification_row, users)
        held[second["uuid"]] = []
        return held

    monkeypatch.setattr(handlers.bulk, "_held", before_the_race)
    body = bulk(client, tenant, certification, [{"user_uuid": u["uuid"]} for u in (first, second, third)])
    assert [r["status"] for r in body["data"]] == [201, 409, 201]
    assert body["data"][1]["error"]["message"] == "User is already enrolled in this certification"
    rows = Enrollment.select().where(Enrollment.certification == certification["uuid"])
    assert sorted((e.user_uuid, e.uuid == raced["uuid"]) for e in rows) == sorted(
        [(first["uuid"], False), (second["uuid"], True), (third["uuid"], False)])


def test_a_crash_mid_request_leaves_nothing_half_made(api, client, tenant, monkeypatch):
    certification, first, second = api.certification(), api.user(), api.user()
    insert, batches = handlers.bulk.insert_rows, []

    def crash_on_second_batch(model, rows):
        batches.append(rows)
        if len(batches) == 2:
            raise RuntimeError("the process dies here")
        return insert(model, rows)

    monkeypatch.setattr(handlers.bulk, "INSERT_BATCH", 1)
    monkeypatch.setattr(handlers.bulk, "insert_rows", crash_on_second_batch)
    response = client.post(bulk_path(certification), json={"enrollments": [
        {"user_uuid": first["uuid"]}, {"user_uuid": second["uuid"]}]}, headers=tenant.headers)
    expect_error(response, 500, "internal_error")
    assert len(batches) == 2  # the first item was inserted, then undone with the request
    assert stored(certification) == []


@pytest.mark.parametrize("key", ["read_headers"])
def test_read_key_may_not_bulk_enroll(api, client, tenant, key):
    certification, user = api.certification(), api.user()
    response = client.post(bulk_path(certification), json={"enrollments": [{"user_uuid": user["uuid"]}]},
                           headers=getattr(tenant, key))
    expect_error(response, 403, "forbidden")
    assert stored(certification) == []


def test_each_created_item_raises_enrollment_created(api, client, tenant):
    certification = api.certification()
    first, second = api.user(), api.user()
    items = [{"user_uuid": first["uuid"]}, {"user_uuid": first["uuid"]},
             {"user_uuid": ABSENT_UUID}, {"user_uuid": second["uuid"]}]
    body = bulk(client, tenant, certification, items)
    created = [r["enrollment"] for r in body["data"] if r["status"] == 201]
    assert len(created) == 2
    response = client.get("/v1/events", params={"type": "enrollment.created", "per_page": 100},
                          headers=tenant.headers)
    assert response.status_code == 200, response.text
    events = [e for e in response.json()["data"]
              if e["data"]["certification_uuid"] == certification["uuid"]]
    # One event per created item, none for the refused ones, each carrying the enrollment
    # exactly as the bulk answer showed it.
    assert sorted((e["data"]["uuid"], e["type"]) for e in events) == sorted(
        (enrollment["uuid"], "enrollment.created") for enrollment in created)
    assert {e["data"]["uuid"]: e["data"] for e in events} == {e["uuid"]: e for e in created}


def test_the_lookups_go_by_key_not_through_the_account_or_certification(api, client, tenant,
                                                                       monkeypatch):
    """On SQLite (the backend the plan is checked on) the users and their enrollments are
    found through their own keys: without table statistics the planner otherwise walked
    every user of the account and every enrollment of the certification for them."""
    from models import database
    if "sqlite" not in type(database.obj).__name__.lower():
        pytest.skip("query plans are checked on SQLite")
    certification = api.certification()
    users = [api.user() for _ in range(3)]
    bulk(client, tenant, certification, [{"user_uuid": users[0]["uuid"]}])  # one held row
    seen: list[tuple[str, list]] = []
    execute = database.obj.execute_sql

    def recording(sql, params=None, *args, **kwargs):
        if sql.startswith("SELECT") and ('FROM "user"' in sql or 'FROM "enrollment"' in sql):
            seen.append((sql, list(params or ())))
        return execute(sql, params, *args, **kwargs)

    monkeypatch.setattr(database.obj, "execute_sql", recording)
    bulk(client, tenant, certification, [{"user_uuid": user["uuid"]} for user in users])
    monkeypatch.undo()
    plans = {sql.split(" FROM ")[1].split()[0]: " ".join(
        row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
        for sql, params in seen}
    assert set(plans) == {'"user"', '"enrollment"'}, plans
    assert "USING INDEX sqlite_autoindex_user_1 (uuid=?)" in plans['"user"'], plans
    assert "(user_uuid=?)" in plans['"enrollment"'], plans
    assert "certification_uuid=" not in plans['"enrollment"'], plans
