"""An account's **Settings, Policies**: remote control in meetings and the call me feature
("dial-out"): GetAccountSettings and UpdateAccountSettings, as the admin API."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from bridge.browser import form_post
from bridge.console.access import current_admin, signed_in
from bridge.console.state import ACCOUNT_PAGES, bp, console_state
from bridge.console.users import account_for_page
from bridge.engine.results import AccountSettingsView, AccountView

ACCOUNT_PAGES.append(("console.policies", "Policies", "Settings"))


def _policies(account_id: str) -> tuple[AccountView, AccountSettingsView]:
    engine = console_state().services.engine
    return account_for_page(account_id), engine.get_account_settings(account_id)


@bp.get("/accounts/<account_id>/settings/policies")
@signed_in
def policies(account_id: str) -> Any:
    admin = current_admin()
    account, settings = admin.read("GetAccountSettings", account_id, _policies, account_id,
                                   params={"accountId": account_id})
    return render_template("console/policies.html", account=account, settings=settings,
                           page="console.policies",
                           can_update=admin.can("UpdateAccountSettings", account_id))


@bp.post("/accounts/<account_id>/settings/policies")
@form_post
@signed_in
def update_policies(account_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    # Unchecked boxes are absent from a form post: the form always carries both settings.
    remote = request.form.get("remote_control") == "on"
    call_me = request.form.get("call_me") == "on"
    admin.perform("UpdateAccountSettings", account_id, engine.update_account_settings,
                  account_id, remote_control_enabled=remote, call_me_enabled=call_me,
                  params={"accountId": account_id, "DisableRemoteControl": not remote,
                          "EnableDialOut": call_me})
    flash("Policies saved.", "success")
    return redirect(url_for("console.policies", account_id=account_id))
