"""The Accounts page (ListAccounts: Account name and type, search by name) and New account
(CreateAccount): the guide's "On the Accounts page, choose New account. For Account Name,
type a name for the account and choose Create account"."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from bridge.browser import form_post
from bridge.console.access import current_admin, signed_in
from bridge.console.state import bp, console_state
from bridge.engine.results import AccountView
from bridge.errors import AccessDenied, BridgeError

PAGE_SIZE = 50


def _visible_page(name: str | None, after: str | None) -> tuple[list[AccountView], str | None]:
    """One page of the accounts the admin may list (ListAccounts filtered per account, as
    the API does), and the cursor of the next page."""
    admin = current_admin()
    engine = console_state().services.engine
    everywhere = admin.can_everywhere("ListAccounts")
    found: list[AccountView] = []
    cursor = after
    while len(found) <= PAGE_SIZE:
        # Only the accounts the admin's organisation owns or was delegated.
        batch = engine.list_accounts(name_prefix=name, after_id=cursor, limit=PAGE_SIZE + 1,
                                     organisation=admin.organisation)
        for view in batch:
            admin.note_visible(view)
        found.extend(a for a in batch if everywhere or admin.can("ListAccounts", a.id))
        if len(batch) <= PAGE_SIZE:
            break
        cursor = batch[-1].id
    more = found[PAGE_SIZE - 1].id if len(found) > PAGE_SIZE else None
    return found[:PAGE_SIZE], more


@bp.get("/accounts")
@signed_in
def accounts() -> Any:
    admin = current_admin()
    name = (request.args.get("name") or "").strip()[:100] or None
    after = request.args.get("after") or None
    page, more = admin.read("ListAccounts", None, _visible_page, name, after,
                            params={"name": name}, filtered=True)
    return render_template("console/accounts.html", accounts=page, more=more, name=name or "")


@bp.get("/accounts/new")
@signed_in
def new_account() -> Any:
    current_admin().require("CreateAccount")
    return render_template("console/new_account.html", error=None, name="")


@bp.post("/accounts/new")
@form_post
@signed_in
def create_account() -> Any:
    admin = current_admin()
    name = request.form.get("name", "")
    engine = console_state().services.engine
    try:  # the engine validates the name; its refusal is the CreateAccount event
        view = admin.perform("CreateAccount", None, engine.create_account, name,
                             params={"name": name})
    except BridgeError as exc:
        if isinstance(exc, AccessDenied):
            raise
        return render_template("console/new_account.html", error=exc.message, name=name), 400
    flash(f"Account {view.name} created.", "success")
    return redirect(url_for("console.users", account_id=view.id))
