"""What the in-process fuzz tests (tests/test_fuzz.py) and the real-server leg
(.ci/fuzz_server.py) share: the Schemathesis settings, a small seeded data set, the
hook that points generated requests at it, and the record of what came back.

Random UUIDs name nothing, so without help every path parameter is a 404. Before
fuzzing, ``seed_world`` creates one of each resource through the API; then, in three
requests out of four, ``Steering.map_case`` swaps a well-formed path UUID that names
nothing the run has seen for those of an existing resource; in the stateful phase paths
are left to the spec's links, and only body references are repaired. (Schemathesis
applies the hook to the cases it generates; under pytest the schema's examples and the
coverage cases are built while collecting and go as they are.)
DELETEs use up spare resources one after the other, and PATCHes of a certification or
an enrollment get their own, so one operation does not take the target away from others.
"""
import itertools
import os
import re
import tomllib
import zlib
from collections import Counter, defaultdict
from pathlib import Path

from schemathesis.config import SchemathesisConfig

from certapi.idempotency import HEADER as IDEMPOTENCY_HEADER
from certapi.idempotency import WELL_FORMED, normalize

CONFIG_PATH = Path(__file__).with_name("fuzz.toml")
# Budgets: small by default so `make test` stays quick; .ci/run raises them.
EXAMPLES_ENV = "CERTAPI_FUZZ_EXAMPLES"
DEFAULT_EXAMPLES = 8
STATEFUL_SCENARIOS = 5  # stateful scenarios per example of the other phases
SEED = 20261126

# The spec's Uuid pattern, used with fullmatch (a `$` would let "<uuid>\n" through).
_FUZZ_PREFIX = re.compile(r"^(fuzz-\d+-)+")
UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    r"|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff"
)


def max_examples() -> int:
    return int(os.environ.get(EXAMPLES_ENV) or DEFAULT_EXAMPLES)


def load_config() -> SchemathesisConfig:
    """tests/fuzz.toml, seeded and sized by $CERTAPI_FUZZ_EXAMPLES."""
    data = tomllib.loads(CONFIG_PATH.read_text())
    data["seed"] = SEED
    data["generation"]["max-examples"] = max_examples()
    # A scenario is a chain of calls, and one is worth several single requests.
    data["phases"]["stateful"]["generation"] = {"max-examples": STATEFUL_SCENARIOS * max_examples()}
    return SchemathesisConfig.from_dict(data)


# --- the seeded world -------------------------------------------------------------

SPARES = 3  # resources of each kind for DELETEs to use up, one after another


def seed_world(post) -> dict:
    """Create the resources the hooks aim at with ``post(path, body) -> response json``
    (which must insist on a 201) and return their uuids."""
    def partner(name):
        return post("/v1/partners", {"name": name})["uuid"]

    def user(email, **fields):
        return post("/v1/users", {"email": email, **fields})["uuid"]

    def certification(name, **fields):
        return post("/v1/certifications", {"name": name, **fields})["uuid"]

    world = {
        "partner": partner("Fuzz Partner"),
        "spare_partners": [partner(f"Fuzz Spare Partner {n}") for n in range(SPARES)],
        "user": user("fuzz-staff@example.com"),
        "spare_users": [user(f"fuzz-spare{n}@example.com") for n in range(SPARES)],
        "enrollable_users": [user(f"fuzz-new{n}@example.com") for n in range(4)],
        "certification": certification("Fuzz Cert", status="published"),
        # One the pooled users are not enrolled in, for POST .../enrollments.
        "open_certification": certification("Fuzz Open Cert", status="published"),
        # A PATCH could unpublish the seeded one or lower max_attempts under its enrollment.
        "patched_certification": certification("Fuzz Patched Cert"),
        "spare_certifications": [certification(f"Fuzz Spare Cert {n}") for n in range(SPARES)],
    }
    user("fuzz-partner@example.com", partnership_uuid=world["partner"])
    enrollments = f"/v1/certifications/{world['certification']}/enrollments"

    def enroll(email):
        return post(enrollments, {"user_uuid": user(email)})["uuid"]

    world["enrollment"] = post(enrollments, {"user_uuid": world["user"]})["uuid"]
    for pooled in world["enrollable_users"]:  # so no DELETE (a link's, say) takes them away
        post(enrollments, {"user_uuid": pooled})
    # Attempts complete the seeded enrollment and progress stops there (409): PATCHes get this one.
    world["progressing_enrollment"] = enroll("fuzz-learner@example.com")
    world["spare_enrollments"] = [enroll(f"fuzz-leaver{n}@example.com") for n in range(SPARES)]
    world["attempt"] = post(f"{enrollments}/{world['enrollment']}/assessment-attempts", {"score": 10})["uuid"]

    def endpoint():
        return post("/v1/webhook-endpoints", {"url": "https://93.184.215.14/fuzz"})["uuid"]

    # A PATCH may disable an endpoint, and a disabled one answers 409 to test and retry.
    world["webhook_endpoint"] = endpoint()
    world["patched_webhook_endpoint"] = endpoint()
    world["spare_webhook_endpoints"] = [endpoint() for _ in range(SPARES)]
    test = post(f"/v1/webhook-endpoints/{world['webhook_endpoint']}/test", None)  # a 202
    world["webhook_delivery"], world["event"] = test["uuid"], test["event_id"]
    return world


def world_targets(world: dict, path: str, method: str, gone=frozenset()) -> dict:
    """The existing resource each path parameter of ``method path`` should name; a
    DELETE gets the first spare not ``gone`` yet."""
    def spare(kind):
        return next((uuid for uuid in world[kind] if uuid not in gone), world[kind][-1])

    deleting = method == "DELETE"
    if path.startswith("/partners/"):
        return {"uuid": spare("spare_partners") if deleting else world["partner"]}
    if path.startswith("/users/"):
        return {"uuid": spare("spare_users") if deleting else world["user"]}
    if path == "/certifications/{uuid}":
        named = {"PATCH": world["patched_certification"]}.get(method, world["certification"])
        return {"uuid": spare("spare_certifications") if deleting else named}
    if path.startswith("/webhook-endpoints/"):
        named = world["patched_webhook_endpoint"] if method == "PATCH" else world["webhook_endpoint"]
        targets = {"uuid": spare("spare_webhook_endpoints") if deleting else named}
        if "{delivery_uuid}" in path:
            targets["delivery_uuid"] = world["webhook_delivery"]
        return targets
    if path.startswith("/events/"):
        return {"uuid": world["event"]}
    if path == "/certifications/{uuid}/enrollments" and method == "POST":
        return {"uuid": world["open_certification"]}
    targets = {"uuid": world["certification"]}
    if path.endswith("{enrollment_uuid}") and deleting:
        targets["enrollment_uuid"] = spare("spare_enrollments")
    elif path.endswith("{enrollment_uuid}") and method == "PATCH":
        targets["enrollment_uuid"] = world["progressing_enrollment"]
    elif "{enrollment_uuid}" in path:
        targets["enrollment_uuid"] = world["enrollment"]
    if "{attempt_uuid}" in path:
        targets["attempt_uuid"] = world["attempt"]
    return targets


class Steering:
    """The map_case and after_call hooks, and the status spread they observe."""

    def __init__(self, world: dict | None = None):
        self.world: dict = {}
        self.seen: set[str] = set()
        self.gone: set[str] = set()  # deleted with a 2xx
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self._keys = itertools.count()
        if world is not None:
            self.aim(world)

    def aim(self, world: dict) -> None:
        self.world = world
        self.seen |= _uuids(world)

    def _pick(self, case) -> bool:
        """Every case until the operation has answered 2xx once, then three in four,
        chosen from their own content so runs repeat; the rest keep their random uuids
        and test the 404s. (A small budget may hold only two or three valid cases.)"""
        if not any(200 <= status < 300 for status in self.statuses[case.operation.label]):
            return True
        key = repr((case.path_parameters, case.query, case.body)).encode("utf-8", "surrogatepass")
        return zlib.crc32(key) % 4 != 0

    def map_case(self, context, case):
        self.unique_idempotency_key(case)
        if not self.world:
            return case
        # Stateful checks count every value changed after generation as one a link gave,
        # and read a 404 for it as a resource lost. So paths there are left to the links
        # (a seeded resource in a chain would also be fair game for its DELETE), and a
        # body reference to nothing, a 404 as well, is always repaired.
        stateful = case.meta is not None and case.meta.phase.name.value == "stateful"
        picked = self._pick(case)
        params = case.path_parameters or {}
        # The whole set, even values Schemathesis took from earlier responses: a real
        # certification with the seeded enrollment of another is one more 404.
        if picked and not stateful and any(self._unknown(value) for value in params.values()):
            params.update(world_targets(self.world, case.operation.path, case.method.upper(), self.gone))
        body = case.body
        if (picked or stateful) and isinstance(body, dict):
            label = case.operation.label
            if label == "POST /certifications/{uuid}/enrollments":
                if self._unknown(body.get("user_uuid")):
                    pool = self.world["enrollable_users"]
                    body["user_uuid"] = pool[zlib.crc32(str(body).encode("utf-8", "surrogatepass")) % len(pool)]
                if self._unknown(body.get("partnership_uuid")):
                    del body["partnership_uuid"]  # optional; the pool's users are staff
            if label in ("POST /users", "PATCH /users/{uuid}") and self._unknown(body.get("partnership_uuid")):
                body["partnership_uuid"] = self.world["partner"]
        return case

    def unique_idempotency_key(self, case) -> None:
        """Generated requests share the few keys the spec's pattern makes likely (and a
        stateful step may inherit its predecessor's headers), and the same key with
        another request is rightly a 422: a well-formed key is made unique to each call.
        Malformed ones are left as generated, to be refused. Runs from map_case and, as
        Schemathesis skips map_case for some cases, before each call too (tests/test_fuzz.py,
        and the before_call hook of tests/fuzz_hooks.py for the command line)."""
        key = (case.headers or {}).get(IDEMPOTENCY_HEADER)
        if isinstance(key, str) and WELL_FORMED.fullmatch(key):
            base = _FUZZ_PREFIX.sub("", normalize(key)) or "k"
            case.headers[IDEMPOTENCY_HEADER] = f"fuzz-{next(self._keys)}-{base}"[:255]

    def _unknown(self, value) -> bool:
        """A well-formed uuid that names nothing the run has seen."""
        return isinstance(value, str) and bool(UUID.fullmatch(value)) and value.lower() not in self.seen

    def after_call(self, context, case, response):
        self.statuses[case.operation.label][response.status_code] += 1
        if 200 <= response.status_code < 300 and case.method.upper() == "DELETE":
            self.gone.update(str(value).lower() for value in (case.path_parameters or {}).values())
        if 200 <= response.status_code < 300:
            try:
                found = _uuids(response.json())
            except ValueError:
                return
            # An answer may echo a filter it was sent (the stats' partnership_uuid): that
            # names nothing real, and learning it would stop map_case repairing it.
            echoed = {str(value).lower() for value in (case.query or {}).values()}
            self.seen.update(found - echoed)

    def register(self, hook) -> None:
        """Attach both hooks with ``hook``: ``schemathesis.hook`` (every schema of the
        process, for the CLI) or a schema's own ``schema.hook``."""

        def map_case(context, case):
            return self.map_case(context, case)

        def after_call(context, case, response):
            self.after_call(context, case, response)

        hook(map_case)
        hook(after_call)

    def spread(self) -> str:
        lines = []
        for label in sorted(self.statuses):
            counts = ", ".join(f"{s}×{n}" for s, n in sorted(self.statuses[label].items()))
            lines.append(f"  {label}: {counts}")
        return "\n".join(lines)


def _uuids(value) -> set[str]:
    found = set()
    if isinstance(value, dict):
        for item in value.values():
            found |= _uuids(item)
    elif isinstance(value, list):
        for item in value:
            found |= _uuids(item)
    elif isinstance(value, str) and UUID.fullmatch(value):
        found.add(value.lower())
    return found


def without_success(spread: dict[str, Counter], labels) -> list[str]:
    """Operations among ``labels`` that never answered 2xx."""
    return [label for label in labels if not any(200 <= s < 300 for s in spread.get(label, ()))]

