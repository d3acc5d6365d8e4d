"""The home page end users land on: ``GET /`` and ``POST /sign-out``.

* ``GET /`` with a session that still stands (the ``bridge_session`` cookie): who the person
  is (name when known, address), their account (name and type, or none for an unmanaged
  user), their current tier, when the session ends, and a sign-out button. Without a
  session, or with one that was ended, expired or revoked: the sign-in form (the email
  address, as ``GET /auth/login``), and a dead cookie is cleared.
* ``POST /sign-out`` (the home page's form; CSRF and same-origin checked by
  :func:`bridge.browser.form_post`): ends the session (audited ``SignOut``), clears the
  cookie, 303 to ``/`` which says "You are signed out".

``/`` is the default ``BRIDGE_POST_LOGIN_URL``: every successful sign-in lands here.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, current_app, flash, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from bridge.browser import form_post
from bridge.errors import NotFound, Unauthenticated
from bridge.pages import render
from bridge.services import Services
from bridge.sessions import (
    SESSION_COOKIE,
    SessionInfo,
    clear_session_cookie,
    session_manager,
)

log = logging.getLogger(__name__)
EXTENSION = "bridge.home"
SIGN_OUT_PATH = "/sign-out"
blueprint = Blueprint("home", __name__)

_ACCOUNT_TYPES = {"Team": "team account", "EnterpriseLWA": "enterprise account",
                  "EnterpriseDirectory": "enterprise account, Active Directory",
                  "EnterpriseOIDC": "enterprise account, Okta"}


def register(app: Flask, services_: Services) -> None:
    """Install ``/`` and the sign-out form's route (the composition root, once)."""
    app.extensions[EXTENSION] = services_
    app.register_blueprint(blueprint)


def _services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found


def _current_session() -> SessionInfo | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return session_manager().verify(token)
    except Unauthenticated:
        return None


@blueprint.get("/")
def home() -> BaseResponse:
    info = _current_session()
    if info is None:
        response = render("sign_in.html")
        if request.cookies.get(SESSION_COOKIE):
            # Ended, expired or revoked: the browser need not send it again.
            clear_session_cookie(response)
        return response
    engine = _services().engine
    account = name = None
    if info.account_id is not None:
        try:
            account = engine.get_account(info.account_id)
            name = engine.get_user(info.account_id, info.user_id).display_name
        except NotFound:  # removed between the session check and now: show what we know
            log.info("home page: account or user gone since the session check")
    return render("home.html", session=info, account=account, name=name,
                  account_type=_ACCOUNT_TYPES.get(info.account_type or "",
                                                  info.account_type or ""),
                  tier={"pro": "Pro", "basic": "Basic"}.get(info.tier or "", "None"),
                  expires=info.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
                  sign_out_path=SIGN_OUT_PATH)


@blueprint.post(SIGN_OUT_PATH)
@form_post
def sign_out() -> BaseResponse:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        session_manager().end(token)  # audited as SignOut by the session's own user
    flash("You are signed out.")
    response = redirect("/", code=303)
    response.headers["Cache-Control"] = "no-store"
    return clear_session_cookie(response)
