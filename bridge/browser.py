"""What every page and form the bridge shows a browser shares: CSRF tokens, the same-origin
check on form posts, and the security headers.

For a door (or the console to come) that serves an HTML form:

* render :func:`csrf_field` inside the ``<form>`` (a hidden ``csrf_token`` input);
* decorate the view that receives the post with :func:`form_post`.

:func:`form_post` refuses (403, a page saying why, or JSON for a JSON body) before the view
runs, so a refused post changes nothing, when:

1. the post does not come from the bridge's own pages: ``Origin`` (when it names one) must be
   the origin of ``BRIDGE_PUBLIC_URL``; when the browser sent ``Origin: null`` or none,
   ``Sec-Fetch-Site`` must say ``same-origin`` (our pages send ``Referrer-Policy:
   no-referrer``, under which browsers post ``Origin: null`` even from our own form), and
   failing both a ``Referer`` must be ours. A request with none of these headers is not from a
   browser and goes on to the token check;
2. the body is a form (what a cross-site page can send) and its ``csrf_token`` field (or
   ``X-CSRFToken`` header) is missing, expired (1 h) or not the one bound to this browser's
   ``bridge_csrf`` cookie (Flask-WTF's CSRFProtect; the cookie is Flask's signed session).
   A JSON body needs no token: a browser sends one cross-site only after a CORS preflight,
   which the bridge never grants;
3. a field of the form has a NUL character (400 ``invalid_form``: no store can hold it;
   JSON bodies are checked by :func:`bridge.bounds.parse_json`).

CSRF protection is applied only where :func:`form_post` is: the SigV4 admin API, SCIM (bearer)
and the JSON session endpoints are not browser forms and are never checked.

Headers: every answer gets ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy:
no-referrer`` (OIDC codes and invitation tokens travel in URLs; the policy also covers the
redirects after a sign-in); every HTML answer also a Content-Security-Policy without inline
script or style and ``X-Frame-Options: DENY`` for browsers without ``frame-ancestors``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Flask, Request, current_app, jsonify, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from bridge import pages
from bridge.bounds import storable_text
from bridge.services import Services
from config import Settings

log = logging.getLogger(__name__)
csrf = CSRFProtect()
CSRF_COOKIE = "bridge_csrf"
# This module's entry in ``app.extensions``: the settings it was installed with.
EXTENSION = "bridge.browser"

F = TypeVar("F", bound=Callable[..., Any])


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url`` (lower case, default ports dropped), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def content_security_policy(public_url: str, post_login_url: str) -> str:
    """The policy of every HTML answer. Forms post only to the bridge; a form post may end
    in a redirect to ``post_login_url`` (CSP checks ``form-action`` on redirects too), so its
    origin is allowed when it is another one."""
    form_action = ["'self'"]
    landing = origin_of(post_login_url)
    if landing is not None and landing != origin_of(public_url):
        form_action.append(landing)
    return ("default-src 'self'; base-uri 'none'; object-src 'none'; "
            f"frame-ancestors 'none'; form-action {' '.join(form_action)}")


class _LazyCookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building the cookie's signer for a request
    that sends no session cookie (every SCIM, admin API and OIDC request): Flask opens the
    session before each request, and building the signer cost ~10 µs (~2 % of a SCIM GET)
    (issue 12). The session is the same empty one Flask gives such a request; a cookie
    is still verified, and a session still written, with the signer as before."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def install(app: Flask, services_: Services) -> None:
    """Set up CSRF tokens (checked only by :func:`form_post`) and the header hook."""
    settings = services_.settings
    public = settings.effective_public_url
    app.config.update(
        # Shared by every worker and host: derived from the secret key setting.
        SECRET_KEY=services_.secrets.derive("flask session and csrf").hex(),
        WTF_CSRF_CHECK_DEFAULT=False,  # only the routes decorated with form_post
        # Flask-WTF's own HTTPS check wants a Referer, which no-referrer never sends;
        # _foreign_origin does that job with Origin and Sec-Fetch-Site.
        WTF_CSRF_SSL_STRICT=False,
        WTF_CSRF_TIME_LIMIT=3600,
        SESSION_COOKIE_NAME=CSRF_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=public.startswith("https://"),
    )
    app.session_interface = _LazyCookieSessions()
    app.extensions[EXTENSION] = settings
    csrf.init_app(app)
    app.after_request(_security_headers)


def _settings() -> Settings:
    # Read per request, not cached at start: the settings object is the one source.
    found: Settings = current_app.extensions[EXTENSION]
    return found


def _security_headers(response: BaseResponse) -> BaseResponse:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        settings = _settings()
        response.headers["Content-Security-Policy"] = content_security_policy(
            settings.effective_public_url, settings.post_login_url)
        response.headers["X-Frame-Options"] = "DENY"
    return response


def csrf_field() -> Markup:
    """The hidden input a form must carry (sets the ``bridge_csrf`` cookie if needed)."""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(generate_csrf())


def _foreign_origin(own: str | None) -> str | None:
    """Why the current request does not come from the bridge's pages, or None."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return None if origin_of(origin) == own else "the Origin header names another site"
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return None if site in {"same-origin", "none"} else f"Sec-Fetch-Site is {site}"
    if origin == "null":
        return "the Origin header is null and the browser did not say where the post came from"
    referer = request.headers.get("Referer")
    if referer and origin_of(referer) != own:
        return "the Referer names another site"
    return None


def refusal(status: int, code: str, message: str) -> BaseResponse:
    """A browser-door refusal: a page for forms (what happened, what to do next, a way
    back), ``{"error", "message"}`` for JSON."""
    response: BaseResponse
    if request.is_json:
        response = jsonify({"error": code, "message": message})
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        return response
    return pages.refusal_page(status, code, message, title="This form cannot be accepted",
                              back=_page_of_form(), back_label="Open the page again")


def _page_of_form() -> str:
    """Where the refused form can be opened again: the same path when it also answers
    GET (the AD sign-in, an invitation), else the home page."""
    try:
        current_app.url_map.bind("").match(request.path, method="GET")
    except HTTPException:
        return "/"
    return request.path


def form_post(view: F) -> F:
    """Decorate the view of a state-changing browser post (see the module docstring)."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        own = origin_of(_settings().effective_public_url)
        why = _foreign_origin(own)
        if why is not None:
            log.info("refused a cross-origin post to %s: %s", request.path, why)
            return refusal(403, "cross_site_request", "This form was not sent from this "
                           "service's own page, so it was not processed. Open the page "
                           "again and send it from there.")
        if not request.is_json:
            try:
                csrf.protect()
            except CSRFError as exc:
                log.info("refused a post to %s: %s", request.path, exc.description)
                return refusal(403, "invalid_form_token", "This form has expired or was "
                               "not sent from this service's own page, so it was not "
                               "processed. Reload the page and send it again.")
            except RequestEntityTooLarge:
                return refusal(413, "request_too_large", "The form sent more than this "
                               "service accepts, so it was not processed.")
            if not all(storable_text(name) and storable_text(value)
                       for name, value in request.form.items(multi=True)):
                # PostgreSQL refuses NUL in text: a 500 from the view's first query.
                log.info("refused a post to %s: a NUL character in a field", request.path)
                return refusal(400, "invalid_form", "A field of this form has a character "
                               "this service cannot store (NUL), so it was not processed.")
        return view(*args, **kwargs)

    return cast(F, checked)

