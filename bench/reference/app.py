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
  its logging set-up; responses serialised with the stdlib json, compactly, as certapi's
  jsonifier does, and not validated (certapi validates responses only in tests).
Sync endpoints run on FastAPI's thread pool, as Peewee (a sync ORM) calls for.

Serve: gunicorn -k uvicorn_worker.UvicornWorker 'bench.reference.app:create_app()'
"""
import functools
import json
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from peewee import IntegrityError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from certapi import auth
from certapi.app import configure_logging
from certapi.config import Settings
from certapi.errors import BY_STATUS, ApiError, Unauthorized, ValidationFailed, envelope
from certapi.middleware import BodyLimit, RequestLog
from certapi.spec import UUID_PATTERN
from handlers import attempts, enrollments, health
from models import database
from models.db import init_database

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
                                              "partnership_uuid")])
    @connected
    def list_enrollments(
        uuid: PathUuid, account: Caller,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=100)] = 25,
        status: Literal["enrolled", "in_progress", "completed", "failed"] | None = None,
        user_uuid: QueryUuid = None, partnership_uuid: QueryUuid = None,
    ):
        return reply(enrollments.list_enrollments(
            uuid, page, per_page, account, status=status, user_uuid=user_uuid,
            partnership_uuid=partnership_uuid, format="json"))

    @api.post(prefix, dependencies=[only_query()])
    @connected
    def create_enrollment(uuid: PathUuid, body: EnrollmentCreate, account: Caller):
        return reply(enrollments.create_enrollment(
            uuid, body.model_dump(exclude_unset=True), account))

    @api.get(prefix + "/{enrollment_uuid}", dependencies=[only_query()])
    @connected
    def get_enrollment(uuid: PathUuid, enrollment_uuid: PathUuid, account: Caller):
        return reply(enrollments.get_enrollment(uuid, enrollment_uuid, account))

    @api.patch(prefix + "/{enrollment_uuid}", dependencies=[only_query()])
    @connected
    def update_enrollment_progress(uuid: PathUuid, enrollment_uuid: PathUuid,
                                   body: ProgressUpdate, account: Caller):
        return reply(enrollments.update_enrollment_progress(
            uuid, enrollment_uuid, body.model_dump(), account))

    @api.post(prefix + "/{enrollment_uuid}/assessment-attempts", dependencies=[only_query()])
    @connected
    def create_attempt(uuid: PathUuid, enrollment_uuid: PathUuid, body: AttemptCreate,
                       account: Caller):
        return reply(attempts.create_attempt(uuid, enrollment_uuid, body.model_dump(), account))

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
    return RequestLog(ApiErrors(BodyLimit(build_api(), max_bytes=settings.max_body_bytes)))
