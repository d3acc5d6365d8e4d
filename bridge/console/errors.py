"""The console's one error table: bridge errors → HTTP status and a page in words.

Views that can recover (a refused action) flash the message and go back to the page;
anything they let through is rendered here. Client errors are logged at INFO; anything
unexpected at ERROR with its traceback, and the page never shows one.
"""

from __future__ import annotations

import logging

from flask import Response, render_template

from bridge import errors
from bridge.console.state import bp

log = logging.getLogger("bridge.console")

STATUS: dict[type[errors.BridgeError], int] = {
    errors.ValidationError: 400,
    errors.Unauthenticated: 401,
    errors.AccessDenied: 403,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.StaleVersion: 409,
    errors.PayloadTooLarge: 413,
    errors.RateLimited: 429,
    errors.UpstreamUnavailable: 503,
}


def status_of(error: errors.BridgeError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


@bp.errorhandler(errors.BridgeError)
def bridge_error(error: errors.BridgeError) -> tuple[str, int]:
    status = status_of(error)
    log.info("console refused: %s %s", error.code, error.message)
    return render_template("console/error.html", status=status, message=error.message,
                           code=error.code), status


@bp.errorhandler(Exception)
def unexpected(error: Exception) -> tuple[str, int] | Response:
    from werkzeug.exceptions import HTTPException

    if isinstance(error, HTTPException):
        return error.get_response()  # type: ignore[return-value]
    log.exception("console page failed")
    return render_template("console/error.html", status=500, code="InternalError",
                           message="Something went wrong on our side; nothing you did "
                                   "caused it. Try again; if it keeps happening, tell "
                                   "the bridge's operators."), 500


def routing_error_page(status: int) -> Response:
    """The page of an unknown console path (404) or a wrong method on one (405), for the
    composition root's routing-error handler (no blueprint handler sees those)."""
    message = ("There is no console page at this address." if status == 404
               else "This page does not accept that kind of request.")
    body = render_template("console/error.html", status=status, message=message,
                           code="NotFound" if status == 404 else "MethodNotAllowed")
    return Response(body, status=status, mimetype="text/html")


def bad_address_page(message: str) -> Response:
    """The page of a console address the service refuses to read (400: a NUL in its path
    or query string), for the composition root's handler of that error."""
    body = render_template("console/error.html", status=400, message=message,
                           code="BadRequest")
    return Response(body, status=400, mimetype="text/html")
