"""kill -9 of the master and every worker in the middle of a write load, then a restart:
everything answered 201 is stored, nothing half-written is, and SQLite's file is sound."""
import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from tests.databases import backends, fresh_database, query
from tests.invariants import violations
from tests.live_server import LiveServer, new_account
from tests.load import CONNECTIONS, client, send, storm

# Kill once this many writes were acknowledged: enough that the load is in full flow.
KILL_AFTER = 150
LOAD_SECONDS = 60


def write_until_killed(server: LiveServer, headers: dict, certification: dict) -> dict:
    """Learners enroll and submit attempts until the server dies under them; returns the
    uuids of what was answered 201."""
    answered = {"enrollments": set(), "attempts": set()}
    killed = asyncio.Event()

    def acknowledged(kind: str, response) -> dict | None:
        if isinstance(response, httpx.Response) and response.status_code == 201:
            body = response.json()
            answered[kind].add(body["uuid"])
            if not killed.is_set() and sum(map(len, answered.values())) >= KILL_AFTER:
                server.kill()
                killed.set()
            return body
        assert not isinstance(response, httpx.Response) or response.status_code < 500, \
            response.text
        return None

    async def learner(http):
        while not killed.is_set():
            user = await send(http, "POST", "/v1/users", {"email": f"{uuid.uuid4().hex}@x.io"})
            if not isinstance(user, httpx.Response) or user.status_code != 201:
                continue
            enrollment = acknowledged("enrollments", await send(
                http, "POST", f"/v1/certifications/{certification['uuid']}/enrollments",
                {"user_uuid": user.json()["uuid"]}))
            if enrollment is None:
                continue
            path = (f"/v1/certifications/{certification['uuid']}/enrollments/"
                    f"{enrollment['uuid']}/assessment-attempts")
            for score in (10, 20):
                acknowledged("attempts", await send(http, "POST", path, {"score": score}))

    async def main():
        async with client(server.url, headers) as http:
            await asyncio.wait_for(asyncio.gather(*(learner(http) for _ in range(CONNECTIONS))),
                                   LOAD_SECONDS)

    asyncio.run(main())
    assert killed.is_set()
    return answered


def running(pid: int) -> bool:
    """Alive and not a zombie (orphaned workers wait for an init that may not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("kind", backends())
def test_kill_9_loses_nothing_answered_and_leaves_nothing_half_written(kind, tmp_path):
    with fresh_database(kind, tmp_path, "crash") as url:
        server = LiveServer(url, tmp_path / "first.log", workers=4).start()
        try:
            pids = [server.process.pid, *server.worker_pids()]
            assert len(pids) == 5
            headers = new_account(url)
            certification = httpx.post(
                f"{server.url}/v1/certifications", headers=headers,
                json={"name": "Crash", "status": "published", "passing_score": 90,
                      "max_attempts": 3}).json()
            answered = write_until_killed(server, headers, certification)
        finally:
            server.kill()
        assert not [pid for pid in pids if running(pid)]  # the master and every worker

        # Before anything else opens it: the stored data is whole.
        assert violations(url) == {}
        stored = {uuid for (uuid,) in query(url, "SELECT uuid FROM enrollment")}
        assert answered["enrollments"] <= stored
        stored_attempts = {uuid for (uuid,) in query(url, "SELECT uuid FROM assessment_attempt")}
        assert answered["attempts"] <= stored_attempts

        restarted = LiveServer(url, tmp_path / "second.log", workers=2).start()
        try:
            base = f"/v1/certifications/{certification['uuid']}/enrollments/"
            responses = storm(restarted.url, headers,
                              [("GET", base + uuid) for uuid in sorted(answered["enrollments"])])
            assert {r.status_code for r in responses} == {200}
            user = httpx.post(f"{restarted.url}/v1/users", headers=headers,
                              json={"email": "after-crash@x.io"}).json()
            again = httpx.post(f"{restarted.url}{base[:-1]}", headers=headers,
                               json={"user_uuid": user["uuid"]})
            assert again.status_code == 201, again.text
        finally:
            restarted.kill()
        assert violations(url) == {}
