"""Schemathesis hooks for `schemathesis run` against a real server, loaded through
$SCHEMATHESIS_HOOKS by .ci/fuzz_server.py: the same steering as the in-process fuzz,
aimed at the world that script seeded and saved at $CERTAPI_FUZZ_WORLD."""
import json
import os
from pathlib import Path

import schemathesis

from tests.fuzzing import Steering

STEERING = Steering(json.loads(Path(os.environ["CERTAPI_FUZZ_WORLD"]).read_text()))
STEERING.register(schemathesis.hook)


@schemathesis.hook
def before_call(context, case, kwargs):
    # The command line sends cases of the examples and coverage phases without map_case.
    STEERING.unique_idempotency_key(case)
