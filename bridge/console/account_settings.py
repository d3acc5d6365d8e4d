"""An account's **Settings, Account**: the account's facts and **Account actions**:
**Rename account** (RenameAccount) and **Delete account** (DeleteAccount) after typing the
account's name, under the signed-in admin's policies, audited once with the console as the
source."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from bridge.browser import form_post
from bridge.console.access import current_admin, signed_in
from bridge.console.state import ACCOUNT_PAGES, bp, console_state
from bridge.console.users import account_for_page
from bridge.engine.results import AccountView
from bridge.errors import BridgeError

ACCOUNT_PAGES.append(("console.account_settings", "Account", "Settings"))


def _account_page(account: AccountView, *, rename_error: str | None = None,
                  confirm_delete: bool = False, delete_error: str | None = None,
                  status: int = 200) -> tuple[str, int]:
    admin = current_admin()
    domains = console_state().services.engine.list_domains(account.id)
    return render_template(
        "console/account_settings.html", account=account, page="console.account_settings",
        domains=domains, can_rename=admin.can("RenameAccount", account.id),
        can_delete=admin.can("DeleteAccount", account.id),
        rename=request.args.get("rename") == "1" or rename_error is not None,
        rename_error=rename_error, confirm_delete=confirm_delete,
        delete_error=delete_error), status


@bp.get("/accounts/<account_id>/settings/account")
@signed_in
def account_settings(account_id: str) -> Any:
    account = current_admin().read("GetAccount", account_id, account_for_page, account_id,
                                   params={"accountId": account_id})
    return _account_page(account, confirm_delete=request.args.get("delete") == "1")


@bp.post("/accounts/<account_id>/settings/account/rename")
@form_post
@signed_in
def rename_account(account_id: str) -> Any:
    admin = current_admin()
    name = request.form.get("name", "")
    engine = console_state().services.engine
    try:  # the engine validates the name; its refusal is the RenameAccount event
        view = admin.perform("RenameAccount", account_id, engine.rename_account, account_id,
                             name, params={"accountId": account_id, "name": name})
    except BridgeError as exc:
        if exc.code in {"AccessDenied", "NotFound"}:
            raise
        return _account_page(engine.get_account(account_id), rename_error=exc.message,
                             status=400)
    flash(f"The account is now named {view.name}.", "success")
    return redirect(url_for("console.account_settings", account_id=account_id))


@bp.post("/accounts/<account_id>/settings/account/delete")
@form_post
@signed_in
def delete_account(account_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    account = engine.get_account(account_id)
    if request.form.get("confirm_name", "").strip() != account.name:
        return _account_page(account, confirm_delete=True, status=400, delete_error=(
            "Type the account's name exactly to confirm that it is to be deleted."))
    try:
        admin.perform("DeleteAccount", account_id, engine.delete_account, account_id,
                      params={"accountId": account_id})
    except BridgeError as exc:
        if exc.code in {"AccessDenied", "NotFound"}:
            raise
        return _account_page(account, confirm_delete=True, delete_error=exc.message,
                             status=409)
    flash(f"Account {account.name} and all its users were deleted.", "success")
    return redirect(url_for("console.accounts"))
