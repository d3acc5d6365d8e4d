"""Composition root: the one place that builds the services and wires the doors in.

It imports every door; no door imports it (the layers contract in ``pyproject.toml``).
``Services`` and ``build_services`` live in :mod:`bridge.services` and are re-exported
here for the CLI and tests."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.middleware.proxy_fix import ProxyFix

from ad_sync import client as ad_client
from ad_sync import signin as ad_signin
from ad_sync.background import BackgroundSyncs
from bridge import browser, home, pages, session_routes
from bridge.api.console_credentials import ConsoleCredentials
from bridge.api.setup import register_admin_api
from bridge.console import setup as console_setup
from bridge.http_input import BoundedRequest, refuse_unstorable_urls
from bridge.observability import setup as observability_setup
from bridge.services import Services, build_services
from bridge.store.db import ping
from config import Settings
from oidc import views as oidc_views
from scim import views as scim_views

log = logging.getLogger(__name__)
# The composition root's own entry in ``app.extensions`` (the Services it built, for tests
# and the CLI). Doors never read it: each receives what it needs when it is registered.
EXTENSION = "bridge"
# The AD door's runs on request, for the serving entry point to stop them at shutdown
# (bridge.serve.build_app).
SYNCS_EXTENSION = "bridge.directory_syncs"


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
    svc = services_ or build_services(settings)
    app.extensions[EXTENSION] = svc
    # Request ids, log context, request metrics, /readyz and /metrics (docs/monitoring.md).
    observability_setup.install(app, svc)
    # Browser pages and forms: CSRF tokens, the same-origin check, the security headers.
    browser.install(app, svc)
    # The end-user pages' templates and stylesheet, and the home page `/`.
    pages.install(app)
    home.register(app, svc)
    # The admin door, with the AD door's bind checks for ConnectDirectory (settings and
    # BaseDn) and AuthorizeDirectory (the service account).
    allow_insecure = settings.allow_insecure_ldap

    def verify_directory(cfg: Any) -> None:
        ad_client.verify_connection(cfg, allow_insecure=allow_insecure)

    # The AD door's runs on request (SyncDirectory, the console's Sync now): background
    # threads under the directory's sync lock, the request waiting at most a moment.
    directory_syncs = BackgroundSyncs(svc, wait_seconds=settings.ad_sync_now_wait_seconds,
                                      max_runs=settings.ad_sync_now_max_runs)
    app.extensions[SYNCS_EXTENSION] = directory_syncs
    register_admin_api(app, svc, verify_directory=verify_directory,
                       verify_directory_bind=lambda target:
                       ad_client.verify_bind(target, allow_insecure=allow_insecure),
                       directory_syncs=directory_syncs)
    # The administration console (/console): the admin API's actions and policies in a
    # browser, signed in with the admins' console passwords.
    console_setup.register(app, svc, credentials=ConsoleCredentials(
        svc.engine.uow, svc.secrets, clock=svc.engine.now), verify_directory=verify_directory,
        directory_syncs=directory_syncs)
    # Sessions (/auth/session, /auth/logout, /.well-known/jwks.json) and the OIDC door.
    session_routes.register(app, svc)
    # An Active Directory account's address goes on to the AD door's password form.
    oidc_views.register(app, svc, directory_sign_in_path=ad_signin.FORM_PATH)
    # The AD door: sign-in with directory passwords.
    ad_signin.register(app, svc)
    # The SCIM door (/scim/v2).
    scim_views.register(app, svc)

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        try:
            ping(svc.db)
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
    from bridge.console import errors as console_errors
    from bridge.http_input import UnstorableUrl
    from scim import errors as scim_errors

    def routing_error(error: NotFound | MethodNotAllowed) -> Response:
        if request.path == "/console" or request.path.startswith("/console/"):
            return console_errors.routing_error_page(error.code or 404)
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
        if request.path == "/console" or request.path.startswith("/console/"):
            return console_errors.bad_address_page(error.description or "")
        if not request.path.startswith(("/auth/", "/.well-known/", "/invitations/")):
            return error_response(bridge_errors.ValidationError(error.description or ""),
                                  str(uuid.uuid4()))
        response = jsonify({"error": "invalid_request", "message": error.description})
        response.status_code = 400
        return response

    app.register_error_handler(NotFound, routing_error)
    app.register_error_handler(MethodNotAllowed, routing_error)
    app.register_error_handler(UnstorableUrl, unstorable_url)


__all__ = ["EXTENSION", "Services", "build_services", "create_app"]
