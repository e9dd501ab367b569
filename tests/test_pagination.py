"""Page-numbered lists: defaults, bounds, exact totals, and a stable order (creation
time, then uuid) so that walking the pages yields every row exactly once. The walk and
the tie-break run against every list operation of the spec."""
import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from models import (
    AssessmentAttempt,
    Certification,
    Enrollment,
    Event,
    Partner,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.conftest import SPEC, expect_error


@dataclass
class ListCase:
    """How to reach one list and add a row to it."""
    path: str
    make: Callable[[], dict]
    stamp: str  # the response field holding the row's creation time
    column: object  # the model column behind it


def _partners(api):
    return ListCase("/v1/partners", api.partner, "created_at", Partner.created_at)


def _partner_users(api):
    partner = api.partner()
    return ListCase(f"/v1/partners/{partner['uuid']}/users",
                    lambda: api.user(partnership_uuid=partner["uuid"]),
                    "created_at", User.created_at)


def _users(api):
    return ListCase("/v1/users", api.user, "created_at", User.created_at)


def _user_enrollments(api):
    user = api.user()
    return ListCase(f"/v1/users/{user['uuid']}/enrollments",
                    lambda: api.enroll(api.certification(), user),
                    "enrolled_at", Enrollment.enrolled_at)


def _certifications(api):
    return ListCase("/v1/certifications", api.certification, "created_at",
                    Certification.created_at)


def _enrollments(api):
    cert = api.certification()
    return ListCase(f"/v1/certifications/{cert['uuid']}/enrollments",
                    lambda: api.enroll(cert, api.user()),
                    "enrolled_at", Enrollment.enrolled_at)


def _attempts(api):
    # A failing score and no attempt limit: the enrollment takes any number of attempts.
    enrollment = api.enroll(api.certification(passing_score=100), api.user())
    path = (f"/v1/certifications/{enrollment['certification_uuid']}/enrollments/"
            f"{enrollment['uuid']}/assessment-attempts")
    return ListCase(path, lambda: api.attempt(enrollment, 0), "submitted_at",
                    AssessmentAttempt.submitted_at)


def _webhook_endpoint(api) -> dict:
    return api.post("/v1/webhook-endpoints", {"url": "https://93.184.215.14/hook"})


def _webhook_endpoints(api):
    return ListCase("/v1/webhook-endpoints", lambda: _webhook_endpoint(api), "created_at",
                    WebhookEndpoint.created_at)


def _test_delivery(api, endpoint) -> dict:
    return api.post(f"/v1/webhook-endpoints/{endpoint['uuid']}/test", None, expect=202)


def _webhook_deliveries(api):
    endpoint = _webhook_endpoint(api)
    return ListCase(f"/v1/webhook-endpoints/{endpoint['uuid']}/deliveries",
                    lambda: _test_delivery(api, endpoint), "created_at",
                    WebhookDelivery.created_at)


def _events(api):
    # Each test delivery raises exactly one event (webhook.test) in the tenant's account.
    endpoint = _webhook_endpoint(api)

    def make():
        event_id = _test_delivery(api, endpoint)["event_id"]
        return api.client.get(f"/v1/events/{event_id}", headers=api.tenant.headers).json()

    return ListCase("/v1/events", make, "timestamp", Event.created_at)


LISTS = {
    "listPartners": _partners,
    "listPartnerUsers": _partner_users,
    "listUsers": _users,
    "listUserEnrollments": _user_enrollments,
    "listCertifications": _certifications,
    "listEnrollments": _enrollments,
    "listAttempts": _attempts,
    "listWebhookEndpoints": _webhook_endpoints,
    "listWebhookDeliveries": _webhook_deliveries,
    "listEvents": _events,
}
PAGE_REF = {"$ref": "#/components/parameters/Page"}


def paged_operations() -> set[str]:
    return {op["operationId"] for item in SPEC["paths"].values() for op in item.values()
            if isinstance(op, dict) and PAGE_REF in op.get("parameters", [])}


def test_every_paged_operation_is_covered_here():
    assert set(LISTS) == paged_operations()


def get_page(client, tenant, path, **query):
    joined = "&".join(f"{k}={v}" for k, v in query.items())
    response = client.get(f"{path}?{joined}" if joined else path, headers=tenant.read_headers)
    assert response.status_code == 200, response.text
    return response.json()


def walk(client, tenant, path, per_page):
    """Every page in turn; returns the uuids seen and the number of pages."""
    seen, page = [], 1
    while True:
        body = get_page(client, tenant, path, page=page, per_page=per_page)
        total, pages = body["pagination"]["total"], body["pagination"]["total_pages"]
        assert body["pagination"] == {"page": page, "per_page": per_page, "total": total,
                                      "total_pages": pages}
        assert len(body["data"]) == (min(per_page, total - (page - 1) * per_page)
                                     if page <= pages else 0)
        seen += [row["uuid"] for row in body["data"]]
        if page >= pages:
            return seen, pages
        page += 1


@pytest.mark.parametrize("operation", sorted(LISTS))
def test_walking_all_pages_returns_each_row_once_in_order(api, client, tenant, operation):
    case = LISTS[operation](api)
    rows = [case.make() for _ in range(53)]
    expected = [r["uuid"] for r in sorted(rows, key=lambda r: (r[case.stamp], r["uuid"]))]
    seen, pages = walk(client, tenant, case.path, per_page=10)
    assert pages == 6
    assert seen == expected
    assert len(set(seen)) == 53
    past = get_page(client, tenant, case.path, page=7, per_page=10)
    assert past == {"data": [], "pagination": {"page": 7, "per_page": 10, "total": 53,
                                               "total_pages": 6}}


@pytest.mark.parametrize("operation", sorted(LISTS))
def test_equal_creation_times_are_ordered_by_uuid(api, client, tenant, operation):
    case = LISTS[operation](api)
    early, tied, late = case.make(), [case.make() for _ in range(7)], case.make()
    moment = datetime.datetime(2030, 1, 1, 12, 0, 0)
    model = case.column.model
    (model.update({case.column: moment})
     .where(model.uuid.in_([r["uuid"] for r in tied])).execute())
    (model.update({case.column: moment + datetime.timedelta(microseconds=1)})
     .where(model.uuid == late["uuid"]).execute())
    expected = [early["uuid"], *sorted(r["uuid"] for r in tied), late["uuid"]]
    assert [r["uuid"] for r in get_page(client, tenant, case.path)["data"]] == expected
    # The tie spans page boundaries: paging must neither skip nor repeat inside it.
    for per_page in (1, 2, 3, 4):
        assert walk(client, tenant, case.path, per_page)[0] == expected, per_page


def test_defaults_are_page_1_of_25(api, client, tenant):
    made = [api.partner(name=f"P{i}") for i in range(27)]
    body = get_page(client, tenant, "/v1/partners")
    assert body["pagination"] == {"page": 1, "per_page": 25, "total": 27, "total_pages": 2}
    assert [p["uuid"] for p in body["data"]] == [p["uuid"] for p in made[:25]]
    second = get_page(client, tenant, "/v1/partners", page=2)
    assert [p["uuid"] for p in second["data"]] == [p["uuid"] for p in made[25:]]
    assert second["pagination"]["per_page"] == 25


@pytest.mark.parametrize("count, per_page", [(0, 1), (0, 25), (1, 1), (9, 10), (10, 10),
                                             (11, 10), (20, 3), (5, 100)])
def test_totals_are_exact(api, client, tenant, count, per_page):
    for _ in range(count):
        api.certification()
    body = get_page(client, tenant, "/v1/certifications", per_page=per_page)
    assert body["pagination"] == {"page": 1, "per_page": per_page, "total": count,
                                  "total_pages": math.ceil(count / per_page)}
    assert len(body["data"]) == min(count, per_page)


def test_bounds_that_are_accepted(api, client, tenant):
    api.partner()
    assert len(get_page(client, tenant, "/v1/partners", per_page=1)["data"]) == 1
    assert len(get_page(client, tenant, "/v1/partners", per_page=100)["data"]) == 1
    far = get_page(client, tenant, "/v1/partners", page=1000000, per_page=100)
    assert far == {"data": [], "pagination": {"page": 1000000, "per_page": 100, "total": 1,
                                              "total_pages": 1}}


@pytest.mark.parametrize("query, message", [
    ("per_page=0", "query/per_page: Must be at least 1"),
    ("per_page=101", "query/per_page: Must be at most 100"),
    ("per_page=-1", "query/per_page: Must be at least 1"),
    ("page=0", "query/page: Must be at least 1"),
    ("page=-3", "query/page: Must be at least 1"),
    ("page=1000001", "query/page: Must be at most 1000000"),
    ("page=abc", "query/page: Expected integer"),
    ("per_page=2.5", "query/per_page: Expected integer"),
    ("page=", "query/page: Expected integer"),
])
@pytest.mark.parametrize("path", ["/v1/partners", "/v1/users", "/v1/certifications"])
def test_out_of_bounds_is_422(client, tenant, path, query, message):
    response = client.get(f"{path}?{query}", headers=tenant.headers)
    assert expect_error(response, 422, "validation_error") == message
