"""The scenario registry, running, and reporting (a table and JUnit XML).

A scenario is a function of a ``Context``; it passes by returning, fails by raising
``ContractFailure`` (or anything else: a KeyError on a missing field is a failure of the
implementation too) and skips by raising ``Skip``. What it created is deleted after it,
pass or fail."""
import importlib
import time
import traceback
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable

import httpx

from certapi.contract.agent import Agent, Tracker
from certapi.contract.expect import ContractFailure, Skip

TOPICS = ("seed", "lifecycle", "resources", "errors", "pagination", "auth", "tenancy", "traffic")
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
    outcome: str  # PASS, FAIL or SKIP
    reason: str
    seconds: float


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
    if isinstance(exc, httpx.HTTPError):
        return f"HTTP error: {exc!r}"
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"


def run_one(item: Scenario, client: httpx.Client, keys: Keys, prefix: str, run_id: str) -> Result:
    started = time.perf_counter()
    missing = [need for need in item.needs if getattr(keys, need) is None]
    if missing:
        return Result(item.name, "SKIP", MISSING[missing[0]], 0.0)
    tracker = Tracker()

    def agent(key, label):
        return Agent(client, prefix, key, tracker, run_id, label) if key else None

    context = Context(agent(keys.write, "w"), agent(keys.read, "r"), agent(keys.other, "o"),
                      agent(keys.limited, "l"))
    outcome, reason = "PASS", ""
    try:
        item.func(context)
    except Skip as exc:
        outcome, reason = "SKIP", _reason(exc)
    except Exception as exc:  # any error is the implementation failing this scenario
        outcome, reason = "FAIL", _reason(exc)
    finally:
        try:
            problems = tracker.cleanup()
        except Exception as exc:
            problems = [f"cleanup stopped: {_reason(exc)}"]
    if problems:
        note = "; ".join(problems[:3])
        outcome, reason = "FAIL", f"{reason} [{note}]" if reason else note
    return Result(item.name, outcome, reason, time.perf_counter() - started)


def run_suite(client: httpx.Client, keys: Keys, prefix: str = "/v1",
              select: Callable[[str], bool] | None = None,
              progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Run every registered scenario (or those ``select`` accepts) in registration order."""
    run_id = uuid.uuid4().hex[:10]
    results = []
    for item in scenarios():
        if select is None or select(item.name):
            result = run_one(item, client, keys, prefix, run_id)
            results.append(result)
            if progress:
                progress(result)
    return results


def exit_code(results: list[Result]) -> int:
    return 1 if any(r.outcome == "FAIL" for r in results) else 0


def format_table(results: list[Result]) -> str:
    width = max([len(r.name) for r in results] + [len("scenario")])
    lines = [f"{'scenario':<{width}}  result  reason", f"{'-' * width}  ------  ------"]
    lines += [f"{r.name:<{width}}  {r.outcome:<6}  {r.reason}".rstrip() for r in results]
    counts = {o: sum(r.outcome == o for r in results) for o in ("PASS", "FAIL", "SKIP")}
    total = sum(r.seconds for r in results)
    lines.append(f"\n{counts['PASS']} passed, {counts['FAIL']} failed, "
                 f"{counts['SKIP']} skipped in {total:.1f}s")
    return "\n".join(lines)


def write_junit(results: list[Result], path: str) -> None:
    suite = ET.Element("testsuite", {
        "name": "certapi-contract",
        "tests": str(len(results)),
        "failures": str(sum(r.outcome == "FAIL" for r in results)),
        "errors": "0",
        "skipped": str(sum(r.outcome == "SKIP" for r in results)),
        "time": f"{sum(r.seconds for r in results):.3f}",
    })
    for r in results:
        topic = r.name.split(".", 1)[0]
        case = ET.SubElement(suite, "testcase", {
            "classname": f"contract.{topic}", "name": r.name, "time": f"{r.seconds:.3f}",
        })
        if r.outcome == "FAIL":
            ET.SubElement(case, "failure", {"message": r.reason}).text = r.reason
        elif r.outcome == "SKIP":
            ET.SubElement(case, "skipped", {"message": r.reason})
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
