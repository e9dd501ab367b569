"""The benchmark's reference: the benchmarked endpoints written the way most teams would
write them, with FastAPI and Pydantic, over the same Peewee models and database.

For a fair comparison it does the same work as certapi, no less:
- validation: the same patterns and ranges (Pydantic, strict types, unknown body fields
  and unknown query parameters refused), errors in the same envelope;
- auth: the same key parsing, SHA-256 hashing and verified-key cache (certapi.auth,
  looked up off the event loop on a miss);
- the same data work: each endpoint calls certapi's own handler function (the same
  queries, transactions, lifecycle rules and rendering), so only the web layer differs;
- the same outer layers: certapi's request-id/access-log and body-limit middleware and
  its logging set-up;
- the same production features: certapi's rate limiter (its ASGI layer and counters),
  Idempotency-Key on writes (certapi.idempotency's latch, records and fingerprints,
  driven from a FastAPI dependency instead of a Flask view wrapper) and the webhook
  sender in every worker (events are emitted by certapi's handlers either way);
- responses serialised compactly with the stdlib json, as FastAPI does by default (certapi
  writes them with orjson, certapi.jsoncodec: a choice of its web layer), and not validated
  (certapi validates responses only in tests).
Sync endpoints run on FastAPI's thread pool, as Peewee (a sync ORM) calls for.

Serve: gunicorn -k uvicorn_worker.UvicornWorker 'bench.reference.app:create_app()'
"""
import functools
import json
import os
import random
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from peewee import IntegrityError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from certapi import auth, csv_export, idempotency, metrics, ratelimit
from certapi.app import configure_logging
from certapi.config import Settings
from certapi.errors import BY_STATUS, ApiError, Conflict, Unauthorized, ValidationFailed, envelope
from certapi.middleware import BodyLimit, RequestLog
from certapi.spec import UUID_PATTERN
from handlers import attempts, bulk, certifications, enrollments, health, stats
from handlers.scoping import owned
from models import Certification, Enrollment, database
from models.base import utcnow
from models.db import init_database, is_postgres
from models.idempotency import IdempotencyRecord

PathUuid = Annotated[str, Path(pattern=UUID_PATTERN)]
QueryUuid = Annotated[str | None, Query(pattern=UUID_PATTERN)]
BodyUuid = Annotated[str, Field(pattern=UUID_PATTERN)]
Score = Annotated[float, Field(ge=0, le=100)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EnrollmentCreate(Strict):
    user_uuid: BodyUuid
    partnership_uuid: BodyUuid = None  # optional, but null is refused, as in openapi.yaml


class ProgressUpdate(Strict):
    progress_percentage: Score


class AttemptCreate(Strict):
    score: Score


class BulkCreate(Strict):
    enrollments: Annotated[list[EnrollmentCreate], Field(min_length=1, max_length=1000)]


class CertificationCreate(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*$")]
    description: Annotated[str | None, Field(max_length=5000, pattern=r"^[^\x00]*$")] = None
    status: Literal["draft", "published", "archived"] = "draft"
    passing_score: Score = 70
    max_attempts: Annotated[int | None, Field(ge=1, le=1000)] = None
    validity_days: Annotated[int | None, Field(ge=1, le=36500)] = None


def reply(result) -> Response:
    """A certapi handler's return value (body, or body, status, headers) as a response."""
    if isinstance(result, tuple):
        return json_response(*result)
    return json_response(result)


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status,
                    headers=headers, media_type="application/json")


def error_response(status: int, code: str, message: str, headers=None) -> Response:
    return json_response(envelope(code, message), status, headers)


async def caller(request: Request) -> str:
    """The key's account, exactly as certapi's security function decides (Connexion
    passes its ``sub`` to certapi's handlers as ``user``)."""
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthorized("Missing Authorization header")
    return (await auth.authenticate(header, request))["sub"]


def only_query(*names: str):
    """Unknown query parameters are a 422, as with Connexion's strict_validation."""
    allowed = frozenset(names)

    async def check(request: Request) -> None:  # async: FastAPI runs a sync one on a thread
        for name in request.query_params:
            if name not in allowed:
                raise ValidationFailed(f"query/{name}: Unknown parameter")
    return Depends(check)


Caller = Annotated[str, Depends(caller)]


# --- Idempotency-Key: certapi.idempotency's latch and records, keyed from a dependency ---
LAYER = idempotency.Idempotency(24)


async def idempotency_key(request: Request) -> tuple[str, str] | None:
    """(key, fingerprint) of a keyed write, read on the event loop like the body."""
    raw = request.headers.get(idempotency.HEADER)
    if raw is None:
        return None
    if not idempotency.WELL_FORMED.fullmatch(raw):
        raise ValidationFailed(f"header/{idempotency.HEADER}: Does not match the expected format")
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    digest = idempotency.fingerprint(request.method, path, await request.body())
    return idempotency.normalize(raw), digest


Keyed = Annotated[tuple[str, str] | None, Depends(idempotency_key)]


def keyed(idem: tuple[str, str] | None, account: str, run: Callable[[], Any]) -> Response:
    """certapi.idempotency.Idempotency.run, step for step, around a FastAPI response."""
    if idem is None:
        return reply(run())
    key, digest = idem
    name = f"{account}:{key}"
    busy = Conflict(f"A request with this {idempotency.HEADER} is still being processed; retry",
                    headers={"Retry-After": "1"})
    postgres, offset = is_postgres(), None
    if not postgres:
        offset = LAYER._file_latch_for().acquire(name)
        if offset is None:
            raise busy
    try:
        with database.atomic() as transaction:
            if postgres and not LAYER._advisory_latch(name):
                raise busy
            stored = LAYER._stored(account, key)
            if stored is not None:
                if stored.fingerprint != digest:
                    raise ValidationFailed(f"header/{idempotency.HEADER}: Already used with a "
                                           "different method, path or body; use a new key")
                answer = Response(stored.body, status_code=stored.status,
                                  media_type=stored.content_type)
                if stored.location:
                    answer.headers["Location"] = stored.location
                answer.headers[idempotency.REPLAYED] = "true"
                return answer
            try:
                response = reply(run())
            except ApiError as refused:
                response = error_response(refused.status, refused.code, refused.message,
                                          refused.headers)
            if response.status_code >= 500:
                transaction.rollback()
                return response
            IdempotencyRecord.create(
                account=account, key=key, fingerprint=digest, status=response.status_code,
                body=bytes(response.body).decode(), content_type="application/json",
                location=response.headers.get("location"))
            if random.randrange(idempotency.PURGE_EVERY) == 0:
                LAYER.purge()
            return response
    finally:
        if offset is not None:
            LAYER._file_latch_for().release(offset)


def csv_stream(uuid: str, account: str) -> StreamingResponse:
    """The certification's enrollments as certapi's CSV (certapi.csv_export.csv_lines): each
    chunk is its own query, read on a worker thread that hands its connection back."""
    certification = owned(Certification, uuid, "Certification", account)
    lines = csv_export.csv_lines(
        enrollments.with_user(enrollments.filtered(Enrollment.certification == certification)),
        enrollments.ORDER, enrollments.csv_fields(utcnow()))

    def step(it: Iterator[bytes]) -> bytes | None:
        try:
            return next(it, None)
        finally:
            if not database.is_closed():
                database.close()

    async def body():
        while (chunk := await anyio.to_thread.run_sync(step, lines)) is not None:
            yield chunk

    return StreamingResponse(body(), media_type=csv_export.CSV, headers={
        "Content-Disposition": f'attachment; filename="certification-{certification.uuid}-enrollments.csv"'})


def connected(endpoint):
    """The connection the endpoint checked out goes back to the pool when it returns, on
    the endpoint's own thread (Peewee's connections are per thread), as with
    certapi.app.handler."""
    @functools.wraps(endpoint)
    def run(*args, **kwargs):
        try:
            return endpoint(*args, **kwargs)
        finally:
            if not database.is_closed():
                database.close()
    return run


def build_api() -> FastAPI:
    api = FastAPI(title="certapi reference (FastAPI)")
    prefix = "/v1/certifications/{uuid}/enrollments"

    @api.get("/v1/health")
    @connected
    def get_health():
        return reply(health.get_health())

    @api.get(prefix, dependencies=[only_query("page", "per_page", "status", "user_uuid",
                                              "partnership_uuid", "format")])
    @connected
    def list_enrollments(
        uuid: PathUuid, account: Caller,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=100)] = 25,
        status: Literal["enrolled", "in_progress", "completed", "failed"] | None = None,
        user_uuid: QueryUuid = None, partnership_uuid: QueryUuid = None,
        format: Literal["json", "csv"] | None = None,
    ):
        if format == "csv":  # the bench asks with ?format=csv, unfiltered
            return csv_stream(uuid, account)
        return reply(enrollments.list_enrollments(
            uuid, page, per_page, account, status=status, user_uuid=user_uuid,
            partnership_uuid=partnership_uuid, format="json"))

    @api.post(prefix, dependencies=[only_query()])
    @connected
    def create_enrollment(uuid: PathUuid, body: EnrollmentCreate, account: Caller, idem: Keyed):
        return keyed(idem, account, lambda: enrollments.create_enrollment(
            uuid, body.model_dump(exclude_unset=True), account))

    @api.post(prefix + "/bulk", dependencies=[only_query()])
    @connected
    def create_enrollments_bulk(uuid: PathUuid, body: BulkCreate, account: Caller, idem: Keyed):
        return keyed(idem, account, lambda: bulk.create_enrollments_bulk(
            uuid, body.model_dump(exclude_unset=True), account))

    @api.get("/v1/certifications/{uuid}/stats", dependencies=[only_query("partnership_uuid")])
    @connected
    def get_certification_stats(uuid: PathUuid, account: Caller, partnership_uuid: QueryUuid = None):
        return reply(stats.get_certification_stats(uuid, account, partnership_uuid=partnership_uuid))

    @api.post("/v1/certifications", dependencies=[only_query()])
    @connected
    def create_certification(body: CertificationCreate, account: Caller, idem: Keyed):
        return keyed(idem, account, lambda: certifications.create_certification(
            body.model_dump(exclude_unset=True), account))

    @api.get(prefix + "/{enrollment_uuid}", dependencies=[only_query()])
    @connected
    def get_enrollment(uuid: PathUuid, enrollment_uuid: PathUuid, account: Caller):
        return reply(enrollments.get_enrollment(uuid, enrollment_uuid, account))

    @api.patch(prefix + "/{enrollment_uuid}", dependencies=[only_query()])
    @connected
    def update_enrollment_progress(uuid: PathUuid, enrollment_uuid: PathUuid,
                                   body: ProgressUpdate, account: Caller, idem: Keyed):
        return keyed(idem, account, lambda: enrollments.update_enrollment_progress(
            uuid, enrollment_uuid, body.model_dump(), account))

    @api.post(prefix + "/{enrollment_uuid}/assessment-attempts", dependencies=[only_query()])
    @connected
    def create_attempt(uuid: PathUuid, enrollment_uuid: PathUuid, body: AttemptCreate,
                       account: Caller, idem: Keyed):
        return keyed(idem, account, lambda: attempts.create_attempt(
            uuid, enrollment_uuid, body.model_dump(), account))

    @api.exception_handler(ApiError)
    async def on_api_error(_request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @api.exception_handler(RequestValidationError)
    async def on_invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0]
        place = "/".join(str(part) for part in first["loc"])
        return error_response(422, "validation_error", f"{place}: {first['msg']}")

    @api.exception_handler(HTTPException)
    async def on_http(_request, exc: HTTPException):
        cls = BY_STATUS.get(exc.status_code)
        code = cls.code if cls else "internal_error"
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    @api.exception_handler(IntegrityError)
    async def on_integrity(_request, _exc):
        return error_response(409, "conflict", "The change conflicts with the current state; retry")

    return api


class ApiErrors:
    """Answers ApiErrors raised by the outer middleware (the 413s of BodyLimit) with the
    envelope; Connexion does this for certapi in its exception middleware."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        try:
            await self.app(scope, receive, send)
        except ApiError as exc:
            await error_response(exc.status, exc.code, exc.message, exc.headers)(scope, receive, send)


def create_app(settings: Settings | None = None):
    settings = settings or Settings()
    configure_logging()
    init_database(settings.database_url)
    auth.configure(settings.key_cache_seconds)
    LAYER.ttl = idempotency.Idempotency(settings.idempotency_ttl_hours).ttl
    app: Any = ApiErrors(BodyLimit(build_api(), max_bytes=settings.max_body_bytes))
    if settings.rate_limit > 0:  # where certapi.ratelimit.install puts it: inside the request log
        storage = ratelimit.storage_for(settings.database_url, settings.rate_limit_storage)
        app = ratelimit.RateLimit(app, ratelimit.Limiter(storage, settings.rate_limit))
    if os.environ.get("CERTAPI_WEBHOOK_BACKGROUND", "1").strip() != "0":
        # As certapi.server.served_app: every worker stands by, one leader sends and scans.
        from certapi.webhooks import background
        background.start()
    # Requests are counted and timed as in certapi (the same recorder, fed by the same
    # request log); the reference serves no /metrics, which no bench run scrapes.
    return RequestLog(app, record=metrics.Recorder() if settings.metrics else None)
