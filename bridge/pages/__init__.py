"""The pages end users meet: one look, one layout, one set of words.

Shared by every door that shows a person a page (the OIDC door's sign-in form and refusal
pages, the AD door's password form, the invitation page, the home page ``/``). It holds:

* the Jinja2 templates (``templates/pages/*.html``, Flask's own Jinja2) and the stylesheet
  the app serves itself (``static/pages.css`` at ``/pages/static/``; no CDN, no script);
* :func:`render`, the one way a door answers with a page (``Cache-Control: no-store``: the
  pages carry CSRF tokens and personal details);
* :mod:`bridge.pages.words`: what each refusal code means for the person and what they can
  do next.

Forms carry the CSRF token through Flask-WTF's ``csrf_token()`` template global (installed
by :func:`bridge.browser.install`); the security headers come from the same module.
This package imports no door and no engine: doors import it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, render_template

from bridge.pages.words import next_step

SIGN_IN_PATH = "/auth/login"
# Where the email form is sent (the OIDC door serves it: see oidc.views.login_from_form).
SIGN_IN_FORM_ACTION = "/auth/login/continue"

blueprint = Blueprint("pages", __name__, template_folder="templates",
                      static_folder="static", static_url_path="/pages/static")


def install(app: Flask) -> None:
    """Register the templates and the stylesheet on ``app`` (the composition root, once)."""
    app.register_blueprint(blueprint)
    app.jinja_env.globals.update(next_step=next_step, sign_in_path=SIGN_IN_PATH,
                                 sign_in_form_action=SIGN_IN_FORM_ACTION)


def render(template: str, *, status: int = 200, **context: Any) -> Response:
    """Render ``pages/<template>`` as an HTML answer with ``status``, never cached."""
    response = Response(render_template(f"pages/{template}", **context), status=status,
                        content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


def refusal_page(status: int, code: str, message: str, *, title: str | None = None,
                 back: str = SIGN_IN_PATH, back_label: str = "Back to sign-in",
                 **context: Any) -> Response:
    """A refusal the person reads: what happened (``message``), what to do next (the words
    for ``code``), the reason code (for the administrator), and a way back."""
    return render("refusal.html", status=status, title=title or _TITLES.get(
        status, "Sign-in failed"), message=message, code=code, back=back,
        back_label=back_label, **context)


_TITLES = {
    400: "The sign-in request is not valid",
    401: "The identity provider's answer was refused",
    403: "You cannot sign in",
    404: "Not found",
    410: "This link has been used or has expired",
    413: "The request is too large",
    429: "Too many attempts",
    502: "The identity provider is misconfigured",
    503: "Sign-in is unavailable right now",
}
