"""Errors are always the envelope, with the contract's status and code: 401, 404, 405
with a full Allow, 413, 415 and 422 naming the place."""
import re
import uuid as uuidlib

from certapi.contract import expect, schemas
from certapi.contract.runner import scenario

PROBE_ORDER = ("PUT", "PATCH", "DELETE", "POST", "GET")


@scenario("errors.unauthorized")
def unauthorized(ctx):
    """401 unauthorized for a missing, malformed or unknown key, on reads and writes."""
    api = ctx.write
    unknown = "ck_" + uuidlib.uuid4().hex
    for method, path in (("GET", "/partners"), ("POST", "/partners")):
        payload = {"json": {"name": "Never created"}} if method == "POST" else {}
        cases = {
            "no Authorization header": None,
            "a bare key": api.key,
            "Basic scheme": "Basic dXNlcjpwYXNz",
            "Bearer without a key": "Bearer",
            "unknown key": f"Bearer {unknown}",
            "unknown key, Api-Key form": f"Api-Key {unknown}",
        }
        for label, header in cases.items():
            headers = {"Authorization": header} if header is not None else {}
            response = api.request(method, path, scheme=None, headers=headers, **payload)
            try:
                expect.error(response, 401, "unauthorized")
            except expect.ContractFailure as exc:
                expect.fail(f"{label}: {exc}", exc.response, exc.expected)
    # Without a key nothing else is looked at: not the path, the body or the resource.
    for method, path, payload in (("GET", "/partners/not-a-uuid", None),
                                  ("GET", f"/partners/{uuidlib.uuid4()}", None),
                                  ("POST", "/partners", {"colour": "red"})):
        response = api.request(method, path, json=payload, scheme=None)
        expect.error(response, 401, "unauthorized")


@scenario("errors.not_found")
def not_found(ctx):
    """404 not_found for unknown routes and for absent resources, naming the resource."""
    api = ctx.write
    expect.error(api.get("/no-such-route"), 404, "not_found")
    expect.error(api.get(f"/partners/{uuidlib.uuid4()}/nothing-here"), 404, "not_found")
    missing = str(uuidlib.uuid4())
    for path, name in (("/partners", "partner"), ("/users", "user"),
                       ("/certifications", "certification")):
        expect.error(api.get(f"{path}/{missing}"), 404, "not_found", names=name)
    certification = api.certification()
    expect.error(api.get(f"/certifications/{certification['uuid']}/enrollments/{missing}"),
                 404, "not_found", names="enrollment")
    # A real enrollment (and attempt) asked for under another parent is absent there.
    enrollment = api.enroll(api.certification(), api.user())
    attempt = expect.shaped(api.attempt(enrollment, 1), 201, "AttemptResult")
    elsewhere = f"/certifications/{certification['uuid']}/enrollments/{enrollment['uuid']}"
    for response in (api.get(elsewhere), api.patch(elsewhere, {"progress_percentage": 5}),
                     api.get(f"{elsewhere}/assessment-attempts"),
                     api.post(f"{elsewhere}/assessment-attempts", {"score": 1}),
                     api.delete(elsewhere)):
        expect.error(response, 404, "not_found", names="enrollment")
    sibling = api.enroll(certification, api.user())
    expect.error(api.get(f"/certifications/{certification['uuid']}/enrollments/{sibling['uuid']}"
                         f"/assessment-attempts/{attempt['uuid']}"), 404, "not_found")


@scenario("errors.method_not_allowed")
def method_not_allowed(ctx):
    """405 on every documented path called with a method it lacks; Allow lists all its methods."""
    api = ctx.write
    for template, methods in schemas.path_methods().items():
        path = re.sub(r"\{[^}]+\}", lambda _: str(uuidlib.uuid4()), template)
        method = next(m for m in PROBE_ORDER if m not in methods)
        response = api.request(method, path, json={} if method in ("PUT", "PATCH", "POST") else None)
        expect.error(response, 405, "method_not_allowed")
        allow = {m.strip().upper() for m in response.headers.get("allow", "").split(",") if m.strip()}
        # HEAD and OPTIONS come free with many servers; the documented methods must all be there.
        allow -= {"HEAD", "OPTIONS"}
        lacking = methods - allow
        if lacking and allow < methods and all(_absent(api, m, path) for m in lacking):
            # Allow is honest: the server has no such method here (a partial implementation).
            raise expect.Missing(", ".join(f"{m} {api.prefix}{template}" for m in sorted(lacking))
                                 + f" (405, Allow: {response.headers.get('allow')})")
        expect.equal(allow, methods, f"Allow header of {method} {template}")


def _absent(api, method: str, path: str) -> bool:
    """The method really has no route on this path: it answers 405 too."""
    response = api.request(method, path, json={} if method in ("PUT", "PATCH", "POST") else None)
    return response.status_code == 405


@scenario("errors.unsupported_media_type")
def unsupported_media_type(ctx):
    """415 for a body that is not application/json."""
    api = ctx.write
    for kind in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = api.post("/partners", content=b'{"name": "Never created"}',
                            headers={"Content-Type": kind})
        expect.error(response, 415, "unsupported_media_type")
    response = api.post("/partners", content=b'{"name": "With charset"}',
                        headers={"Content-Type": "application/json; charset=utf-8"})
    expect.shaped(response, 201, "Partner")


@scenario("errors.validation")
def validation(ctx):
    """422 validation_error for bad JSON, bad text, wrong types, unknown fields, bad query values."""
    api = ctx.write
    json_type = {"Content-Type": "application/json"}
    bodies = {
        "broken JSON": b'{"name": ',
        "non-UTF-8 bytes": b'{"name": "\xff\xfe"}',
        "an array": b'[{"name": "x"}]',
        "an empty body": b"",
        "JSON null": b"null",
    }
    for label, raw in bodies.items():
        try:
            expect.error(api.post("/partners", content=raw, headers=json_type), 422,
                         "validation_error", place="body")
        except expect.ContractFailure as exc:
            expect.fail(f"{label}: {exc}", exc.response, exc.expected)
    expect.error(api.post("/partners", {}), 422, "validation_error", place="body/name")
    expect.error(api.post("/partners", {"name": 7}), 422, "validation_error", place="body/name")
    expect.error(api.post("/partners", {"name": "x", "colour": "red"}), 422, "validation_error",
                 place="body")
    expect.error(api.get("/partners/not-a-uuid"), 422, "validation_error", place="path/uuid")
    expect.error(api.get("/certifications", params={"status": "sideways"}), 422,
                 "validation_error", place="query/status")
    expect.error(api.get("/users", params={"partnership_uuid": "nope"}), 422,
                 "validation_error", place="query/partnership_uuid")


@scenario("errors.payload_too_large")
def payload_too_large(ctx):
    """413 payload_too_large for a body over the default limit of 1 MiB."""
    api = ctx.write
    raw = b'{"name": "big", "description": "' + b"x" * (1 << 20) + b'"}'
    response = api.post("/partners", content=raw, headers={"Content-Type": "application/json"})
    expect.error(response, 413, "payload_too_large")
