"""One caller of the API under test: an httpx client, the API root (``/v1``) and one API key.

Agents also build fixtures through the API and note everything they create, so the
runner can delete it afterwards in dependency order, whatever the scenario did."""
import re
import time
from dataclasses import dataclass, field

import httpx

from certapi.contract.expect import check, fail, what
from certapi.contract.routes import absent

# POSTs that create a resource, and the kind of resource they create.
_CREATES = [
    (re.compile(r"^/partners$"), "partner"),
    (re.compile(r"^/users$"), "user"),
    (re.compile(r"^/certifications$"), "certification"),
    (re.compile(r"^/certifications/[^/]+/enrollments$"), "enrollment"),
]
# Deleting in this order never trips a "still in use" 409: enrollments refer to users,
# certifications and partners; users refer to partners. Attempts go with their enrollment.
CLEANUP_ORDER = ("enrollment", "user", "certification", "partner")
_RATE_LIMIT_RETRIES = 5
_NOTHING = object()


@dataclass
class Leftover:
    """Something a scenario created and cleanup could not delete."""
    path: str
    reason: str


@dataclass
class Tracker:
    """One scenario's record: the resources it created as (kind, path, agent), in creation
    order, and every request it made (``METHOD path → status``)."""
    created: list = field(default_factory=list)
    requests: list = field(default_factory=list)

    def note(self, kind: str, path: str, agent: "Agent") -> None:
        self.created.append((kind, path, agent))

    def cleanup(self) -> list[Leftover]:
        """Delete everything noted; returns what stays behind (empty when all went)."""
        left = []
        for kind in CLEANUP_ORDER:
            for noted, path, agent in reversed(self.created):
                if noted == kind:
                    try:
                        reason = agent.remove(kind, path)
                    except httpx.HTTPError as exc:  # a timeout, say: this one stays
                        reason = f"DELETE: {type(exc).__name__}: {exc}"
                    if reason:
                        left.append(Leftover(agent.prefix + path, reason))
        self.created.clear()
        return left


class Agent:
    def __init__(self, client: httpx.Client, prefix: str, key: str, tracker: Tracker,
                 tag: str, label: str):
        """``tag`` is unique to one scenario in one run: every email and name it makes
        carries it, so leftovers of any other scenario or run can never collide with it."""
        self.client, self.prefix, self.key = client, prefix, key
        self.tracker, self.tag, self.label = tracker, tag, label
        self._count = 0

    # -- raw HTTP ------------------------------------------------------------------
    def request(self, method: str, path: str, *, json=_NOTHING, scheme: str | None = "Bearer",
                headers: dict | None = None, **kwargs) -> httpx.Response:
        """``path`` is relative to the API root (``/partners``). ``scheme=None`` sends no
        Authorization header; ``headers`` may override it."""
        sent = {}
        if scheme is not None:
            sent["Authorization"] = f"{scheme} {self.key}"
        sent.update(headers or {})
        if json is not _NOTHING:
            kwargs["json"] = json
        for _ in range(_RATE_LIMIT_RETRIES):
            try:
                response = self.client.request(method, self.prefix + path, headers=sent,
                                               **kwargs)
            except httpx.HTTPError as exc:
                failed = type(exc).__name__
                self.tracker.requests.append(f"{method} {self.prefix}{path} → {failed}")
                raise
            if response.status_code != 429:
                break
            # Rate limiting is part of the contract, not a failure of these scenarios.
            time.sleep(min(float(response.headers.get("retry-after") or 1), 30))
        made = f"{method} {response.request.url.path} → {response.status_code}"
        self.tracker.requests.append(made)
        self._note_created(method, path, response)
        return response

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=_NOTHING, **kw):
        return self.request("POST", path, json=json, **kw)

    def patch(self, path, json=_NOTHING, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def _note_created(self, method: str, path: str, response: httpx.Response) -> None:
        # Any 2xx counts: an implementation answering 200 instead of 201 still created it.
        if method != "POST" or not response.is_success:
            return
        if response.headers.get("idempotent-replayed") == "true":  # the first answer's, made nothing
            return
        for pattern, kind in _CREATES:
            if pattern.match(path.split("?")[0]):
                try:
                    uuid = response.json().get("uuid")
                except (ValueError, AttributeError):
                    return
                if isinstance(uuid, str) and "/" not in uuid:
                    self.tracker.note(kind, f"{path}/{uuid}", self)
                return

    # -- fixtures --------------------------------------------------------------------
    def email(self) -> str:
        """An address unique to this scenario and run: no leftover can collide with it."""
        self._count += 1
        return f"contract-{self.tag}-{self.label}-{self._count}@example.com"

    def create(self, path: str, payload: dict) -> dict:
        """POST and insist on success. The exact status (201) and Location are checked by
        the scenarios about them, so one wrong status is reported once, where it belongs."""
        response = self.post(path, payload)
        check(response.is_success, f"setup failed: {what(response)}", response, (200, 201))
        try:
            created = response.json()
        except ValueError:
            fail(f"setup failed, body is not JSON: {what(response)}")
        check(isinstance(created, dict) and isinstance(created.get("uuid"), str),
              f"setup failed, no uuid in the body: {what(response)}")
        return created

    def partner(self, **fields) -> dict:
        return self.create("/partners", {"name": f"Contract partner {self.tag}", **fields})

    def user(self, partner: dict | None = None, **fields) -> dict:
        if partner is not None:
            fields["partnership_uuid"] = partner["uuid"]
        return self.create("/users", {"email": self.email(), **fields})

    def certification(self, **fields) -> dict:
        payload = {"name": f"Contract certification {self.tag}", "status": "published", **fields}
        return self.create("/certifications", payload)

    def enroll(self, certification: dict, user: dict, **fields) -> dict:
        if user.get("partnership_uuid") and "partnership_uuid" not in fields:
            fields["partnership_uuid"] = user["partnership_uuid"]
        return self.create(f"/certifications/{certification['uuid']}/enrollments",
                           {"user_uuid": user["uuid"], **fields})

    def attempt(self, enrollment: dict, score: float) -> httpx.Response:
        return self.post(attempts_path(enrollment), {"score": score})

    def progress(self, enrollment: dict, value: float) -> httpx.Response:
        return self.patch(enrollment_path(enrollment), {"progress_percentage": value})

    # -- cleanup ---------------------------------------------------------------------
    def remove(self, kind: str, path: str) -> str | None:
        """Delete one created resource; returns why it stays behind, or None when gone."""
        response = self.delete(path)
        if response.status_code == 409 and kind in ("user", "certification"):
            # Something this run did not note (or a broken implementation) still refers
            # to it: remove the enrollments it lists, then try once more.
            self._remove_enrollments(f"{path}/enrollments")
            response = self.delete(path)
        if response.status_code == 204:
            return None
        if response.status_code == 404:
            # Gone already (the scenario deleted it), unless DELETE itself has no route.
            gone = absent(response, self.prefix, (204,), self.get) is None
            return None if gone else "DELETE → 404, no such route"
        return f"DELETE → {response.status_code} {_gist(response)}".rstrip()

    def _remove_enrollments(self, list_path: str) -> None:
        response = self.get(list_path, params={"per_page": 100})
        if response.status_code == 200:
            for item in response.json().get("data", []):
                self.delete(enrollment_path(item))


def _gist(response: httpx.Response) -> str:
    """The error code and message of an envelope, else the start of the body."""
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message'][:80]}"
    except (ValueError, KeyError, TypeError):
        return response.text[:80]


def enrollment_path(enrollment: dict) -> str:
    return f"/certifications/{enrollment['certification_uuid']}/enrollments/{enrollment['uuid']}"


def attempts_path(enrollment: dict) -> str:
    return enrollment_path(enrollment) + "/assessment-attempts"
