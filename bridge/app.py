"""Composition root: the one place that builds the engine and wires the doors in."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, jsonify
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

from bridge.crypto import SecretBox, load_or_create_key
from bridge.engine import ResolutionEngine
from bridge.http_input import BoundedRequest, refuse_unstorable_urls
from bridge.store.db import make_engine, make_session_factory, ping
from config import Settings

log = logging.getLogger(__name__)
EXTENSION = "bridge"


@dataclass
class Services:
    """What the doors get from the composition root."""

    settings: Settings
    db: Engine
    sessions: sessionmaker[Session]
    engine: ResolutionEngine
    secrets: SecretBox


def build_services(settings: Settings, **engine_kwargs: Any) -> Services:
    """Build the store, the engine and the secret box from settings (no HTTP)."""
    db = make_engine(settings.effective_database_url)
    sessions = make_session_factory(db)
    return Services(
        settings=settings,
        db=db,
        sessions=sessions,
        engine=ResolutionEngine(sessions, **engine_kwargs),
        secrets=SecretBox(load_or_create_key(settings)),
    )


def services() -> Services:
    """The services of the current Flask app (for use inside a request)."""
    found: Services = current_app.extensions[EXTENSION]
    return found


def create_app(settings: Settings, services_: Services | None = None) -> Flask:
    """The Flask application: health check plus every door's routes.

    The database schema must already be migrated (``bridge db upgrade``).
    """
    app = Flask("bridge")
    # Streamed (chunked) bodies past the limit are refused, not cut (bridge.http_input).
    app.request_class = BoundedRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.before_request(refuse_unstorable_urls)
    if settings.trusted_proxy_count:
        # The client address and scheme as the trusted proxies saw them (the last N hops
        # of X-Forwarded-For/-Proto; anything a client put before them is ignored). Host
        # is not taken from the proxy: admin API signatures cover the Host header as sent.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxy_count,
            x_proto=settings.trusted_proxy_count, x_host=0, x_port=0, x_prefix=0)
    app.extensions[EXTENSION] = services_ or build_services(settings)
    # Request ids, log context, request metrics, /readyz and /metrics (docs/monitoring.md).
    from bridge import observability

    observability.install(app, app.extensions[EXTENSION])
    # Browser pages and forms: CSRF tokens, the same-origin check, the security headers.
    from bridge.browser import install as install_browser

    install_browser(app, app.extensions[EXTENSION])
    # The admin door (imported here: bridge.api itself imports this module).
    from bridge.api import register_admin_api

    register_admin_api(app, app.extensions[EXTENSION])
    # Sessions (/auth/session, /auth/logout, /.well-known/jwks.json) and the OIDC door.
    from bridge.session_routes import register as register_sessions
    from oidc import register as register_oidc

    register_sessions(app, app.extensions[EXTENSION])
    register_oidc(app, app.extensions[EXTENSION])
    # The AD door: sign-in with directory passwords, and ConnectDirectory's bind check.
    from ad_sync import register as register_ad

    register_ad(app, app.extensions[EXTENSION])
    # The SCIM door (/scim/v2) and its API key service.
    from scim import register as register_scim

    register_scim(app, app.extensions[EXTENSION])

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        try:
            ping(services().db)
        except Exception:  # the reason goes to the log, not to the caller
            log.exception("health check: database unreachable")
            return jsonify({"status": "error", "database": "unreachable"}), 503
        return jsonify({"status": "ok"}), 200

    _register_routing_errors(app)
    return app


def _register_routing_errors(app: Flask) -> None:
    """Unknown paths and wrong methods answer in the protocol of the door the path belongs
    to (blueprint handlers never see routing errors: no blueprint matched)."""
    import uuid

    from flask import request
    from werkzeug.exceptions import MethodNotAllowed, NotFound

    from bridge import errors as bridge_errors
    from bridge.api.errors import error_response
    from bridge.http_input import UnstorableUrl
    from scim import errors as scim_errors

    def routing_error(error: NotFound | MethodNotAllowed) -> Response:
        if request.path.startswith("/scim/"):
            return scim_errors.response(scim_errors.from_http(error))
        if request.path.startswith(("/auth/", "/.well-known/")):
            response = jsonify({"error": "not_found" if error.code == 404
                                else "method_not_allowed", "message": error.description})
            response.status_code = error.code or 404
            return response
        # Everything else is the admin API's URL space: the AWS rest-json error shape.
        message = (f"No operation at {request.method} {request.path}."
                   if error.code == 405 else f"No resource or operation at {request.path}.")
        failure = (bridge_errors.NotFound(message) if error.code == 404
                   else bridge_errors.ValidationError(message))
        return error_response(failure, str(uuid.uuid4()))

    def unstorable_url(error: UnstorableUrl) -> Response:
        # Same doors by path as the routing errors (the SCIM blueprint answers its own).
        if request.path.startswith("/scim/"):
            return scim_errors.response(scim_errors.from_http(error))
        if not request.path.startswith(("/auth/", "/.well-known/", "/invitations/")):
            return error_response(bridge_errors.ValidationError(error.description or ""),
                                  str(uuid.uuid4()))
        response = jsonify({"error": "invalid_request", "message": error.description})
        response.status_code = 400
        return response

    app.register_error_handler(NotFound, routing_error)
    app.register_error_handler(MethodNotAllowed, routing_error)
    app.register_error_handler(UnstorableUrl, unstorable_url)
