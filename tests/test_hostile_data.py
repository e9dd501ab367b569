"""Hostile-review findings about stored data: emails that pose as one another, database
files others can read, an enrollment left with no way forward, a user moving partner
while enrolled."""
import os
import stat
import subprocess
import sys
import textwrap
import unicodedata

import pytest

from certapi.lifecycle import TransitionRefused, check_attempt_limit, check_partner_change
from models import User
from models.db import SerialWritesSqliteDatabase
from tests.conftest import expect_error
from tests.databases import backends, fresh_database, query

# --- Emails: one address, however it is written ---------------------------------------

@pytest.mark.parametrize("first, second", [
    ("zw@x.example", "ZW@x.example"),
    ("café@x.example", "cafe\u0301@x.example"),          # composed vs decomposed
    ("ada@x.example", "\uff41da@x.example"),             # fullwidth a
    ("ada@x.example", "ada@\uff58.example"),             # fullwidth x in the domain
    ("stra\u00dfe@x.example", "STRASSE@x.example"),      # ß folds to ss
])
def test_emails_that_read_the_same_are_one_user(api, client, tenant, first, second):
    api.user(email=first)
    response = client.post("/v1/users", json={"email": second}, headers=tenant.headers)
    expect_error(response, 409, "conflict")
    listed = client.get("/v1/users", params={"email": second}, headers=tenant.headers).json()
    assert [user["email"] for user in listed["data"]] == [unicodedata.normalize("NFC", first)]


def test_a_user_cannot_take_another_users_email_in_another_form(api, client, tenant):
    api.user(email="ada@x.example")
    other = api.user(email="bob@x.example")
    response = client.patch(f"/v1/users/{other['uuid']}", json={"email": "\uff21DA@x.example"},
                            headers=tenant.headers)
    expect_error(response, 409, "conflict")


def test_emails_are_stored_in_nfc_and_compared_folded(api, client, tenant):
    body = api.user(email="\uff41da.cafe\u0301@x.example")
    assert body["email"] == "\uff41da.caf\u00e9@x.example"
    listed = client.get("/v1/users", params={"email": "ADA.CAFÉ@X.EXAMPLE"},
                        headers=tenant.headers).json()
    assert [user["uuid"] for user in listed["data"]] == [body["uuid"]]


def test_a_key_that_folding_lengthens_stays_within_the_column(api, client, tenant):
    email = "\u00df" * 240 + "@x.example"  # 250 characters; folded, ß becomes ss
    api.user(email=email)
    same = "SS" * 60 + "\u00df" * 120 + "@x.example"  # the same key within 254 characters
    response = client.post("/v1/users", json={"email": same},
                           headers=tenant.headers)
    expect_error(response, 409, "conflict")


@pytest.mark.parametrize("email", [
    "\u200bzw@x.example",      # zero-width space
    "zw\u00ad@x.example",      # soft hyphen
    "zw\u200d@x.example",      # zero-width joiner
    "zw@x\u202e.example",      # right-to-left override
    "zw\ufeff@x.example",      # byte order mark
    "zw\x01@x.example",        # control character
    "zw\x1b[31m@x.example",    # terminal escape
    "zw\x7f@x.example",        # DEL
    "zw\u3164@x.example",      # Hangul filler (a letter that shows nothing)
    "zw\ufe0f@x.example",      # variation selector
    "zw\u2066@x.example",      # bidi isolate
])
def test_invisible_and_control_characters_are_refused(client, tenant, email):
    response = client.post("/v1/users", json={"email": email}, headers=tenant.headers)
    message = expect_error(response, 422, "validation_error")
    assert message.startswith("body/email: ")
    assert client.get("/v1/users", headers=tenant.headers).json()["pagination"]["total"] == 0


def test_an_address_that_normalises_into_two_ats_is_refused(client, tenant):
    response = client.post("/v1/users", json={"email": "a\uff20b@x.example"},
                           headers=tenant.headers)
    expect_error(response, 422, "validation_error")


def test_the_email_filter_refuses_what_an_email_may_not_hold(client, tenant):
    response = client.get("/v1/users", params={"email": "a\u200b@x.example"},
                          headers=tenant.headers)
    assert expect_error(response, 422, "validation_error").startswith("query/email: ")


def test_partner_emails_follow_the_same_rule(api, client, tenant):
    response = client.post("/v1/partners", json={"name": "Acme", "email": "p\u200b@x.example"},
                           headers=tenant.headers)
    expect_error(response, 422, "validation_error")


@pytest.mark.parametrize("kind", backends())
def test_the_migration_refolds_existing_keys_and_keeps_colliding_users(tmp_path, kind):
    """Rows written under 0002 (keys only case-folded) are re-keyed by 0003; of two that
    now collide, the older keeps the key and the newer one is kept under a marked key."""
    with fresh_database(kind, tmp_path, "refold") as url:
        _refold(url)


def _refold(url: str) -> None:
    script = textwrap.dedent(f"""
        import datetime
        from playhouse.migrations import Runner
        from models.db import init_database
        from models.migrate import MIGRATIONS_DIR
        db = init_database({url!r})
        runner = Runner(db, str(MIGRATIONS_DIR))
        runner.up(target="0002_double_precision_scores")
        now = datetime.datetime(2026, 1, 1)
        sql = lambda text, *args: db.execute_sql(text.replace("?", db.param), args)
        sql("INSERT INTO account (uuid, name, created_at) VALUES ('a', 'A', ?)", now)
        rows = [("u1", "\\uff41da@x.example", now), ("u2", "ADA@x.example", now + datetime.timedelta(1)),
                ("u3", "cafe\\u0301@x.example", now)]
        for uuid, email, at in rows:
            sql('INSERT INTO "user" (uuid, created_at, updated_at, account_id, email, email_key) '
                "VALUES (?, ?, ?, 'a', ?, ?)", uuid, at, at, email, email.casefold())
        runner.up()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=os.getcwd(), timeout=60)
    assert done.returncode == 0, done.stderr
    keys = dict(query(url, 'SELECT uuid, email_key FROM "user"'))
    assert keys == {"u1": "ada@x.example", "u2": "ada@x.example#dup-u2",
                    "u3": User.fold_email("caf\u00e9@x.example")}
    assert "u2" in done.stderr


# --- Database files: owner only ----------------------------------------------------------

def test_database_files_are_created_readable_by_the_owner_only(tmp_path):
    path = tmp_path / "private.db"
    script = textwrap.dedent(f"""
        import os, stat
        os.umask(0o022)
        from models import Account, database
        from models.db import init_database
        from models.migrate import migrate
        init_database("sqlite:///{path}")
        migrate()
        with database.connection_context():
            Account.create(name="A")
            for suffix in ("", "-wal", "-shm", ".lock"):
                mode = stat.S_IMODE(os.stat("{path}" + suffix).st_mode)
                print(suffix or "db", oct(mode))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=os.getcwd(), timeout=60)
    assert done.returncode == 0, done.stderr
    modes = dict(line.split() for line in done.stdout.splitlines())
    assert modes == {"db": "0o600", "-wal": "0o600", "-shm": "0o600", ".lock": "0o600"}


def test_an_existing_database_file_keeps_its_mode(tmp_path):
    path = tmp_path / "shared.db"
    path.touch()
    path.chmod(0o640)
    SerialWritesSqliteDatabase(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


# --- Attempt limits: never lowered onto an open enrollment's used attempts ---------------

def _fail_attempts(api, enrollment, count):
    for _ in range(count):
        api.attempt(enrollment, 0)


def test_max_attempts_cannot_drop_to_the_attempts_an_open_enrollment_used(api, client, tenant):
    cert = api.certification(passing_score=90, max_attempts=5)
    enrollment = api.enroll(cert, api.user())
    _fail_attempts(api, enrollment, 3)
    for lower in (2, 3):
        response = client.patch(f"/v1/certifications/{cert['uuid']}",
                                json={"max_attempts": lower}, headers=tenant.headers)
        assert "already used 3 attempts" in expect_error(response, 409, "conflict")
    assert client.get(f"/v1/certifications/{cert['uuid']}",
                      headers=tenant.headers).json()["max_attempts"] == 5
    # Above the attempts used is fine, and the enrollment still has a way forward.
    response = client.patch(f"/v1/certifications/{cert['uuid']}", json={"max_attempts": 4},
                            headers=tenant.headers)
    assert response.status_code == 200
    assert api.attempt(enrollment, 0)["enrollment"]["status"] == "failed"


def test_max_attempts_may_drop_below_attempts_of_finished_enrollments(api, client, tenant):
    cert = api.certification(passing_score=90, max_attempts=5)
    done = api.enroll(cert, api.user())
    _fail_attempts(api, done, 3)
    api.attempt(done, 95)  # completed after 4 attempts
    fresh = api.enroll(cert, api.user())
    response = client.patch(f"/v1/certifications/{cert['uuid']}", json={"max_attempts": 1},
                            headers=tenant.headers)
    assert response.status_code == 200
    assert api.attempt(fresh, 0)["enrollment"]["status"] == "failed"


def test_unlimited_attempts_can_always_be_set(api, client, tenant):
    cert = api.certification(passing_score=90, max_attempts=3)
    _fail_attempts(api, api.enroll(cert, api.user()), 2)
    response = client.patch(f"/v1/certifications/{cert['uuid']}", json={"max_attempts": None},
                            headers=tenant.headers)
    assert response.status_code == 200


# --- Partner users: no change of partner while enrolled ---------------------------------

def test_a_user_with_an_open_enrollment_cannot_change_partner(api, client, tenant):
    old, new = api.partner(name="Old"), api.partner(name="New")
    user = api.user(partnership_uuid=old["uuid"])
    cert = api.certification()
    api.enroll(cert, user, partnership_uuid=old["uuid"])
    for target in (new["uuid"], None):
        response = client.patch(f"/v1/users/{user['uuid']}", json={"partnership_uuid": target},
                                headers=tenant.headers)
        assert "open enrollments" in expect_error(response, 409, "conflict")
    assert client.get(f"/v1/users/{user['uuid']}",
                      headers=tenant.headers).json()["partnership_uuid"] == old["uuid"]
    # Other fields, and the same partner again, are still fine.
    response = client.patch(f"/v1/users/{user['uuid']}",
                            json={"first_name": "Ada", "partnership_uuid": old["uuid"]},
                            headers=tenant.headers)
    assert response.status_code == 200


def test_a_staff_user_with_an_open_enrollment_cannot_become_a_partner_user(api, client, tenant):
    partner = api.partner()
    user = api.user()
    api.enroll(api.certification(), user)
    response = client.patch(f"/v1/users/{user['uuid']}",
                            json={"partnership_uuid": partner["uuid"]}, headers=tenant.headers)
    expect_error(response, 409, "conflict")


def test_once_enrollments_are_finished_the_user_may_change_partner(api, client, tenant):
    old, new = api.partner(name="Old"), api.partner(name="New")
    user = api.user(partnership_uuid=old["uuid"])
    enrollment = api.enroll(api.certification(passing_score=50), user,
                            partnership_uuid=old["uuid"])
    api.attempt(enrollment, 90)  # completed: it stays with the old partner
    response = client.patch(f"/v1/users/{user['uuid']}", json={"partnership_uuid": new["uuid"]},
                            headers=tenant.headers)
    assert response.status_code == 200 and response.json()["partnership_uuid"] == new["uuid"]


# --- The rules themselves (certapi.lifecycle) -------------------------------------------

@pytest.mark.parametrize("new_limit, most_used, allowed", [
    (3, 2, True), (3, 3, False), (2, 3, False), (None, 7, True), (1, None, True),
])
def test_attempt_limit_rule(new_limit, most_used, allowed):
    if allowed:
        check_attempt_limit(new_limit, most_used)
    else:
        with pytest.raises(TransitionRefused, match=f"already used {most_used} attempts"):
            check_attempt_limit(new_limit, most_used)


@pytest.mark.parametrize("old, new, open_enrollments, allowed", [
    ("p1", "p2", True, False), ("p1", None, True, False), (None, "p1", True, False),
    ("p1", "p1", True, True), ("p1", "p2", False, True),
])
def test_partner_change_rule(old, new, open_enrollments, allowed):
    if allowed:
        check_partner_change(old, new, open_enrollments)
    else:
        with pytest.raises(TransitionRefused, match="open enrollments"):
            check_partner_change(old, new, open_enrollments)
