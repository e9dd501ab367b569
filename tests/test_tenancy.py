"""Tenant isolation, walked over every operation of openapi.yaml.

An "owner" account holds one of each resource (partner, user, certification,
enrollment, attempt); a "stranger" account holds its own. Every operation is called
with the stranger's key wherever a path parameter or a body reference can name the
owner's resource: alone, and beside the stranger's own resources (the owner's
enrollment under the stranger's certification, the stranger's user moved to the owner's
partner, ...). Each such call must be a 404 with the not_found envelope; no response to
the stranger may contain an owner uuid; and afterwards every read of the owner's data
answers exactly as before. The list of operations comes from the spec, so a new
operation is walked (or the walk fails and says what it cannot place)."""
import copy

from tests.conftest import METHODS, OPERATIONS, SPEC, Api, expect_error

# Which resource a path parameter names: the collection segment just before it.
RESOURCE_BY_SEGMENT = {
    "partners": "partner", "users": "user", "certifications": "certification",
    "enrollments": "enrollment", "assessment-attempts": "attempt",
    "webhook-endpoints": "webhook_endpoint", "deliveries": "delivery", "events": "event",
}
# Which resource a body field or query filter refers to.
RESOURCE_BY_FIELD = {
    "partnership_uuid": "partner", "user_uuid": "user", "certification_uuid": "certification",
    "enrollment_uuid": "enrollment",
}
LABELS = {
    "partner": "Partner", "user": "User", "certification": "Certification",
    "enrollment": "Enrollment", "attempt": "Assessment attempt",
    "webhook_endpoint": "Webhook endpoint", "delivery": "Webhook delivery", "event": "Event",
}


def deref(node: dict) -> dict:
    """Follow local ``$ref``s (``#/components/...``) to the node they name."""
    while isinstance(node, dict) and "$ref" in node:
        target = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations():
    """(method, path template, operation) for every operation of the spec."""
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


def path_slots(path: str) -> list[tuple[str, str]]:
    """(parameter name, resource kind) for each path parameter, outermost first."""
    segments = path.strip("/").split("/")
    slots = []
    for i, segment in enumerate(segments):
        if segment.startswith("{"):
            collection = segments[i - 1]
            assert collection in RESOURCE_BY_SEGMENT, f"cannot place {segment} in {path}"
            slots.append((segment[1:-1], RESOURCE_BY_SEGMENT[collection]))
    return slots


def body_example(op: dict) -> tuple[dict | None, list[tuple[str, str]]]:
    """The spec's request example and (field, resource kind) for its reference fields."""
    if "requestBody" not in op:
        return None, []
    media = deref(op["requestBody"])["content"]["application/json"]
    assert "example" in media, f"{op['operationId']}: request body has no example to send"
    schema = deref(media["schema"])
    refs = [(name, RESOURCE_BY_FIELD[name]) for name in schema.get("properties", {})
            if name in RESOURCE_BY_FIELD]
    return copy.deepcopy(media["example"]), refs


def query_filters(op: dict) -> list[tuple[str, str]]:
    params = (deref(p) for p in op.get("parameters", []))
    return [(p["name"], RESOURCE_BY_FIELD[p["name"]]) for p in params
            if p["in"] == "query" and p["name"] in RESOURCE_BY_FIELD]


def fill(path: str, slots, owners: set[int], owner: dict, stranger: dict) -> str:
    """The template with slot i taken from the owner if i in ``owners``, else the stranger."""
    for i, (name, kind) in enumerate(slots):
        path = path.replace("{" + name + "}", (owner if i in owners else stranger)[kind])
    return "/v1" + path


def holdings(api: Api, tag: str) -> dict:
    """One resource of each kind in the account behind ``api``, by kind → uuid. The
    enrollment stays in progress (a failing attempt, no limit) so writes to it would work."""
    partner = api.partner(name=f"{tag} partner")
    partner_user = api.user(email=f"member@{tag}.example", partnership_uuid=partner["uuid"])
    certification = api.certification(name=f"{tag} certification")
    enrollment = api.enroll(certification, partner_user, partnership_uuid=partner["uuid"])
    attempt = api.attempt(enrollment, 10)
    endpoint = api.post("/v1/webhook-endpoints", {"url": "https://93.184.215.14/hook"})
    delivery = api.post(f"/v1/webhook-endpoints/{endpoint['uuid']}/test", None, expect=202)
    return {"partner": partner["uuid"], "user": partner_user["uuid"],
            "certification": certification["uuid"], "enrollment": enrollment["uuid"],
            "attempt": attempt["uuid"], "webhook_endpoint": endpoint["uuid"],
            "delivery": delivery["uuid"], "event": delivery["event_id"]}


def owner_view(client, tenant, owner: dict) -> dict:
    """Every read operation of the spec, as the owner sees their own data."""
    view = {}
    for method, path, op in operations():
        if method != "GET" or op.get("security") == []:
            continue
        slots = path_slots(path)
        url = fill(path, slots, set(range(len(slots))), owner, owner)
        response = client.get(url, headers=tenant.read_headers)
        assert response.status_code == 200, (url, response.text)
        view[url] = response.json()
    return view


def test_every_operation_refuses_another_accounts_resources(client, tenant, other_tenant):
    owner = holdings(Api(client, tenant), "owner")
    stranger = holdings(Api(client, other_tenant), "stranger")
    before = owner_view(client, tenant, owner)
    assert all(body["data"] for body in before.values() if "data" in body), \
        "every owner list must hold a row, or a leak could not show"
    owner_uuids = set(owner.values())

    def call(method, url, body=None, echoed=frozenset()):
        """``echoed``: uuids the stranger sent as a filter, which an answer may repeat."""
        headers = other_tenant.read_headers if method == "GET" else other_tenant.headers
        response = client.request(method, url, headers=headers,
                                  **({"json": body} if body is not None else {}))
        leaked = [u for u in owner_uuids - echoed if u in response.text]
        assert not leaked, (method, url, body, response.text)
        return response

    walked = set()
    for method, path, op in operations():
        walked.add(op["operationId"])
        if op.get("security") == []:
            assert call(method, "/v1" + path).status_code == 200
            continue
        example, body_refs = body_example(op)
        slots = path_slots(path)
        all_slots = slots + body_refs
        variants = [set(range(len(all_slots)))] + [{i} for i in range(len(all_slots))]
        if not all_slots:
            # A collection with nothing to name: the stranger works in their own account.
            response = call(method, "/v1" + path, example)
            assert response.status_code == {"GET": 200, "POST": 201}[method], response.text
        for owners in variants if all_slots else []:
            url = fill(path, slots, owners, owner, stranger)
            body = None
            if example is not None:
                body = dict(example)
                for j, (field, kind) in enumerate(body_refs, start=len(slots)):
                    body[field] = (owner if j in owners else stranger)[kind]
            response = call(method, url, body)
            message = expect_error(response, 404, "not_found")
            named = {LABELS[kind] + " not found" for i, (_, kind) in enumerate(all_slots)
                     if i in owners}
            assert message in named, (method, url, body, message)
        filters = query_filters(op)
        if method == "GET" and filters:
            # Filtering the stranger's list by the owner's uuids finds nothing.
            url = fill(path, slots, set(), owner, stranger)
            query = "&".join(f"{name}={owner[kind]}" for name, kind in filters)
            response = call("GET", f"{url}?{query}", echoed={owner[kind] for _, kind in filters})
            assert response.status_code == 200, response.text
            found = response.json()
            if "data" in found:
                assert found["data"] == [], response.text
            else:  # the stats: zeros, and the filter as it was sent
                assert found["enrollments"]["total"] == 0, response.text
                assert all(found[name] == owner[kind] for name, kind in filters), response.text
    assert walked == {op_id for _, _, op_id, _ in OPERATIONS}

    assert owner_view(client, tenant, owner) == before


def test_stranger_lists_show_only_their_own_rows(client, tenant, other_tenant):
    owner = holdings(Api(client, tenant), "owner")
    stranger = holdings(Api(client, other_tenant), "stranger")
    for url in ("/v1/partners", "/v1/users", "/v1/certifications"):
        response = client.get(url, headers=other_tenant.read_headers)
        assert response.status_code == 200
        uuids = {row["uuid"] for row in response.json()["data"]}
        assert uuids and uuids <= set(stranger.values()), url
        assert not uuids & set(owner.values()), url
    by_email = client.get("/v1/users?email=member@owner.example", headers=other_tenant.headers)
    assert by_email.json()["data"] == []


def test_references_to_another_accounts_resources_are_404(api, client, tenant, other_tenant):
    """The owner's key cannot reach the stranger's partner or user through a body either."""
    foreign = Api(client, other_tenant)
    partner, user = foreign.partner(), foreign.user()
    cert = api.certification()
    response = client.post("/v1/users", json={"email": "x@y.example",
                                              "partnership_uuid": partner["uuid"]},
                           headers=tenant.headers)
    assert expect_error(response, 404, "not_found") == "Partner not found"
    response = client.post(f"/v1/certifications/{cert['uuid']}/enrollments",
                           json={"user_uuid": user["uuid"]}, headers=tenant.headers)
    assert expect_error(response, 404, "not_found") == "User not found"
    listed = client.get(f"/v1/certifications/{cert['uuid']}/enrollments", headers=tenant.headers)
    assert listed.json()["data"] == []
