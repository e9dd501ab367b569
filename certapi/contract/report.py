"""The reports of a contract run: the table (with a per-area summary and the leftovers,
listed once), JUnit XML and JSON."""
import json
import xml.etree.ElementTree as ET

from certapi.contract.agent import Leftover
from certapi.contract.runner import OUTCOMES, Result


def counts(results: list[Result]) -> dict[str, int]:
    return {outcome: sum(r.outcome == outcome for r in results) for outcome in OUTCOMES}


def areas(results: list[Result]) -> dict[str, str]:
    """Area → ``passed/run`` (skipped scenarios did not run, so they are not counted)."""
    found: dict[str, list[int]] = {}
    for r in results:
        tally = found.setdefault(r.area, [0, 0])
        tally[0] += r.outcome == "PASS"
        tally[1] += r.outcome != "SKIP"
    return {area: f"{passed}/{ran}" for area, (passed, ran) in found.items()}


def summary(results: list[Result]) -> str:
    c = counts(results)
    total = sum(r.seconds for r in results)
    line = (f"{c['PASS']} passed, {c['FAIL']} failed, {c['MISSING']} missing, "
            f"{c['SKIP']} skipped in {total:.1f}s")
    by_area = ", ".join(f"{area} {tally}" for area, tally in areas(results).items())
    return f"{line}\n{by_area}"


def leftovers(results: list[Result]) -> list[tuple[str, Leftover]]:
    """(scenario, leftover) for each path left behind, once (by the first scenario)."""
    seen, found = set(), []
    for r in results:
        for item in r.leftovers:
            if item.path not in seen:
                seen.add(item.path)
                found.append((r.name, item))
    return found


def format_table(results: list[Result]) -> str:
    width = max([len(r.name) for r in results] + [len("scenario")])
    lines = [f"{'scenario':<{width}}  {'result':<7}  reason", f"{'-' * width}  -------  ------"]
    lines += [f"{r.name:<{width}}  {r.outcome:<7}  {r.reason}".rstrip() for r in results]
    lines.append("\n" + summary(results))
    left = leftovers(results)
    if left:
        kinds: dict[str, int] = {}
        for _, item in left:
            kind = item.path.rstrip("/").split("/")[-2]
            kinds[kind] = kinds.get(kind, 0) + 1
        tally = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
        lines.append(f"\nLeft behind: {len(left)} resources ({tally}). Cleanup could not "
                     "delete them; they change no result above:")
        lines += [f"  {item.path}  {item.reason}  (made by {name})" for name, item in left]
    return "\n".join(lines)


def write_junit(results: list[Result], path: str) -> None:
    """MISSING and SKIP are both ``skipped`` in JUnit, with the reason as its message."""
    c = counts(results)
    suite = ET.Element("testsuite", {
        "name": "certapi-contract",
        "tests": str(len(results)),
        "failures": str(c["FAIL"]),
        "errors": "0",
        "skipped": str(c["SKIP"] + c["MISSING"]),
        "time": f"{sum(r.seconds for r in results):.3f}",
    })
    for r in results:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"contract.{r.area}", "name": r.name, "time": f"{r.seconds:.3f}",
        })
        if r.outcome == "FAIL":
            ET.SubElement(case, "failure", {"message": r.reason}).text = r.reason
        elif r.outcome in ("SKIP", "MISSING"):
            message = f"MISSING: {r.reason}" if r.outcome == "MISSING" else r.reason
            ET.SubElement(case, "skipped", {"message": message})
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def as_json(results: list[Result]) -> dict:
    return {
        "summary": {**{k.lower(): v for k, v in counts(results).items()}, "areas": areas(results)},
        "scenarios": [{
            "name": r.name, "area": r.area, "outcome": r.outcome, "reason": r.reason,
            "seconds": round(r.seconds, 3), "requests": r.requests,
        } for r in results],
        "leftovers": [{"path": item.path, "reason": item.reason, "scenario": name}
                      for name, item in leftovers(results)],
    }


def write_json(results: list[Result], path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(as_json(results), fh, indent=2, ensure_ascii=False)
        fh.write("\n")
