"""Simultaneous requests against a real 4-worker server (gunicorn + uvicorn workers) on
SQLite and on PostgreSQL: the database, not luck, keeps the rules."""
import asyncio
import random
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest
from peewee import IntegrityError

from tests.databases import backends, fresh_database, query
from tests.invariants import violations
from tests.live_server import LiveServer, new_account
from tests.load import CONNECTIONS, client, send, storm

WORKERS = 4


@dataclass
class Live:
    server: LiveServer
    database_url: str
    headers: dict

    def post(self, path: str, body: dict) -> dict:
        response = httpx.post(self.server.url + path, json=body, headers=self.headers, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()

    def storm(self, requests: list[tuple]) -> list:
        return storm(self.server.url, self.headers, requests)

    def certification(self, **fields) -> dict:
        return self.post("/v1/certifications", {"name": "Race", "status": "published", **fields})

    def user(self) -> dict:
        return self.post("/v1/users", {"email": f"{uuid.uuid4().hex}@example.com"})

    def enrollment(self, certification: dict) -> dict:
        return self.post(f"/v1/certifications/{certification['uuid']}/enrollments",
                         {"user_uuid": self.user()["uuid"]})


@pytest.fixture(scope="module", params=backends())
def live(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"live-{request.param}")
    with fresh_database(request.param, tmp, "concurrency") as url:
        server = LiveServer(url, tmp / "server.log", workers=WORKERS).start()
        try:
            assert len(server.worker_pids()) == WORKERS
            yield Live(server, url, new_account(url))
            assert violations(url) == {}
            assert_clean_log(server.log())
        finally:
            server.kill()


def assert_clean_log(log: str) -> None:
    for bad in ("database is locked", "Traceback", "unhandled error", " 500 "):
        assert bad not in log, f"server log has {bad!r}:\n{log[-4000:]}"


def statuses(responses) -> Counter:
    for response in responses:
        assert isinstance(response, httpx.Response), f"transport failure: {response!r}"
    return Counter(response.status_code for response in responses)


def enrollment_path(enrollment: dict) -> str:
    return f"/v1/certifications/{enrollment['certification_uuid']}/enrollments/{enrollment['uuid']}"


def test_identical_enrollments_create_exactly_one(live):
    certification = live.certification()
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    # The window between two requests' check and insert is short: several rounds make
    # hitting it likely (without the unique index, PostgreSQL shows duplicates here).
    for _ in range(6):
        user = live.user()
        responses = live.storm([("POST", path, {"user_uuid": user["uuid"]})] * CONNECTIONS)
        assert statuses(responses) == {201: 1, 409: CONNECTIONS - 1}
        assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"conflict"}
        stored = query(live.database_url, "SELECT uuid FROM enrollment "
                       "WHERE certification_uuid = ? AND user_uuid = ?",
                       certification["uuid"], user["uuid"])
        winner = next(r.json() for r in responses if r.status_code == 201)
        assert stored == [(winner["uuid"],)]


def test_racing_renewals_of_one_completion_create_exactly_one(live):
    """A completion inside its renewal window at once (window ≥ validity): every request
    of a round may renew it; exactly one does, linked to it, single and bulk alike."""
    certification = live.certification(validity_days=10, renewal_window_days=10)
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    for bulk in (False, True) * 3:
        done = live.enrollment(certification)
        live.storm([("POST", enrollment_path(done) + "/assessment-attempts", {"score": 100})])
        body = {"user_uuid": done["user_uuid"]}
        request = ("POST", path + "/bulk", {"enrollments": [body]}) if bulk else ("POST", path, body)
        responses = live.storm([request] * CONNECTIONS)
        if bulk:
            assert statuses(responses) == {200: CONNECTIONS}
            items = [r.json()["data"][0] for r in responses]
            assert Counter(item["status"] for item in items) == {201: 1, 409: CONNECTIONS - 1}
            winner = next(item["enrollment"] for item in items if item["status"] == 201)
        else:
            assert statuses(responses) == {201: 1, 409: CONNECTIONS - 1}
            winner = next(r.json() for r in responses if r.status_code == 201)
        assert winner["recertifies_enrollment_uuid"] == done["uuid"]
        stored = query(live.database_url, "SELECT uuid, recertifies_enrollment_uuid FROM enrollment "
                       "WHERE certification_uuid = ? AND user_uuid = ? ORDER BY enrolled_at",
                       certification["uuid"], done["user_uuid"])
        assert stored == [(done["uuid"], None), (winner["uuid"], done["uuid"])]


def test_overlapping_bulk_requests_enroll_each_user_once(live):
    certification = live.certification()
    users = [live.user()["uuid"] for _ in range(40)]
    path = f"/v1/certifications/{certification['uuid']}/enrollments/bulk"
    # Overlapping sets of users in different orders, all sent at once, twice over.
    orders = [users[:30], users[10:][::-1], users[::2] + users[1::2], users[20:] + users[:20]] * 2
    responses = live.storm([("POST", path, {"enrollments": [{"user_uuid": u} for u in order]})
                            for order in orders])
    assert statuses(responses) == {200: len(orders)}
    created = Counter(item["enrollment"]["user_uuid"] for r in responses for item in r.json()["data"]
                      if item["status"] == 201)
    assert created == dict.fromkeys(users, 1)
    refused = {item["status"] for r in responses for item in r.json()["data"] if item["status"] != 201}
    assert refused == {409}
    stored = query(live.database_url, "SELECT user_uuid, COUNT(*) FROM enrollment "
                   "WHERE certification_uuid = ? GROUP BY user_uuid", certification["uuid"])
    assert sorted(stored) == sorted((u, 1) for u in users)


def test_the_database_itself_refuses_a_second_open_enrollment(live):
    """The partial unique index, independent of timing: beside an open enrollment the
    database refuses another open one (two renewals of one completion included) and
    accepts a finished one (history; whether a completion may be renewed is the
    lifecycle's rule)."""
    existing = live.enrollment(live.certification())
    insert = ("INSERT INTO enrollment (uuid, account_id, certification_uuid, user_uuid, status, "
              "progress_percentage, enrolled_at, assessment_attempts, version) "
              "SELECT ?, account_id, certification_uuid, user_uuid, ?, 0, enrolled_at, 0, 0 "
              "FROM enrollment WHERE uuid = ?")
    for status in ("enrolled", "in_progress"):
        with pytest.raises(IntegrityError):
            query(live.database_url, insert, str(uuid.uuid4()), status, existing["uuid"])
    for status in ("failed", "completed"):
        finished = str(uuid.uuid4())
        query(live.database_url, insert, finished, status, existing["uuid"])
        query(live.database_url, "DELETE FROM enrollment WHERE uuid = ?", finished)


def attempt_storm(live, certification, scores):
    enrollment = live.enrollment(certification)
    path = enrollment_path(enrollment) + "/assessment-attempts"
    responses = live.storm([("POST", path, {"score": score}) for score in scores])
    counts = statuses(responses)
    accepted = [r.json() for r in responses if r.status_code == 201]
    stored = query(live.database_url,
                   "SELECT status, assessment_attempts, assessment_best_score, assessment_passed "
                   "FROM enrollment WHERE uuid = ?", enrollment["uuid"])[0]
    rows = query(live.database_url, "SELECT uuid FROM assessment_attempt WHERE enrollment_uuid = ?",
                 enrollment["uuid"])
    assert {a["uuid"] for a in accepted} == {uuid for (uuid,) in rows}
    assert stored[1] == len(rows) == counts[201]
    assert stored[2] == max(a["score"] for a in accepted)
    return counts, accepted, stored


def test_attempts_never_exceed_max_attempts(live):
    certification = live.certification(passing_score=80, max_attempts=3)
    counts, accepted, (status, attempts, best, passed) = attempt_storm(
        live, certification, scores=list(range(CONNECTIONS)))  # every one fails
    assert counts == {201: 3, 409: CONNECTIONS - 3}
    assert (status, attempts, bool(passed)) == ("failed", 3, False)


def test_attempts_stop_at_the_first_pass(live):
    certification = live.certification(passing_score=80, max_attempts=3)
    scores = [40 + (i * 7) % 61 for i in range(CONNECTIONS)]  # 40..100, a third pass
    counts, accepted, (status, attempts, best, passed) = attempt_storm(live, certification, scores)
    assert 1 <= counts[201] <= 3 and counts[201] + counts[409] == CONNECTIONS
    passing = [a for a in accepted if a["passed"]]
    if passing:
        # Nothing is accepted after the pass: it is the last attempt and completes it.
        assert len(passing) == 1 and status == "completed" and bool(passed)
        assert passing[0]["enrollment"]["assessment_attempts"] == attempts
    else:
        assert (status, attempts, bool(passed)) == ("failed", 3, False)


def test_unlimited_attempts_lose_no_update(live):
    """With no limit every attempt is recorded: a lost read-modify-write would show as a
    counter below the number of 201s."""
    certification = live.certification(passing_score=100, max_attempts=None)
    scores = [(i * 37) % 100 for i in range(CONNECTIONS)]
    counts, accepted, (status, attempts, best, _) = attempt_storm(live, certification, scores)
    assert counts == {201: CONNECTIONS}
    assert (status, attempts, best) == ("in_progress", CONNECTIONS, max(scores))


def test_progress_never_goes_down(live):
    enrollment = live.enrollment(live.certification())
    path = enrollment_path(enrollment)
    values = random.Random(4).sample(range(1, 100), CONNECTIONS)

    async def main():
        seen = []
        async with client(live.server.url, live.headers, CONNECTIONS + 1) as http:
            updates = asyncio.gather(*(send(http, "PATCH", path, {"progress_percentage": v})
                                       for v in values))
            while not updates.done():  # one reader, watching the stored value move
                response = await http.get(path)
                seen.append(response.json()["progress_percentage"])
            return await updates, seen

    responses, seen = asyncio.run(main())
    counts = statuses(responses)
    assert set(counts) <= {200, 409} and counts[200] >= 1
    accepted = [v for v, r in zip(values, responses) if r.status_code == 200]
    refused = [r.json()["error"]["message"] for r in responses if r.status_code == 409]
    assert all(m.startswith("Progress cannot go down") for m in refused), refused
    assert max(values) in accepted  # the highest value can never be refused
    assert seen == sorted(seen), seen
    final = query(live.database_url, "SELECT progress_percentage FROM enrollment WHERE uuid = ?",
                  enrollment["uuid"])
    assert final == [(max(values),)]


def test_mixed_write_load_has_no_server_errors(live):
    """64 connections of creates, enrollments, progress and attempts (SQLite: WAL,
    busy_timeout and BEGIN IMMEDIATE keep every writer waiting its turn)."""
    certification = live.certification(passing_score=90, max_attempts=5)
    shared = live.enrollment(certification)

    async def one_learner(http, n):
        codes = []

        async def answer(*request):
            response = await send(http, *request)
            # A transport failure is kept by name, so the assertion below says what it was.
            codes.append(getattr(response, "status_code", type(response).__name__))
            return response

        response = await answer("POST", "/v1/users", {"email": f"load{n}-{uuid.uuid4().hex}@x.io"})
        if codes[-1] != 201:
            return codes
        response = await answer("POST", f"/v1/certifications/{certification['uuid']}/enrollments",
                                {"user_uuid": response.json()["uuid"]})
        if codes[-1] != 201:
            return codes
        mine = enrollment_path(response.json())
        for request in [
            ("PATCH", mine, {"progress_percentage": 50}),
            ("PATCH", enrollment_path(shared), {"progress_percentage": n}),
            ("POST", mine + "/assessment-attempts", {"score": 60 + n % 40}),
            ("POST", enrollment_path(shared) + "/assessment-attempts", {"score": n % 89}),
            ("GET", mine, None),
        ]:
            await answer(*request)
        return codes

    async def main():
        async with client(live.server.url, live.headers) as http:
            return await asyncio.wait_for(
                asyncio.gather(*(one_learner(http, n) for n in range(CONNECTIONS))), 120)

    codes = Counter(code for learner in asyncio.run(main()) for code in learner)
    assert not [code for code in codes if not isinstance(code, int) or code >= 500], \
        (codes, live.server.log()[-3000:])
    # Every learner's own requests succeed; only the shared enrollment may refuse (409).
    assert codes[201] >= 3 * CONNECTIONS and set(codes) <= {200, 201, 409}, codes


def test_concurrent_writes_leave_the_tallies_equal_to_the_rows(live):
    """Enrolls (with and without a partnership), bulk enrolls, progress, attempts and
    deletes of one certification's enrollments all at once: the counts kept beside the
    rows (migration 0009) still equal COUNT(*), here and in the list and stats answers."""
    certification = live.certification(passing_score=50, max_attempts=2)
    partner = live.post("/v1/partners", {"name": "Tally partner"})
    members = [live.post("/v1/users", {"email": f"{uuid.uuid4().hex}@example.com",
                                       "partnership_uuid": partner["uuid"]}) for _ in range(8)]
    plain = [live.user() for _ in range(16)]
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    doomed = [live.enrollment(certification) for _ in range(8)]
    open_ = [live.enrollment(certification) for _ in range(8)]
    requests = [("POST", path, {"user_uuid": m["uuid"], "partnership_uuid": partner["uuid"]})
                for m in members[:4]]
    requests += [("POST", path, {"user_uuid": u["uuid"]}) for u in plain[:8]]
    requests += [("POST", path + "/bulk", {"enrollments": [
        {"user_uuid": m["uuid"], "partnership_uuid": partner["uuid"]} for m in members[4:]]
        + [{"user_uuid": u["uuid"]} for u in plain[8:]]})]
    requests += [("DELETE", enrollment_path(e)) for e in doomed]
    requests += [("PATCH", enrollment_path(e), {"progress_percentage": 40}) for e in open_[:4]]
    requests += [("POST", enrollment_path(e) + "/assessment-attempts", {"score": 30 + 10 * i})
                 for i, e in enumerate(open_[4:])]
    random.shuffle(requests)
    codes = statuses(live.storm(requests))
    assert set(codes) <= {200, 201, 204}, codes
    assert violations(live.database_url) == {}
    (counted,) = query(live.database_url, "SELECT COUNT(*) FROM enrollment "
                       "WHERE certification_uuid = ?", certification["uuid"])[0]
    assert counted == 8 + 4 + 8 + 4 + 8
    listed = httpx.get(live.server.url + path, headers=live.headers, timeout=30).json()
    numbers = httpx.get(live.server.url + f"/v1/certifications/{certification['uuid']}/stats",
                        headers=live.headers, timeout=30).json()
    assert listed["pagination"]["total"] == numbers["enrollments"]["total"] == counted
