"""HTTP routes for sessions: ``GET /auth/session``, ``POST /auth/logout`` and the session
signing keys at ``GET /.well-known/jwks.json``.

Wire contract:

* ``GET /auth/session`` with the ``bridge_session`` cookie or ``Authorization: Bearer <jwt>``
  → 200 ``{"user": {"id", "email"}, "account": {"id", "type"} | null, "tier": "pro" |
  "basic", "expires": "<RFC 3339 UTC>"}``; 401 ``{"error": "unauthenticated", "message"}``
  with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 section 3) when there is
  no session or it was ended, expired or revoked (LogoutUser, suspension, ...).
* ``POST /auth/logout`` → 204, the cookie cleared; the current session (cookie or bearer) is
  ended for good. Idempotent: without a valid session it still answers 204.
* ``GET /.well-known/jwks.json`` → 200 JWKS (RFC 7517 section 5) of the ES256 public keys
  that may have signed a live session.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, request

from bridge.errors import Unauthenticated
from bridge.services import Services
from bridge.sessions import clear_session_cookie, install, request_token, session_manager

blueprint = Blueprint("bridge_sessions", __name__)


def register(app: Flask, services: Services) -> None:
    """Install the SessionManager and the routes on ``app``."""
    install(app, services)
    app.register_blueprint(blueprint)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/auth/session")
def get_session() -> tuple[Response, int]:
    token = request_token(request)
    try:
        if token is None:
            raise Unauthenticated("No session: sign in first.")
        info = session_manager().verify(token)
    except Unauthenticated as exc:
        response = jsonify({"error": "unauthenticated", "message": exc.message})
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return _no_store(response), 401
    return _no_store(jsonify(info.as_json())), 200


@blueprint.post("/auth/logout")
def logout() -> tuple[Response, int]:
    token = request_token(request)
    if token is not None:
        session_manager().end(token)
    response = Response(status=204)
    if request.cookies.get("bridge_session"):
        clear_session_cookie(response)
    return _no_store(response), 204


@blueprint.get("/.well-known/jwks.json")
def jwks() -> tuple[Response, int]:
    response = jsonify(session_manager().public_jwks())
    # Short: a rotation must reach verifiers well within a session's lifetime.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response, 200
