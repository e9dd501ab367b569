"""Webhook endpoints, their secrets, test events and delivery logs."""
import datetime
import json
from typing import Any

from certapi.errors import Conflict, NotFound, ValidationFailed
from certapi.pagination import paginate
from certapi.spec import url
from certapi.webhooks import delivery as senders
from certapi.webhooks import emit, fanout
from certapi.webhooks.settings import WebhookSettings
from certapi.webhooks.signing import new_secret
from certapi.webhooks.ssrf import RefusedDestination, check_url
from handlers.scoping import created, no_content, owned
from models import WebhookDelivery, WebhookEndpoint, database
from models.base import utcnow

Json = dict[str, Any]

ROTATION_OVERLAP = datetime.timedelta(hours=24)


def _check_destination(url: str) -> None:
    try:
        check_url(url, WebhookSettings.from_env().allow_private)
    except RefusedDestination as refused:
        raise ValidationFailed(f"body/url: Not a usable destination: {refused}") from refused


def _location(endpoint: WebhookEndpoint) -> str:
    return url("webhook-endpoints", endpoint.uuid)


def list_webhook_endpoints(page: int, per_page: int, user: str) -> Json:
    query = WebhookEndpoint.select().where(WebhookEndpoint.account == user)
    order = (WebhookEndpoint.created_at, WebhookEndpoint.uuid)
    return paginate(query, order, page, per_page, WebhookEndpoint.as_json)


def create_webhook_endpoint(body: Json, user: str) -> tuple[Json, int, dict[str, str]]:
    _check_destination(body["url"])
    secret = new_secret()
    endpoint = WebhookEndpoint(
        account=user, url=body["url"], description=body.get("description"),
        event_types=json.dumps(sorted(set(body.get("event_types", [])))),
        enabled=body.get("enabled", True), secret=secret,
    )
    if not endpoint.enabled:
        endpoint.disabled_reason = "Disabled by request"
    endpoint.save(force_insert=True)
    return created({**endpoint.as_json(), "secret": secret}, _location(endpoint))


def get_webhook_endpoint(uuid: str, user: str) -> Json:
    return owned(WebhookEndpoint, uuid, "Webhook endpoint", user).as_json()


def update_webhook_endpoint(uuid: str, body: Json, user: str) -> Json:
    if "url" in body:
        _check_destination(body["url"])
    with database.atomic():
        endpoint = owned(WebhookEndpoint, uuid, "Webhook endpoint", user)
        for name, value in body.items():
            if name == "event_types":
                endpoint.event_types = json.dumps(sorted(set(value)))
            else:
                setattr(endpoint, name, value)
        if body.get("enabled") is True:
            endpoint.disabled_reason, endpoint.failing_since = None, None
        elif body.get("enabled") is False:
            endpoint.disabled_reason = "Disabled by request"
        endpoint.save()
    return endpoint.as_json()


def delete_webhook_endpoint(uuid: str, user: str) -> tuple[None, int]:
    with database.atomic():
        owned(WebhookEndpoint, uuid, "Webhook endpoint", user).delete_instance()
    return no_content()


def rotate_webhook_secret(uuid: str, user: str) -> Json:
    with database.atomic():
        endpoint = owned(WebhookEndpoint, uuid, "Webhook endpoint", user)
        endpoint.previous_secret, endpoint.secret = endpoint.secret, new_secret()
        endpoint.previous_secret_until = utcnow() + ROTATION_OVERLAP
        endpoint.save()
    return {"secret": endpoint.secret}


def _enabled(uuid: str, user: str) -> WebhookEndpoint:
    endpoint = owned(WebhookEndpoint, uuid, "Webhook endpoint", user)
    if not endpoint.enabled:
        raise Conflict("Webhook endpoint is disabled; enable it first")
    return endpoint


def send_test_event(uuid: str, user: str) -> tuple[Json, int]:
    with database.atomic():
        endpoint = _enabled(uuid, user)
        event = emit(endpoint.account_id, "webhook.test",
                     {"webhook_endpoint_uuid": endpoint.uuid}, endpoints=[endpoint])
        fanout.settle(user)  # the answer is the delivery
        delivery = WebhookDelivery.get(WebhookDelivery.event == event)
    senders.wake()
    return delivery.as_json(), 202


def _delivery(endpoint: WebhookEndpoint, delivery_uuid: str) -> WebhookDelivery:
    delivery = WebhookDelivery.get_or_none((WebhookDelivery.uuid == delivery_uuid.lower())
                                           & (WebhookDelivery.endpoint == endpoint))
    if delivery is None:
        raise NotFound("Webhook delivery not found")
    return delivery


def list_webhook_deliveries(uuid: str, page: int, per_page: int, user: str,
                            status: str | None = None) -> Json:
    endpoint = owned(WebhookEndpoint, uuid, "Webhook endpoint", user)
    fanout.settle(user)  # deliveries of committed events no sender has written yet
    query = WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    order = (WebhookDelivery.created_at, WebhookDelivery.uuid)
    return paginate(query, order, page, per_page, WebhookDelivery.as_json)


def retry_webhook_delivery(uuid: str, delivery_uuid: str, user: str) -> tuple[Json, int]:
    fanout.settle(user)
    with database.atomic():
        endpoint = _enabled(uuid, user)
        delivery = _delivery(endpoint, delivery_uuid)
        # A delivery a sender holds right now is being sent already: leave its claim be,
        # so no second sender can send it at the same time.
        (WebhookDelivery.update(status="pending", next_attempt_at=utcnow(), updated_at=utcnow())
         .where((WebhookDelivery.uuid == delivery.uuid) & WebhookDelivery.claim.is_null())
         .execute())
        delivery = WebhookDelivery.get_by_id(delivery.uuid)
    senders.wake()
    return delivery.as_json(), 202
