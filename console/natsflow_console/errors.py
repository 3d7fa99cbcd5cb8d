"""natsflow errors as HTTP replies: ``{"error": {"code", "message", "details"?}}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from natsflow_engine.errors import ApiError, BpmnValidationError, NatsflowError
from natsflow_engine.errors import InvalidInputError as BadRequest

__all__ = ["BadRequest", "error_response", "from_exception"]

_STATUS = {
    "invalid": 400,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "unsupported": 501,
    "unavailable": 503,
}
"""HTTP status by error category (the first part of a natsflow error code)."""


def error_response(status: int, code: str, message: str, details: Any = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


def from_exception(exc: Exception) -> web.Response:
    """The reply for an error raised while serving a request: the status of its category."""
    if isinstance(exc, BpmnValidationError):
        issues = [{"element_id": i.element_id, "line": i.line, "message": i.message} for i in exc.errors]
        return error_response(422, "invalid", str(exc), issues)
    if isinstance(exc, ApiError):
        return error_response(_STATUS.get(exc.code.split(".")[0], 502), exc.code, str(exc))
    if isinstance(exc, NatsflowError):
        category = exc.api_code.split(".")[0]
        if category in _STATUS:
            return error_response(_STATUS[category], category, str(exc))
    raise exc
