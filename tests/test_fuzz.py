"""Schemathesis over every operation of openapi.yaml, in process: examples, coverage and
fuzzing with valid and invalid data, then the stateful phase along the spec's links,
with every check. Seeded and bounded; $CERTAPI_FUZZ_EXAMPLES raises the budget.

The world seeded in tests/fuzzing.py gives path parameters real resources to name; the
last test proves they did, by asking every operation for at least one 2xx answer.

The schema is built from openapi.yaml at import, but the app is only born in a session
fixture: Schemathesis gets a stand-in that forwards to it once it exists. Schemathesis
builds some cases while collecting, before any fixture runs, so the key is drawn here at
import and stored for a fresh account by the fixture; an auth provider hands it over,
which Schemathesis counts as real credentials (ignored_auth then probes without them)."""
import secrets

import hypothesis
import pytest
import schemathesis
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.core.failures import FailureGroup

from certapi.app import load_spec
from models import Account, ApiKey
from models.account import KEY_PREFIX, hash_key
from tests.fuzzing import SEED, Steering, load_config, seed_world, without_success

STATEFUL_SUITES = 5  # at most, each ended early only by Hypothesis finding the run inconsistent


class LateApp:
    """An ASGI app that forwards to the real one, set by the ``fuzz_app`` fixture."""

    target = None

    async def __call__(self, scope, receive, send):
        await LateApp.target(scope, receive, send)


SCHEMA = schemathesis.openapi.from_dict(load_spec(), config=load_config())
SCHEMA.app = LateApp()
STEERING = Steering()
STEERING.register(SCHEMA.hook)
FUZZ_KEY = KEY_PREFIX + secrets.token_urlsafe(32)


@SCHEMA.auth(refresh_interval=None, retry_on=[])
class FuzzKey:
    def get(self, case, context):
        return FUZZ_KEY

    def set(self, case, data, context):
        case.headers["Authorization"] = f"Bearer {data}"


@pytest.fixture(scope="module")
def fuzz_app(app):
    """The app, with an account no other test touches, its key and a seeded world."""
    ApiKey.create(account=Account.create(name="Fuzz"), key_hash=hash_key(FUZZ_KEY),
                  hint=FUZZ_KEY[:10], permission="write",
                  rate_limit=0)  # unlimited: thousands of cases must not turn into 429s
    headers = {"Authorization": f"Bearer {FUZZ_KEY}"}
    with app.test_client() as client:
        def post(path, body):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code in (201, 202), response.text
            return response.json()

        STEERING.aim(seed_world(post))
    LateApp.target = app
    return app


@SCHEMA.parametrize()
def test_operation(case, fuzz_app):
    STEERING.unique_idempotency_key(case)
    case.call_and_validate()


def test_stateful(fuzz_app):
    """Scenarios along the links, run the way `schemathesis run` runs them: generation
    only (replaying a scenario against a server whose state moved on proves nothing),
    and a suite that Hypothesis stops as inconsistent (the same choices met different
    responses) is followed by a new one under the next seed until the budget is spent.
    Check failures are kept as they happen, so no replay can lose one."""
    failures, scenarios = [], []

    class Workflow(SCHEMA.as_state_machine()):
        def validate_response(self, response, case, **kwargs):
            try:
                super().validate_response(response, case, **kwargs)
            except FailureGroup as exc:
                failures.append(exc)
                raise

        def before_call(self, case):
            STEERING.unique_idempotency_key(case)
            super().before_call(case)

        def teardown(self):
            scenarios.append(1)
            super().teardown()

    settings = hypothesis.settings(
        SCHEMA.config.get_hypothesis_settings(phase="stateful"),
        phases=[hypothesis.Phase.generate], suppress_health_check=list(hypothesis.HealthCheck),
    )
    for suite in range(STATEFUL_SUITES):
        try:
            hypothesis.seed(SEED + suite)(Workflow).run(settings=settings)
        except FlakyStrategyDefinition:
            if failures or len(scenarios) < settings.max_examples:
                continue
        break
    if failures:
        raise failures[0]
    assert scenarios, "the state machine ran no scenario"


def test_every_operation_answered_2xx(fuzz_app):
    """Runs last: a wrong key or a world that stopped matching would otherwise pass
    quietly, every request answered 401 or 404."""
    labels = [result.ok().label for result in SCHEMA.get_all_operations()]
    print("\nstatus spread per operation:\n" + STEERING.spread())
    missing = without_success(STEERING.statuses, labels)
    assert not missing, "no 2xx for: " + ", ".join(missing) + "\n" + STEERING.spread()
