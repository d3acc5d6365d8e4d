"""The admin API's one error table: bridge errors → AWS rest-json errors.

The wire shape is what botocore's rest-json parser reads (and what the Chime model
declares): the status code of the exception shape, an ``x-amzn-ErrorType`` header naming
it, and a ``{"Code": ..., "Message": ...}`` body. A 500 never carries a traceback or the
exception text; the details go to the log with the request id.
"""

from __future__ import annotations

import json
import logging

from flask import Response

from bridge.errors import (
    AccessDenied,
    BridgeError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StaleVersion,
    Unauthenticated,
    UpstreamUnavailable,
    ValidationError,
)

log = logging.getLogger(__name__)


class ServiceFailure(BridgeError):
    """An unexpected failure inside the bridge (a bug or a broken dependency)."""

    code = "ServiceFailure"


# bridge error class → (exception shape name of the Chime model, HTTP status)
ERROR_TABLE: dict[type[BridgeError], tuple[str, int]] = {
    ValidationError: ("BadRequestException", 400),
    Unauthenticated: ("UnauthorizedClientException", 401),
    AccessDenied: ("ForbiddenException", 403),
    Forbidden: ("ForbiddenException", 403),
    NotFound: ("NotFoundException", 404),
    Conflict: ("ConflictException", 409),
    StaleVersion: ("ConflictException", 409),
    # The model has no 413 shape; this name follows the model's naming.
    PayloadTooLarge: ("RequestEntityTooLargeException", 413),
    RateLimited: ("ThrottledClientException", 429),
    ServiceFailure: ("ServiceFailureException", 500),
    UpstreamUnavailable: ("ServiceUnavailableException", 503),
}

# bridge error code → the model's ErrorCode enum (per-item errors of batch operations)
ITEM_ERROR_CODES: dict[str, str] = {
    "ValidationError": "BadRequest",
    "NotFound": "NotFound",
    "Conflict": "Conflict",
    "StaleVersion": "Conflict",
    "Forbidden": "Forbidden",
    "AccessDenied": "AccessDenied",
    "RateLimited": "Throttled",
    "UpstreamUnavailable": "ServiceUnavailable",
    "ServiceFailure": "ServiceFailure",
}

GENERIC_FAILURE = "The service failed to process the request; it was logged with its request id."


def wire_error(error: BridgeError) -> tuple[str, int]:
    """(exception name, status) for a bridge error (its nearest mapped base class)."""
    for cls in type(error).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[ServiceFailure]


def error_response(error: BridgeError, request_id: str) -> Response:
    """The AWS rest-json error response for ``error``."""
    name, status = wire_error(error)
    message = GENERIC_FAILURE if status == 500 else error.message
    body = json.dumps({"Code": name, "Message": message})
    response = Response(body, status=status, mimetype="application/json")
    response.headers["x-amzn-ErrorType"] = name
    response.headers["x-amzn-RequestId"] = request_id
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
