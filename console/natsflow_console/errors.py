"""natsflow errors as HTTP replies: ``{"error": {"code", "message", "details"?}}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from natsflow_engine.api.client import ApiError
from natsflow_engine.errors import (
    BpmnValidationError,
    ConflictError,
    ConnectionFailedError,
    NatsflowError,
    NotFoundError,
    PayloadTooLargeError,
)

__all__ = ["BadRequest", "error_response", "from_exception"]


class BadRequest(NatsflowError):
    """A console request with a bad parameter (HTTP 400)."""


_API_STATUS = {"invalid": 400, "forbidden": 403, "unsupported": 501, "too_large": 413}


def error_response(status: int, code: str, message: str, details: Any = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


def from_exception(exc: Exception) -> web.Response:
    """The reply for an error raised while serving a request."""
    if isinstance(exc, BpmnValidationError):
        issues = [{"element_id": i.element_id, "line": i.line, "message": i.message} for i in exc.errors]
        return error_response(422, "invalid", str(exc), issues)
    if isinstance(exc, BadRequest):
        return error_response(400, "invalid", str(exc))
    if isinstance(exc, NotFoundError):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, ConflictError):
        return error_response(409, "conflict", str(exc))
    if isinstance(exc, PayloadTooLargeError):
        return error_response(413, "too_large", str(exc))
    if isinstance(exc, ConnectionFailedError):
        return error_response(503, "unavailable", str(exc))
    if isinstance(exc, ApiError):
        return error_response(_API_STATUS.get(exc.code, 502), exc.code, str(exc))
    raise exc
