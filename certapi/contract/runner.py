"""The scenario registry and running.

A scenario is a function of a ``Context``; it passes by returning, fails by raising
``ContractFailure`` (or anything else: a KeyError on a missing field is a failure of the
implementation too) and skips by raising ``Skip``. A failure caused by a route the
implementation does not have is MISSING instead (see ``routes``). What a scenario created
is deleted after it, pass or fail; what cannot be deleted is a leftover of the run, never
the scenario's verdict."""
import importlib
import re
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from certapi.contract.agent import Agent, Leftover, Tracker
from certapi.contract.expect import ContractFailure, Missing, Skip
from certapi.contract.routes import absent

TOPICS = ("seed", "lifecycle", "resources", "errors", "pagination", "auth", "tenancy", "scale",
          "webhooks", "traffic", "recert")
OUTCOMES = ("PASS", "FAIL", "MISSING", "SKIP")
# Why a scenario that needs a key did not run; the CLI option names what to pass.
MISSING = {
    "read": "no read-only key given (--read-key): read-only key checks not run",
    "other": "no second account's key given (--second-account-key): tenant isolation not checked",
    "limited": "no key with a small rate limit given (--limited-key): the 429 not checked",
}


@dataclass(frozen=True)
class Keys:
    write: str
    read: str | None = None
    other: str | None = None  # a write key of a second account
    limited: str | None = None  # a key with a small rate limit (used up by the suite)


@dataclass
class Scenario:
    name: str
    func: Callable
    needs: tuple
    doc: str


@dataclass
class Result:
    name: str
    outcome: str  # one of OUTCOMES
    reason: str
    seconds: float
    requests: list[str] = field(default_factory=list)  # "METHOD path → status", in order
    leftovers: list[Leftover] = field(default_factory=list)

    @property
    def area(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass
class Context:
    """What a scenario works with: ``write`` (and ``read``/``other`` when given) agents."""
    write: Agent
    read: Agent | None
    other: Agent | None
    limited: Agent | None = None


REGISTRY: dict[str, Scenario] = {}


def scenario(name: str, needs: tuple = ()):
    def register(func):
        if name in REGISTRY:
            raise ValueError(f"duplicate scenario {name}")
        REGISTRY[name] = Scenario(name, func, tuple(needs), (func.__doc__ or "").strip())
        return func
    return register


def scenarios() -> list[Scenario]:
    for topic in TOPICS:
        importlib.import_module(f"certapi.contract.{topic}")
    return list(REGISTRY.values())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (ContractFailure, Skip)):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"a response lacks the field {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return f"{_request_of(exc)}: no answer in time ({type(exc).__name__}: {exc})"
    if isinstance(exc, httpx.HTTPError):
        return f"{_request_of(exc)}: {type(exc).__name__}: {exc}"
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"


def _request_of(exc: httpx.HTTPError) -> str:
    try:
        return f"{exc.request.method} {exc.request.url.path}"
    except RuntimeError:  # an error raised before any request was built
        return "request"


def _names_a_request(reason: str) -> bool:
    return re.search(r"\b(GET|POST|PATCH|PUT|DELETE|HEAD|OPTIONS) /", reason) is not None


def run_one(item: Scenario, client: httpx.Client, keys: Keys, prefix: str, run_id: str) -> Result:
    started = time.perf_counter()
    missing = [need for need in item.needs if getattr(keys, need) is None]
    if missing:
        return Result(item.name, "SKIP", MISSING[missing[0]], 0.0)
    tracker = Tracker()
    tag = f"{run_id}-{item.name.replace('.', '-').replace('_', '-')}"

    def agent(key, label):
        return Agent(client, prefix, key, tracker, tag, label) if key else None

    context = Context(agent(keys.write, "w"), agent(keys.read, "r"), agent(keys.other, "o"),
                      agent(keys.limited, "l"))
    outcome, reason = "PASS", ""
    try:
        item.func(context)
    except Skip as exc:
        outcome, reason = "SKIP", _reason(exc)
    except Missing as exc:
        outcome, reason = "MISSING", f"no route {exc}"
    except Exception as exc:  # any error is the implementation failing this scenario
        outcome, reason = "FAIL", _reason(exc)
        route = _absent_route(exc, context.write)
        if route:
            outcome, reason = "MISSING", f"no route {route}"
    made = list(tracker.requests)
    if outcome == "FAIL" and not _names_a_request(reason) and made:
        reason = f"{reason} (last request: {made[-1]})"
    try:
        leftovers = tracker.cleanup()
    except Exception as exc:  # an unreachable server, say: report it, keep the verdict
        leftovers = [Leftover(path, f"not deleted, cleanup stopped: {_reason(exc)}")
                     for _, path, _ in tracker.created]
    return Result(item.name, outcome, reason, time.perf_counter() - started, made, leftovers)


def _absent_route(exc: Exception, api: Agent) -> str | None:
    if not isinstance(exc, ContractFailure) or exc.response is None:
        return None
    try:
        return absent(exc.response, api.prefix, exc.expected, api.get)
    except httpx.HTTPError:
        return None


def run_suite(client: httpx.Client, keys: Keys, prefix: str = "/v1",
              select: Callable[[str], bool] | None = None,
              progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Run every registered scenario (or those ``select`` accepts) in registration order.
    ``prefix`` is the API root's path on the client's base URL (``/v1``, or ``""``)."""
    run_id = uuid.uuid4().hex[:10]
    results = []
    for item in scenarios():
        if select is None or select(item.name):
            result = run_one(item, client, keys, prefix, run_id)
            results.append(result)
            if progress:
                progress(result)
    return results


def exit_code(results: list[Result], strict: bool = False) -> int:
    """1 on any FAIL (and, when ``strict``, on any MISSING), else 0."""
    bad = ("FAIL", "MISSING") if strict else ("FAIL",)
    return 1 if any(r.outcome in bad for r in results) else 0
