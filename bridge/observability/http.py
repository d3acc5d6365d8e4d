"""The app's request hooks (request id, log context, request metrics), ``/readyz`` and
``/metrics``: one place for what every request gets, whatever its door.

- Every request gets an id: a trusted proxy's ``X-Request-Id`` (only when
  ``BRIDGE_TRUSTED_PROXY_COUNT`` > 0, and only a plain token), else a fresh UUID4. It is
  returned as ``X-Request-Id``, set on every log line of the request and used as the
  ``requestID`` of its audit events (:func:`bridge.audit.event_row`).
- Every answer is counted by door, operation and status class with its latency. Operations
  are bounded sets taken from the code (admin action names, route templates, SCIM resource
  names), never from free text a client sends.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request

from bridge.logs import safe_path
from bridge.observability import context, metrics
from bridge.store.db import migration_state

log = logging.getLogger(__name__)
# One line per answered request, with the request's context (the access log of the JSON
# format; gunicorn's own access lines carry no request id).
access_log = logging.getLogger("bridge.request")

REQUEST_ID_HEADER = "X-Request-Id"
METRICS_PATH = "/metrics"
_DOORS = {"admin_api": "admin", "scim": "scim", "oidc": "oidc", "ad_sign_in": "ad",
          "bridge_sessions": "session"}
_SCIM_RESOURCES = {"Users", "Groups", "ServiceProviderConfig", "Schemas", "ResourceTypes",
                   "Bulk", "Me", ".search"}
_SCIM_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_SCIM_PATH = re.compile(r"^/scim/v2/([^/]+)(/[^/]+)?")


def door_of(blueprint: str | None, path: str) -> str:
    """The door a request belongs to (admin, scim, oidc, ad, session, health, other)."""
    if blueprint in _DOORS:
        return _DOORS[blueprint]
    if path.startswith("/scim/"):
        return "scim"
    if path in ("/healthz", "/readyz"):
        return "health"
    return "other"


def _scim_resource(path: str) -> tuple[str, bool]:
    match = _SCIM_PATH.match(path)
    if not match:
        return "root", False
    name = match.group(1)
    return (name if name in _SCIM_RESOURCES else "other"), match.group(2) is not None


def operation_of(door: str) -> str:
    """The request's operation, from a bounded set (see the module docstring)."""
    method = request.method
    if door == "scim":
        resource, by_id = _scim_resource(request.path)
        return f"{method} {resource}{'/{id}' if by_id else ''}"
    rule = request.url_rule.rule if request.url_rule is not None else None
    if rule is None:
        return "unmatched"
    if door == "admin":
        # The admin door routes by (method, rule, ?operation=) and names the action once
        # it matched one it registered (context.note_operation): a client cannot invent
        # label values, and this module imports no door.
        ctx = context.current()
        return ctx.operation if ctx is not None and ctx.operation else f"{method} {rule}"
    return f"{method} {rule}"


def _before() -> None:
    if request.path == METRICS_PATH:
        return
    settings = _settings()
    ctx = context.RequestContext(
        request_id=context.new_request_id(request.headers.get(REQUEST_ID_HEADER),
                                          settings.trusted_proxy_count > 0),
        door=door_of(request.blueprint, request.path))
    g.bridge_request = (ctx, context.begin(ctx), time.perf_counter())


def _after(response: Response) -> Response:
    started = g.get("bridge_request")
    if started is None:
        return response
    ctx, _token, t0 = started
    response.headers[REQUEST_ID_HEADER] = ctx.request_id
    seconds = time.perf_counter() - t0
    try:
        _count(ctx, response, seconds)
    except Exception:  # metrics must never turn an answer into a failure
        log.exception("could not record request metrics")
    access_log.info("%s %s %s %.1fms", request.method, safe_path(request.path),
                    response.status_code, seconds * 1000)
    return response


def _count(ctx: context.RequestContext, response: Response, seconds: float) -> None:
    operation = operation_of(ctx.door)
    status = response.status_code
    metrics.REQUESTS.labels(ctx.door, operation, metrics.status_class(status)).inc()
    metrics.REQUEST_SECONDS.labels(ctx.door, operation).observe(seconds)
    if status == 429:
        metrics.THROTTLED.labels(ctx.door, _error_code(response)).inc()
    if ctx.door == "scim" and request.method in _SCIM_WRITES and status < 300:
        resource, _ = _scim_resource(request.path)
        metrics.SCIM_WRITES.labels(resource, request.method,
                                   metrics.client_kind(request.user_agent.string)).inc()


def _error_code(response: Response) -> str:
    """The door's error code of a 429 (admin: x-amzn-ErrorType; others: the JSON body's
    ``error``); a bounded set written by our own code."""
    code = response.headers.get("x-amzn-ErrorType", "").split(":")[0]
    if not code and response.is_json:
        body = response.get_json(silent=True)
        code = str(body.get("error", "")) if isinstance(body, dict) else ""
    return code if re.fullmatch(r"[A-Za-z_]{1,64}", code or "") else "other"


# This module's entry in ``app.extensions``: the services it was installed with.
EXTENSION = "bridge.observability"


def _teardown(_exc: BaseException | None) -> None:
    started = g.pop("bridge_request", None)
    if started is not None:
        context.end(started[1])


def _services() -> Any:
    """The services this module was installed with (:func:`install`)."""
    return current_app.extensions[EXTENSION]


def _settings() -> Any:
    return _services().settings


def readyz() -> tuple[Response, int]:
    """200 when the database answers and its schema is at the code's migration head; 503
    with the reason otherwise (details of a connection failure go to the log only)."""
    try:
        state = migration_state(_services().db)
    except Exception:
        log.exception("readiness check: database unreachable")
        return jsonify({"status": "error", "reason": "database unreachable"}), 503
    if not state.at_head:
        return jsonify({"status": "error",
                        "reason": "database migrations are not at head: run bridge db upgrade",
                        "database": list(state.current), "expected": list(state.heads)}), 503
    return jsonify({"status": "ok"}), 200


def metrics_view() -> Response:
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


def install(app: Flask, services: Any, *, serve_metrics: bool) -> None:
    """Register the hooks and ``/readyz`` (with ``services``: settings and database);
    ``/metrics`` too when ``serve_metrics`` (metrics on the main port,
    ``BRIDGE_METRICS_PORT`` = 0)."""
    app.extensions[EXTENSION] = services
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)
    app.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])
    if serve_metrics:
        app.add_url_rule(METRICS_PATH, "metrics", metrics_view, methods=["GET"])
