"""An account's **Settings, Okta single-sign on configuration**: the configuration (issuer
and client ID, never the client secret); **Set up incoming keys** (**Issuer**, **Client ID**,
**Client secret**); the SCIM access keys with their creation and last use, **Create access
key** (the key shown once, with a copy button) and **Delete** per key; deleting the
configuration.

Connecting Okta is explicit (issue 16): while the account is console-managed, the forms that
would connect it show the engine's plan (:func:`bridge.domain.connect.okta_connect_plan`, in
the console's words) and ask for a confirmation box; without it the engine refuses
(ConfirmationRequired) and nothing changes. Deleting the last key, or the configuration when
no key remains, says beforehand that the account returns to console management.

Actions: GetAccountWithOpenIdConfig (the page, with the connection preview, as the admin
API's preview is authorized as that action), ListApiKeys, UpdateAccountWithOpenIdConfig,
DeleteAccountWithOpenIdConfig, CreateApiKey, DeleteApiKey.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import flash, make_response, redirect, render_template, request, url_for

from bridge.browser import form_post
from bridge.console.access import current_admin, signed_in
from bridge.console.errors import status_of
from bridge.console.state import ACCOUNT_PAGES, PAGE_ACTIONS, bp, console_state
from bridge.console.users import account_for_page
from bridge.domain import Actor
from bridge.domain.connect import ConnectPlan
from bridge.engine.api_keys import ApiKeyView, NewApiKey
from bridge.engine.openid_configs import OpenIdConfigView
from bridge.engine.results import AccountView
from bridge.errors import BridgeError, NotFound

ACCOUNT_PAGES.append(("console.okta", "Okta single-sign on configuration", "Settings"))
PAGE_ACTIONS["console.okta"] = "GetAccountWithOpenIdConfig"  # FullAccess only (the guide)

# Errors a form shows in words next to its fields; others (AccessDenied, NotFound) go to
# the console's error pages.
_SHOWN = {"ValidationError", "Conflict", "ConfirmationRequired", "Forbidden"}


@dataclass(frozen=True)
class _Okta:
    """The page's reading: the account, its configuration (None when absent), and what
    connecting Okta would change (None when connected) or why it cannot be connected."""

    account: AccountView
    config: OpenIdConfigView | None
    plan: ConnectPlan | None
    unavailable: str | None


def _read(account_id: str) -> _Okta:
    engine = console_state().services.engine
    account = account_for_page(account_id)
    try:
        config: OpenIdConfigView | None = engine.openid_configs.get(account_id)
    except NotFound:
        config = None
    plan, unavailable = None, None
    try:
        plan = engine.okta_connect_plan(account_id)
    except BridgeError as exc:  # not enterprise, or Active Directory connected
        if exc.code == "NotFound":
            raise
        unavailable = exc.message
    return _Okta(account, config, plan, unavailable)


def _page(account_id: str, *, setup: bool = False, setup_error: str | None = None,
          create_error: str | None = None, new_key: str | None = None,
          status: int = 200) -> Any:
    admin = current_admin()
    params = {"accountId": account_id}
    okta = admin.read("GetAccountWithOpenIdConfig", account_id, _read, account_id,
                      params=params)
    engine = console_state().services.engine
    keys: list[ApiKeyView] = admin.read("ListApiKeys", account_id, engine.api_keys.list,
                                        account_id, params=params)
    delete_key = request.args.get("delete_key", "")[:64]
    body = render_template(
        "console/okta.html", account=okta.account, config=okta.config, plan=okta.plan,
        unavailable=okta.unavailable, keys=keys, page="console.okta",
        can_update=admin.can("UpdateAccountWithOpenIdConfig", account_id),
        can_delete_config=admin.can("DeleteAccountWithOpenIdConfig", account_id),
        can_create_key=admin.can("CreateApiKey", account_id),
        can_delete_key=admin.can("DeleteApiKey", account_id),
        setup=setup or setup_error is not None, setup_error=setup_error,
        create_key=request.args.get("create_key") == "1" or create_error is not None,
        create_error=create_error, new_key=new_key,
        deleting_key=next((k for k in keys if k.key_id == delete_key), None),
        delete_config=request.args.get("delete_config") == "1")
    response = make_response(body, status)
    if new_key is not None:  # the only copy of the key: never cached
        response.headers["Cache-Control"] = "no-store"
    return response


def _back(account_id: str) -> Any:
    return redirect(url_for("console.okta", account_id=account_id))


@bp.get("/accounts/<account_id>/settings/okta")
@signed_in
def okta(account_id: str) -> Any:
    return _page(account_id, setup=request.args.get("setup") == "1")


@bp.post("/accounts/<account_id>/settings/okta")
@form_post
@signed_in
def set_up_incoming_keys(account_id: str) -> Any:
    """Set up incoming keys (UpdateAccountWithOpenIdConfig). An empty Client secret keeps
    the stored one; the confirmation box connects Okta when the account is not yet."""
    admin = current_admin()
    svc = console_state().services
    issuer = request.form.get("issuer", "").strip()
    client_id = request.form.get("client_id", "").strip()
    secret = request.form.get("client_secret", "") or None
    connect = request.form.get("connect_okta") == "on"
    # The secret is never part of what is recorded or shown.
    params = {"accountId": account_id, "issuerUri": issuer, "clientId": client_id,
              "connect": connect}

    def update(actor: Actor) -> OpenIdConfigView:
        view: OpenIdConfigView = svc.engine.openid_configs.update(
            actor, account_id, issuer_uri=issuer, client_id=client_id,
            client_secret=secret, connect=connect)
        return view

    try:
        view = admin.perform("UpdateAccountWithOpenIdConfig", account_id, update,
                             params=params)
    except BridgeError as exc:
        if exc.code not in _SHOWN:
            raise
        return _page(account_id, setup_error=exc.message, status=status_of(exc))
    if view.connected is not None:
        flash("Okta is connected: " + " ".join(view.connected.changes), "success")
    else:
        flash("The Okta configuration was saved.", "success")
    return _back(account_id)


@bp.post("/accounts/<account_id>/settings/okta/delete")
@form_post
@signed_in
def delete_okta_configuration(account_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    disconnected = admin.perform("DeleteAccountWithOpenIdConfig", account_id,
                                 engine.openid_configs.delete, account_id,
                                 params={"accountId": account_id})
    flash("The Okta configuration was deleted: Okta sign-in stopped."
          + (" The account is managed in this console again." if disconnected else ""),
          "success")
    return _back(account_id)


@bp.post("/accounts/<account_id>/settings/okta/keys")
@form_post
@signed_in
def create_access_key(account_id: str) -> Any:
    """Create access key (CreateApiKey): the page that answers shows the key, once."""
    admin = current_admin()
    engine = console_state().services.engine
    connect = request.form.get("connect_okta") == "on"
    # The page that shows the new key reads the configuration and the keys: refuse before
    # creating a key this admin could not be shown (its only copy would be lost).
    for read in ("GetAccountWithOpenIdConfig", "ListApiKeys"):
        admin.require(read, account_id, {"accountId": account_id})
    try:
        created: NewApiKey = admin.perform(
            "CreateApiKey", account_id, engine.api_keys.create, account_id, connect=connect,
            params={"accountId": account_id, "connect": connect})
    except BridgeError as exc:
        if exc.code not in _SHOWN:
            raise
        return _page(account_id, create_error=exc.message, status=status_of(exc))
    if created.connected is not None:
        flash("Okta is connected: " + " ".join(created.connected.changes), "success")
    return _page(account_id, new_key=created.key)


@bp.post("/accounts/<account_id>/settings/okta/keys/<key_id>/delete")
@form_post
@signed_in
def delete_access_key(account_id: str, key_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    admin.perform("DeleteApiKey", account_id, engine.api_keys.delete, account_id, key_id,
                  params={"accountId": account_id, "keyId": key_id})
    flash(f"The access key {key_id} was deleted: it no longer works.", "success")
    return _back(account_id)
