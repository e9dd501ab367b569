"""Expiry and recertification over HTTP: the new fields, enrolling again to renew a
completion (single and bulk), the expiry filters of both enrollment lists and their CSV
export, and stats that agree with the filters. Time moves with the `clock` fixture."""
import csv
import datetime
import io
import os
import re
import subprocess
import sys
import textwrap

import pytest

from models import Enrollment, database
from models.base import rfc3339
from tests.conftest import expect_error
from tests.databases import backends, fresh_database, query

DAY = datetime.timedelta(days=1)


def enrollments_path(certification: dict) -> str:
    return f"/v1/certifications/{certification['uuid']}/enrollments"


def enroll(client, tenant, certification, user, expect=201, **fields):
    response = client.post(enrollments_path(certification),
                           json={"user_uuid": user["uuid"], **fields}, headers=tenant.headers)
    assert response.status_code == expect, response.text
    return response.json()


def get(client, tenant, enrollment: dict) -> dict:
    response = client.get(f"{enrollments_path({'uuid': enrollment['certification_uuid']})}/"
                          f"{enrollment['uuid']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def complete(api, enrollment: dict) -> dict:
    return api.attempt(enrollment, 100)["enrollment"]


def bulk(client, tenant, certification, users) -> list[dict]:
    response = client.post(enrollments_path(certification) + "/bulk",
                           json={"enrollments": [{"user_uuid": u["uuid"]} for u in users]},
                           headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


# --- the data shape -------------------------------------------------------------------------

def test_renewal_window_days_defaults_to_30_and_can_be_set(api, client, tenant):
    certification = api.certification()
    assert certification["renewal_window_days"] == 30
    assert api.certification(renewal_window_days=0)["renewal_window_days"] == 0
    response = client.patch(f"/v1/certifications/{certification['uuid']}",
                            json={"renewal_window_days": 90}, headers=tenant.headers)
    assert response.status_code == 200 and response.json()["renewal_window_days"] == 90
    for bad in (-1, 36501, "30", None, 1.5):
        response = client.patch(f"/v1/certifications/{certification['uuid']}",
                                json={"renewal_window_days": bad}, headers=tenant.headers)
        assert "renewal_window_days" in expect_error(response, 422, "validation_error")


def test_a_new_enrollment_is_not_expired_and_renews_nothing(api):
    first = api.enroll(api.certification(), api.user())
    assert (first["expired"], first["recertifies_enrollment_uuid"]) == (False, None)


def test_a_completion_expires_when_its_time_comes_and_stays_completed(api, client, tenant, clock):
    certification = api.certification(validity_days=10)
    done = complete(api, api.enroll(certification, api.user()))
    assert (done["status"], done["expired"]) == ("completed", False)
    clock.advance(days=9, hours=23)
    assert get(client, tenant, done)["expired"] is False
    clock.advance(hours=2)
    later = get(client, tenant, done)
    assert (later["status"], later["expired"], later["expires_at"]) == (
        "completed", True, done["expires_at"])


def test_a_completion_without_validity_never_expires(api, client, tenant, clock):
    done = complete(api, api.enroll(api.certification(), api.user()))
    clock.advance(days=36500)
    assert get(client, tenant, done)["expired"] is False


@pytest.mark.parametrize("kind", backends())
def test_the_migration_gives_existing_rows_the_defaults(tmp_path, kind):
    """Rows written before 0007: certifications get renewal_window_days 30, enrollments
    no link; a completed one beside a new open one is allowed afterwards."""
    with fresh_database(kind, tmp_path, "expiry") as url:
        script = textwrap.dedent(f"""
            import datetime
            from playhouse.migrations import Runner
            from models.db import init_database
            from models.migrate import MIGRATIONS_DIR
            db = init_database({url!r})
            runner = Runner(db, str(MIGRATIONS_DIR))
            runner.up(target="0006_traffic_controls")
            now = datetime.datetime(2026, 1, 1)
            sql = lambda text, *args: db.execute_sql(text.replace("?", db.param), args)
            sql("INSERT INTO account (uuid, name, created_at) VALUES ('a', 'A', ?)", now)
            sql("INSERT INTO certification (uuid, account_id, name, status, passing_score, "
                "created_at, updated_at) VALUES ('c', 'a', 'C', 'published', 70, ?, ?)", now, now)
            sql('INSERT INTO "user" (uuid, created_at, updated_at, account_id, email, email_key) '
                "VALUES ('u', ?, ?, 'a', 'u@x.example', 'u@x.example')", now, now)
            sql("INSERT INTO enrollment (uuid, account_id, certification_uuid, user_uuid, status, "
                "progress_percentage, enrolled_at, assessment_attempts, version) "
                "VALUES ('e', 'a', 'c', 'u', 'completed', 100, ?, 1, 0)", now)
            runner.up()
            sql("INSERT INTO enrollment (uuid, account_id, certification_uuid, user_uuid, status, "
                "progress_percentage, enrolled_at, assessment_attempts, version, "
                "recertifies_enrollment_uuid) VALUES ('r', 'a', 'c', 'u', 'enrolled', 0, ?, 0, 0, 'e')",
                now)
        """)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=os.getcwd(), timeout=60)
        assert done.returncode == 0, done.stderr
        assert query(url, "SELECT uuid, renewal_window_days FROM certification") == [("c", 30)]
        assert sorted(query(url, "SELECT uuid, recertifies_enrollment_uuid FROM enrollment")) == [
            ("e", None), ("r", "e")]


# --- enrolling again ------------------------------------------------------------------------

def test_a_valid_completion_outside_its_window_is_still_409(api, client, tenant):
    certification, user = api.certification(validity_days=365), api.user()
    done = complete(api, api.enroll(certification, user))
    refused = enroll(client, tenant, certification, user, expect=409)
    assert refused["error"]["code"] == "conflict"
    assert refused["error"]["message"].startswith("User is already enrolled in this certification")
    renewable = datetime.datetime.fromisoformat(done["expires_at"]) - 30 * DAY
    assert f"it can be renewed from {renewable:%Y-%m-%dT%H:%M:%SZ}" in refused["error"]["message"]


def test_inside_the_window_the_holder_enrolls_again_linked_to_the_completion(api, client, tenant,
                                                                            clock):
    certification, user = api.certification(validity_days=365, renewal_window_days=30), api.user()
    done = complete(api, api.enroll(certification, user))
    clock.advance(days=334)
    enroll(client, tenant, certification, user, expect=409)
    clock.advance(days=2)  # 29 days before expiry
    renewal = enroll(client, tenant, certification, user)
    assert (renewal["status"], renewal["recertifies_enrollment_uuid"]) == ("enrolled", done["uuid"])
    assert get(client, tenant, done) == done  # the earlier one stays, unchanged, as history
    enroll(client, tenant, certification, user, expect=409)  # the renewal is open
    finished = complete(api, renewal)
    assert finished["recertifies_enrollment_uuid"] == done["uuid"]
    enroll(client, tenant, certification, user, expect=409)  # the new completion is valid
    listed = client.get(enrollments_path(certification), params={"user_uuid": user["uuid"]},
                        headers=tenant.headers).json()["data"]
    assert [(e["uuid"], e["status"]) for e in listed] == [(done["uuid"], "completed"),
                                                          (finished["uuid"], "completed")]


def test_an_expired_completion_is_renewed_and_a_failed_renewal_can_be_retried(api, client, tenant,
                                                                              clock):
    certification = api.certification(validity_days=30, max_attempts=1)
    user = api.user()
    done = complete(api, api.enroll(certification, user))
    clock.advance(days=400)
    assert get(client, tenant, done)["expired"] is True
    renewal = enroll(client, tenant, certification, user)
    assert renewal["recertifies_enrollment_uuid"] == done["uuid"]
    assert api.attempt(renewal, 0)["enrollment"]["status"] == "failed"
    again = enroll(client, tenant, certification, user)
    assert again["recertifies_enrollment_uuid"] == done["uuid"]


def test_window_zero_renews_only_after_expiry(api, client, tenant, clock):
    certification, user = api.certification(validity_days=10, renewal_window_days=0), api.user()
    done = complete(api, api.enroll(certification, user))
    clock.advance(days=9, hours=23)
    enroll(client, tenant, certification, user, expect=409)
    clock.advance(hours=2)
    assert enroll(client, tenant, certification, user)["recertifies_enrollment_uuid"] == done["uuid"]


def test_a_never_expiring_completion_is_409(api, client, tenant, clock):
    certification, user = api.certification(), api.user()
    complete(api, api.enroll(certification, user))
    clock.advance(days=3650)
    message = enroll(client, tenant, certification, user, expect=409)["error"]["message"]
    assert message == "User is already enrolled in this certification"


def test_a_wider_window_applies_to_earlier_completions(api, client, tenant):
    certification, user = api.certification(validity_days=365), api.user()
    done = complete(api, api.enroll(certification, user))
    enroll(client, tenant, certification, user, expect=409)
    client.patch(f"/v1/certifications/{certification['uuid']}", json={"renewal_window_days": 365},
                 headers=tenant.headers)
    assert enroll(client, tenant, certification, user)["recertifies_enrollment_uuid"] == done["uuid"]


def test_bulk_enrollment_renews_by_the_same_rule(api, client, tenant, clock):
    certification = api.certification(validity_days=100, renewal_window_days=30)
    expiring, valid, fresh = api.user(), api.user(), api.user()
    old = complete(api, api.enroll(certification, expiring))
    clock.advance(days=75)
    complete(api, api.enroll(certification, valid))
    items = bulk(client, tenant, certification, [expiring, valid, fresh, expiring])
    assert [item["status"] for item in items] == [201, 409, 201, 409]
    assert items[0]["enrollment"]["recertifies_enrollment_uuid"] == old["uuid"]
    assert items[2]["enrollment"]["recertifies_enrollment_uuid"] is None
    assert items[1]["error"]["message"].startswith("User is already enrolled in this certification (")
    stored = Enrollment.get_by_id(items[0]["enrollment"]["uuid"])
    assert stored.recertifies_enrollment_uuid == old["uuid"]


def test_deleting_a_renewed_completion_keeps_the_renewal(api, client, tenant, clock):
    certification, user = api.certification(validity_days=1), api.user()
    done = complete(api, api.enroll(certification, user))
    clock.advance(days=2)
    renewal = enroll(client, tenant, certification, user)
    response = client.delete(f"{enrollments_path(certification)}/{done['uuid']}",
                             headers=tenant.headers)
    assert response.status_code == 204
    assert get(client, tenant, renewal)["recertifies_enrollment_uuid"] is None


# --- the filters ----------------------------------------------------------------------------

@pytest.fixture
def history(api, clock):
    """One certification (validity 20 days) at "now": an expired completion, one expiring
    in 10 days, one open and one failed enrollment; the clock is stopped at now."""
    certification = api.certification(validity_days=20, max_attempts=1)
    expired = complete(api, api.enroll(certification, api.user()))
    clock.advance(days=15)
    expiring = complete(api, api.enroll(certification, api.user()))
    clock.advance(days=10)
    open_one = api.enroll(certification, api.user())
    failed = api.attempt(api.enroll(certification, api.user()), 0)["enrollment"]
    now = clock.freeze()
    return certification, now, {"expired": expired, "expiring": expiring, "open": open_one,
                                "failed": failed}


def listed(client, tenant, path, **params) -> list[str]:
    response = client.get(path, params={"per_page": 100, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [e["uuid"] for e in response.json()["data"]]


def exported(client, tenant, path, **params) -> list[dict]:
    response = client.get(path, params={**params, "format": "csv"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


def at(moment: datetime.datetime, offset_hours: int = 0) -> str:
    zone = datetime.timezone(datetime.timedelta(hours=offset_hours))
    return moment.replace(tzinfo=datetime.UTC).astimezone(zone).isoformat()


def test_expiry_filters_on_the_certification_list(client, tenant, history):
    certification, now, e = history
    path = enrollments_path(certification)
    names = {v["uuid"]: k for k, v in e.items()}

    def names_of(**params):
        found = listed(client, tenant, path, **params)
        assert [row["uuid"] for row in exported(client, tenant, path, **params)] == found
        return [names[uuid] for uuid in found]

    assert names_of() == ["expired", "expiring", "open", "failed"]
    assert names_of(expired="true") == ["expired"]
    assert names_of(expired="false") == ["expiring", "open", "failed"]
    assert names_of(expires_before=at(now)) == ["expired"]
    assert names_of(expires_before=at(now + 30 * DAY)) == ["expired", "expiring"]
    assert names_of(expires_after=at(now)) == ["expiring"]
    assert names_of(expires_after=at(now - 30 * DAY)) == ["expired", "expiring"]
    assert names_of(expires_after=at(now), expires_before=at(now + 9 * DAY)) == []
    assert names_of(expires_after=at(now), expires_before=at(now + 11 * DAY)) == ["expiring"]
    assert names_of(expired="false", status="completed") == ["expiring"]


def test_bounds_are_exclusive_and_offsets_count(client, tenant, history):
    certification, _, e = history
    path = enrollments_path(certification)
    expires = datetime.datetime.fromisoformat(e["expiring"]["expires_at"]).replace(tzinfo=None)
    uuid = e["expiring"]["uuid"]
    assert uuid not in listed(client, tenant, path, expires_before=at(expires))
    assert uuid not in listed(client, tenant, path, expires_after=at(expires))
    # The same instants written in other zones: read as 02:00 UTC they would flip.
    assert uuid in listed(client, tenant, path, expires_before=at(expires + DAY / 24, 2))
    assert uuid not in listed(client, tenant, path, expires_before=at(expires - DAY / 24, 2))
    assert uuid in listed(client, tenant, path, expires_after=at(expires - DAY / 24, -5))
    assert uuid not in listed(client, tenant, path, expires_after=at(expires + DAY / 24, -5))


def test_the_csv_expired_column_matches_the_json(client, tenant, history):
    certification, _, e = history
    path = enrollments_path(certification)
    rows = {row["uuid"]: row for row in exported(client, tenant, path)}
    assert {uuid: row["expired"] for uuid, row in rows.items()} == {
        e["expired"]["uuid"]: "true", e["expiring"]["uuid"]: "false",
        e["open"]["uuid"]: "false", e["failed"]["uuid"]: "false"}
    assert {row["recertifies_enrollment_uuid"] for row in rows.values()} == {""}


def test_expiry_filters_on_the_user_list(api, client, tenant, clock):
    user = api.user()
    lapsing, forever, open_cert = (api.certification(validity_days=5), api.certification(),
                                   api.certification(validity_days=5))
    lapsed = complete(api, api.enroll(lapsing, user))
    kept = complete(api, api.enroll(forever, user))
    open_one = api.enroll(open_cert, user)
    clock.advance(days=6)
    path = f"/v1/users/{user['uuid']}/enrollments"
    assert listed(client, tenant, path, expired="true") == [lapsed["uuid"]]
    assert listed(client, tenant, path, expired="false") == [kept["uuid"], open_one["uuid"]]
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert listed(client, tenant, path, expires_before=at(now)) == [lapsed["uuid"]]
    assert listed(client, tenant, path, expires_after=at(now)) == []
    assert [r["uuid"] for r in exported(client, tenant, path, expired="true")] == [lapsed["uuid"]]


@pytest.mark.parametrize(("name", "value"), [
    ("expired", "maybe"), ("expired", "2"),
    ("expires_before", "yesterday"), ("expires_before", "2026-13-01T00:00:00Z"),
    ("expires_before", "2026-11-30T10:00:00"), ("expires_before", "2026-11-30"),
    ("expires_after", "2026-02-30T00:00:00Z"), ("expires_after", "2026-11-30 10:00:00Z"),
])
@pytest.mark.parametrize("owner", ["certification", "user"])
def test_malformed_filters_are_422(api, client, tenant, name, value, owner):
    thing = api.certification() if owner == "certification" else api.user()
    path = (enrollments_path(thing) if owner == "certification"
            else f"/v1/users/{thing['uuid']}/enrollments")
    for fmt in ("json", "csv"):
        response = client.get(path, params={name: value, "format": fmt}, headers=tenant.headers)
        assert name in expect_error(response, 422, "validation_error")


@pytest.mark.parametrize("edge", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"])
def test_times_past_the_ends_of_the_calendar_in_utc_are_accepted(client, tenant, history, edge):
    certification, _, e = history
    found = listed(client, tenant, enrollments_path(certification), expires_before=edge)
    assert found == ([e["expired"]["uuid"], e["expiring"]["uuid"]] if edge.startswith("9") else [])


def test_the_filters_read_an_expires_at_index(history):
    """On SQLite (the backend the plan is checked on) each bounded filter is a range on
    expires_at of an index led by the certification or the user (the planner may pick
    the stats' (certification, status, expires_at) index), not a scan of the owner's rows."""
    from handlers.enrollments import filtered
    if database.obj.__class__.__name__.lower().find("sqlite") < 0:
        pytest.skip("query plans are checked on SQLite")
    certification, now, _ = history
    for owner, index in ((Enrollment.certification == certification["uuid"],
                          r"enrollment_(certification_expires|expiry)"),
                         (Enrollment.user == "u", "enrollment_user_expires")):
        for params in ({"expired": True}, {"expires_before": rfc3339(now)},
                       {"expires_after": rfc3339(now)}):
            sql, args = filtered(owner, **params).select(Enrollment.uuid).sql()
            plan = " ".join(row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql,
                                                                    args).fetchall())
            assert re.search(rf"USING (COVERING )?INDEX {index} \([^)]*expires_at", plan), \
                (params, plan)


# --- stats agree with the filters ------------------------------------------------------------

def test_stats_agree_with_the_filters(api, client, tenant, history, clock):
    certification, now, e = history
    path = enrollments_path(certification)
    stats = client.get(f"/v1/certifications/{certification['uuid']}/stats",
                       headers=tenant.headers).json()

    def total(**params) -> int:
        response = client.get(path, params={"per_page": 1, **params}, headers=tenant.headers)
        return response.json()["pagination"]["total"]

    certified = total(status="completed", expired="false")
    expiring = total(status="completed", expires_after=at(now), expires_before=at(now + 30 * DAY))
    assert (stats["certified_now"], stats["expiring_within_30_days"]) == (certified, expiring) == (1, 1)
    assert total(status="completed", expired="true") == stats["enrollments"]["completed"] - certified
