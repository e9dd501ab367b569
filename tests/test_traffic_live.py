"""Traffic controls on a real 4-worker server (gunicorn + uvicorn workers), on SQLite and
on PostgreSQL: the rate limit is one count across the workers, simultaneous requests with
one Idempotency-Key act once, and after kill -9 a retry with its key acts at most once."""
import asyncio
import time
from collections import Counter

import httpx
import pytest

from tests.databases import backends, fresh_database, query
from tests.invariants import violations
from tests.live_server import LiveServer, new_account
from tests.load import CONNECTIONS, client
from tests.test_concurrency import assert_clean_log

WORKERS = 4
LIMIT = 25


@pytest.fixture(scope="module", params=backends())
def live(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"traffic-{request.param}")
    with fresh_database(request.param, tmp, "traffic") as url:
        server = LiveServer(url, tmp / "server.log", workers=WORKERS).start()
        try:
            assert len(server.worker_pids()) == WORKERS
            yield server, url
            assert violations(url) == {}
            assert_clean_log(server.log())
        finally:
            server.kill()


def fire(base_url: str, requests: list[tuple]) -> list[httpx.Response]:
    """Send every (method, path, body, headers) at once; every one must be answered."""
    async def one(http, method, path, body, headers):
        return await http.request(method, path, json=body, headers=headers)

    async def main():
        async with client(base_url, {}) as http:
            return await asyncio.gather(*(one(http, *r) for r in requests))

    return asyncio.run(main())


def test_the_limit_is_one_count_across_workers(live):
    server, url = live
    key, other = new_account(url, "Limited", rate_limit=LIMIT), new_account(url, "Other", LIMIT)
    responses = fire(server.url, [("GET", "/v1/partners", None, key)] * (2 * LIMIT))
    counts = Counter(r.status_code for r in responses)
    assert counts == {200: LIMIT, 429: LIMIT}, counts
    for response in responses:
        assert response.headers["x-ratelimit-limit"] == str(LIMIT)
        assert response.headers["ratelimit-policy"] == f'"default";q={LIMIT};w=60'
    remaining = sorted(int(r.headers["x-ratelimit-remaining"]) for r in responses
                       if r.status_code == 200)
    assert remaining == list(range(LIMIT))  # every count seen once: no worker counted alone
    refused = [r for r in responses if r.status_code == 429]
    for response in refused:
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        assert response.headers["x-ratelimit-remaining"] == "0"
        assert 1 <= int(response.headers["retry-after"]) <= 60
    assert httpx.get(f"{server.url}/v1/partners", headers=other).status_code == 200
    wait = max(int(r.headers["retry-after"]) for r in refused)
    time.sleep(wait)
    again = httpx.get(f"{server.url}/v1/partners", headers=key)
    assert again.status_code == 200 and again.headers["x-ratelimit-remaining"] == str(LIMIT - 1)


def test_simultaneous_enrolls_with_one_key_make_one_enrollment(live):
    server, url = live
    headers = new_account(url, "Enroll")
    def post(path, body):
        return httpx.post(server.url + path, json=body, headers=headers).json()
    certification = post("/v1/certifications", {"name": "Once", "status": "published"})
    user = post("/v1/users", {"email": "once@example.com"})
    path = f"/v1/certifications/{certification['uuid']}/enrollments"
    keyed = {**headers, "Idempotency-Key": "enroll-once"}
    responses = fire(server.url, [("POST", path, {"user_uuid": user["uuid"]}, keyed)] * CONNECTIONS)
    counts = Counter((r.status_code, r.headers.get("idempotent-replayed")) for r in responses)
    assert counts[(201, None)] == 1, counts
    assert set(counts) <= {(201, None), (201, "true"), (409, None)}, counts
    for busy in (r for r in responses if r.status_code == 409):
        assert busy.headers["retry-after"] == "1" and "Idempotency-Key" in busy.json()["error"]["message"]
    bodies = {r.text for r in responses if r.status_code == 201}
    assert len(bodies) == 1
    stored = query(url, "SELECT uuid FROM enrollment WHERE user_uuid = ?", user["uuid"])
    assert stored == [(responses[[r.status_code for r in responses].index(201)].json()["uuid"],)]
    # After the storm, the key replays for everyone who asks again.
    again = httpx.post(server.url + path, json={"user_uuid": user["uuid"]}, headers=keyed)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"


def test_simultaneous_attempts_with_one_key_record_one_attempt(live):
    server, url = live
    headers = new_account(url, "Attempt")
    def post(path, body):
        return httpx.post(server.url + path, json=body, headers=headers).json()
    certification = post("/v1/certifications", {"name": "Once", "status": "published",
                                               "passing_score": 90})
    user = post("/v1/users", {"email": "attempt@example.com"})
    enrollment = post(f"/v1/certifications/{certification['uuid']}/enrollments",
                      {"user_uuid": user["uuid"]})
    path = (f"/v1/certifications/{certification['uuid']}/enrollments/{enrollment['uuid']}"
            "/assessment-attempts")
    keyed = {**headers, "Idempotency-Key": '"attempt-1"'}
    responses = fire(server.url, [("POST", path, {"score": 40}, keyed)] * 16)
    counts = Counter((r.status_code, r.headers.get("idempotent-replayed")) for r in responses)
    assert counts[(201, None)] == 1 and set(counts) <= {(201, None), (201, "true"), (409, None)}
    rows = query(url, "SELECT uuid FROM assessment_attempt WHERE enrollment_uuid = ?",
                 enrollment["uuid"])
    assert len(rows) == 1
    stored = query(url, "SELECT assessment_attempts FROM enrollment WHERE uuid = ?",
                   enrollment["uuid"])
    assert stored == [(1,)]


# --- kill -9 in a stream of keyed writes ----------------------------------------------

KILL_AFTER = 120
ENROLLMENTS = 8


def keyed_stream(server: LiveServer, headers: dict, enrollments: list[dict]) -> tuple[list, dict]:
    """Keyed writes from many connections until the server is killed under them: every
    request sent (method, path, body, key) and the 201 answers, by key."""
    sent, answered = [], {}
    killed = asyncio.Event()
    counter = iter(range(1_000_000))

    def next_request():
        i = next(counter)
        if i % 2:
            enrollment = enrollments[i % ENROLLMENTS]
            path = (f"/v1/certifications/{enrollment['certification_uuid']}/enrollments/"
                    f"{enrollment['uuid']}/assessment-attempts")
            return ("POST", path, {"score": 10}, f"attempt-{i}")
        return ("POST", "/v1/partners", {"name": f"crash-{i}"}, f"partner-{i}")

    async def writer(http):
        while not killed.is_set():
            method, path, body, key = request = next_request()
            sent.append(request)
            try:
                response = await http.request(method, path, json=body,
                                              headers={"Idempotency-Key": key})
            except httpx.TransportError:
                continue
            assert response.status_code < 500, response.text
            if response.status_code == 201:
                answered[key] = response.json()
                if not killed.is_set() and len(answered) >= KILL_AFTER:
                    server.kill()
                    killed.set()

    async def main():
        async with client(server.url, headers) as http:
            await asyncio.wait_for(asyncio.gather(*(writer(http) for _ in range(CONNECTIONS))), 60)

    asyncio.run(main())
    assert killed.is_set()
    return sent, answered


@pytest.mark.parametrize("kind", backends())
def test_after_kill_9_a_retry_with_its_key_acts_exactly_once(kind, tmp_path):
    with fresh_database(kind, tmp_path, "keyed_crash") as url:
        server = LiveServer(url, tmp_path / "first.log", workers=WORKERS).start()
        try:
            headers = new_account(url)
            base = server.url
            certification = httpx.post(f"{base}/v1/certifications", headers=headers, json={
                "name": "Crash", "status": "published", "passing_score": 100}).json()
            enrollments = []
            for n in range(ENROLLMENTS):
                user = httpx.post(f"{base}/v1/users", headers=headers,
                                  json={"email": f"learner{n}@example.com"}).json()
                enrollments.append(httpx.post(
                    f"{base}/v1/certifications/{certification['uuid']}/enrollments",
                    headers=headers, json={"user_uuid": user["uuid"]}).json())
            sent, answered = keyed_stream(server, headers, enrollments)
        finally:
            server.kill()
        assert violations(url) == {}

        restarted = LiveServer(url, tmp_path / "second.log", workers=2).start()
        try:
            retried = fire(restarted.url, [(m, p, b, {**headers, "Idempotency-Key": k})
                                           for m, p, b, k in sent])
        finally:
            restarted.kill()
        assert {r.status_code for r in retried} == {201}, Counter(r.status_code for r in retried)
        final = {k: r.json() for (_, _, _, k), r in zip(sent, retried)}
        # What was answered before the kill is what the retry replays.
        for key, body in answered.items():
            assert final[key] == body
        rows = query(url, "SELECT name, uuid FROM partner WHERE name LIKE ?", "crash-%")
        names = Counter(name for name, _ in rows)
        assert set(names.values()) == {1}, names.most_common(3)  # each request acted once
        partners = dict(rows)
        partner_keys = [k for _, _, _, k in sent if k.startswith("partner-")]
        assert len(partners) == len(partner_keys)
        for key in partner_keys:
            assert partners[f"crash-{key.split('-')[1]}"] == final[key]["uuid"]
        attempt_keys = [k for _, _, _, k in sent if k.startswith("attempt-")]
        rows = {uuid for (uuid,) in query(url, "SELECT uuid FROM assessment_attempt")}
        assert rows == {final[key]["uuid"] for key in attempt_keys}
        assert len(rows) == len(attempt_keys)
        counted = sum(n for (n,) in query(url, "SELECT assessment_attempts FROM enrollment"))
        assert counted == len(attempt_keys)
        assert violations(url) == {}
