"""An account's Users page (ListUsers: search by email, paged on the server) and the
User actions of the guide."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from bridge.console.access import current_admin, signed_in
from bridge.console.state import ACCOUNT_PAGES, bp, console_state
from bridge.engine.results import AccountView, UserView

PAGE_SIZE = 50
ACCOUNT_PAGES.append(("console.users", "Users", None))


def account_for_page(account_id: str) -> AccountView:
    """The account a page is about (GetAccount under the admin's policies; not audited on
    its own: the page's action is)."""
    admin = current_admin()
    admin.require("GetAccount", account_id)
    return console_state().services.engine.get_account(account_id)


def _page(account_id: str, email: str | None, after: str | None) -> list[UserView]:
    return console_state().services.engine.list_users(account_id, email=email,
                                                      after_id=after, limit=PAGE_SIZE + 1)


@bp.get("/accounts/<account_id>/users")
@signed_in
def users(account_id: str) -> Any:
    admin = current_admin()
    account = account_for_page(account_id)
    raw = (request.args.get("email") or "").strip()
    # A whole address matches the primary address or an alias; anything else is a prefix
    # of the primary address (the store's rule).
    email = raw.lower() or None
    after = request.args.get("after") or None
    found = admin.read("ListUsers", account_id, _page, account_id, email, after,
                       params={"accountId": account_id, "userEmail": email})
    more = found[PAGE_SIZE - 1].id if len(found) > PAGE_SIZE else None
    return render_template("console/users.html", account=account, users=found[:PAGE_SIZE],
                           more=more, email=raw, page="console.users")
