"""The SCIM door's one error table: bridge errors and HTTP errors → RFC 7644 section 3.12
error bodies.

Every error the door returns — 401 and 404 included — is ``application/scim+json`` with the
Error schema, ``status`` as a *string* and a ``detail`` for the administrator (Okta's parser
crashes on plain text). Client errors are logged at INFO; anything else at ERROR with its
traceback, and its body never carries the traceback.
"""

from __future__ import annotations

import json
import logging

from flask import Response
from werkzeug.exceptions import HTTPException

from bridge.domain.search import InvalidFilter
from bridge.errors import (
    AccessDenied,
    BridgeError,
    Conflict,
    Forbidden,
    InvalidJson,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StaleVersion,
    Unauthenticated,
    UpstreamUnavailable,
    ValidationError,
)
from scim.schemas import ERROR

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/scim+json"


class ScimError(Exception):
    """An error the door itself detects (bad JSON, a bad PATCH path, ...).

    ``scim_type`` is one of RFC 7644 table 9 (invalidFilter, tooMany, uniqueness, mutability,
    invalidSyntax, invalidPath, noTarget, invalidValue, invalidVers, sensitive) or None.
    """

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def invalid_syntax(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidSyntax")


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidPath")


# Ordered: the first class an error is an instance of wins (InvalidFilter before
# ValidationError).
TABLE: tuple[tuple[type[BridgeError], int, str | None], ...] = (
    (InvalidFilter, 400, "invalidFilter"),
    (InvalidJson, 400, "invalidSyntax"),
    (ValidationError, 400, "invalidValue"),
    (Unauthenticated, 401, None),
    (AccessDenied, 403, None),
    (Forbidden, 403, None),
    (NotFound, 404, None),
    (Conflict, 409, "uniqueness"),
    (StaleVersion, 412, None),
    (PayloadTooLarge, 413, None),
    (RateLimited, 429, None),
    (UpstreamUnavailable, 503, None),
)


def from_bridge(error: BridgeError) -> ScimError:
    for cls, status, scim_type in TABLE:
        if isinstance(error, cls):
            return ScimError(status, error.message, scim_type)
    return ScimError(500, "The request could not be completed.", None)


def from_http(error: HTTPException) -> ScimError:
    status = error.code or 500
    if status == 413:
        return ScimError(413, "The request body is larger than the service accepts.")
    if status == 405:
        return ScimError(405, "The method is not supported on this endpoint.")
    if status == 404:
        return ScimError(404, "No SCIM endpoint or resource at this address.")
    return ScimError(status, error.description or error.name,
                     "invalidSyntax" if status == 400 else None)


def body(error: ScimError) -> dict[str, object]:
    doc: dict[str, object] = {"schemas": [ERROR], "status": str(error.status),
                              "detail": error.detail}
    if error.scim_type:
        doc["scimType"] = error.scim_type
    return doc


def response(error: ScimError) -> Response:
    """The HTTP response of ``error``; 401 carries the Bearer challenge (RFC 6750)."""
    if error.status >= 500 and error.status != 501:
        log.error("SCIM request failed: %s", error.detail)
    else:
        log.info("SCIM client error %s: %s", error.status, error.detail)
    resp = Response(json.dumps(body(error)), status=error.status, mimetype=CONTENT_TYPE)
    if error.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="scim"'
    return resp
