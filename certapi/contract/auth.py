"""Both Authorization forms, the open health check, and read-only keys."""
from certapi.contract import expect
from certapi.contract.agent import attempts_path, enrollment_path
from certapi.contract.runner import scenario
from certapi.contract.seed import enrollments

FORMS = ("Bearer", "Api-Key")


@scenario("auth.header_forms")
def header_forms(ctx):
    """'Bearer <key>' and 'Api-Key <key>' both work, for reads and for writes."""
    api = ctx.write
    for form in FORMS:
        response = api.post("/partners", {"name": f"Made with {form}"}, scheme=form)
        partner = expect.shaped(response, 201, "Partner")
        for reader in FORMS:
            expect.shaped(api.get(f"/partners/{partner['uuid']}", scheme=reader), 200, "Partner")
            expect.shaped(api.get("/partners", scheme=reader), 200, "PartnerList")
        expect.shaped(api.patch(f"/partners/{partner['uuid']}", {"description": form},
                                scheme=form), 200, "Partner")
        expect.status(api.delete(f"/partners/{partner['uuid']}", scheme=form), 204)


@scenario("auth.health")
def health(ctx):
    """GET /health needs no key and answers {"status": "ok"}."""
    response = ctx.write.get("/health", scheme=None)
    expect.equal(expect.shaped(response, 200, "Health"), {"status": "ok"}, "health body")


@scenario("auth.read_only_key", needs=("read",))
def read_only_key(ctx):
    """A read key reads everything (both forms) and every write with it is 403 forbidden."""
    api, reader = ctx.write, ctx.read
    certification, partner = api.certification(), api.partner()
    user = api.user()
    enrollment = api.enroll(certification, user)
    reads = [(f"/partners/{partner['uuid']}", "Partner"), ("/users", "UserList"),
             (f"/certifications/{certification['uuid']}", "Certification"),
             (enrollment_path(enrollment), "Enrollment"), (attempts_path(enrollment), "AttemptList"),
             (f"/users/{user['uuid']}/enrollments", "EnrollmentList")]
    for form in FORMS:
        for path, schema in reads:
            expect.shaped(reader.get(path, scheme=form), 200, schema)
    writes = [
        ("POST", "/partners", {"name": "Never created"}),
        ("POST", "/users", {"email": api.email()}),
        ("POST", "/certifications", {"name": "Never created"}),
        ("POST", enrollments(certification), {"user_uuid": api.user()["uuid"]}),
        ("PATCH", f"/partners/{partner['uuid']}", {"name": "Renamed"}),
        ("PATCH", f"/users/{user['uuid']}", {"first_name": "Renamed"}),
        ("PATCH", f"/certifications/{certification['uuid']}", {"status": "archived"}),
        ("PATCH", enrollment_path(enrollment), {"progress_percentage": 50}),
        ("POST", attempts_path(enrollment), {"score": 100}),
        ("DELETE", enrollment_path(enrollment), None),
        ("DELETE", f"/users/{user['uuid']}", None),
        ("DELETE", f"/partners/{partner['uuid']}", None),
        ("DELETE", f"/certifications/{certification['uuid']}", None),
    ]
    writes.append(("POST", "/partners", {"colour": "red"}))  # refused before validation
    for form in FORMS:
        for method, path, payload in writes:
            response = reader.request(method, path, json=payload, scheme=form)
            expect.error(response, 403, "forbidden")
    unchanged = [(f"/partners/{partner['uuid']}", partner), (f"/users/{user['uuid']}", user),
                 (f"/certifications/{certification['uuid']}", certification),
                 (enrollment_path(enrollment), enrollment)]
    for path, before in unchanged:
        expect.equal(api.get(path).json(), before, f"{path} after refused writes")
