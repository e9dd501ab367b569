"""The error envelope and the exceptions that produce it.

Every error leaves the service as ``{"error": {"code": ..., "message": ...}}`` with a
JSON content type; the codes are the contract's, listed in openapi.yaml's Error schema.
"""
import json


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(ApiError):
    status, code = 422, "validation_error"


BY_STATUS = {cls.status: cls for cls in ApiError.__subclasses__()}


def envelope(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def envelope_bytes(code: str, message: str) -> bytes:
    return json.dumps(envelope(code, message), separators=(",", ":")).encode()
