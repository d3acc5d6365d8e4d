"""Okta (OpenID Connect) configuration actions: the guide's GetAccountWithOpenIdConfig,
UpdateAccountWithOpenIdConfig and DeleteAccountWithOpenIdConfig (FullAccess only).

* ``GET /accounts/{accountId}/openid-config`` → 200 ``{"Account": <Account>,
  "OpenIdConfig": {"IssuerUri", "ClientId"}}``; 404 NotFoundException when the account has
  no configuration. The client secret is never returned.
* ``PUT /accounts/{accountId}/openid-config`` with ``{"IssuerUri", "ClientId",
  "ClientSecret"}`` (ClientSecret may be left out to keep the stored one) → 200 with the same
  shape as GET. 400 BadRequestException when the issuer's discovery document does not
  answer or names another issuer; 403 ForbiddenException for a team account; 409
  ConflictException when Active Directory is connected, or when Okta is not connected yet
  and the body lacks ``"ConnectOkta": true`` (the message says what connecting changes).
  Connecting makes the account EnterpriseOIDC; that answer carries ``Connection`` (what
  changed).
* ``GET /accounts/{accountId}/openid-config/connection-preview`` → 200
  ``{"Connection": {...}}``: what connecting would change, before it happens (``null`` when
  Okta is connected).
* ``DELETE /accounts/{accountId}/openid-config`` → 204; Okta sign-in stops. While a SCIM key
  remains the Okta directory (SCIM, tiers) stays connected; without one the account returns
  to console management (EnterpriseLWA), every user kept with their current tier.

The rules live in the engine's Okta room (:mod:`bridge.engine.openid_configs`); this
module only translates.
"""

from __future__ import annotations

from typing import Any

from bridge.api.api_keys import CONNECTION, connect_flag
from bridge.api.framework import ActionContext, action
from bridge.api.shapes import account_shape
from bridge.domain.connect import CONFIRM_MEMBER
from bridge.engine.openid_configs import OpenIdConfigs, OpenIdConfigView

PATH = "/accounts/<accountId>/openid-config"
_CONFIG = {"type": "object", "properties": {
    "IssuerUri": {"type": "string"}, "ClientId": {"type": "string"}}}
_RESPONSE_PROPERTIES: dict[str, Any] = {"Account": {"type": "object"}, "OpenIdConfig": _CONFIG}
_RESPONSE = {"type": "object", "properties": _RESPONSE_PROPERTIES}


def _service(ctx: ActionContext) -> OpenIdConfigs:
    # The engine's room; changes and refusals are audited by the unit of work.
    return ctx.engine.openid_configs


def _shape(ctx: ActionContext, view: OpenIdConfigView) -> dict[str, Any]:
    account = ctx.engine.get_account(ctx.account_id)
    return {"Account": account_shape(account, ctx.aws_account_id),
            "OpenIdConfig": view.as_json()}


@action("GetAccountWithOpenIdConfig", "GET", PATH, openapi=True,
        summary="The account and its Okta OpenID Connect configuration (no secret)",
        response_schema=_RESPONSE)
def get_openid_config(ctx: ActionContext) -> dict[str, Any]:
    return _shape(ctx, _service(ctx).get(ctx.account_id))


@action("UpdateAccountWithOpenIdConfig", "PUT", PATH, openapi=True,
        summary="Connect Okta: store the issuer, client id and (sealed) client secret",
        request_schema={"type": "object", "required": ["IssuerUri", "ClientId"],
                        "properties": {"IssuerUri": {"type": "string", "maxLength": 512},
                                       "ClientId": {"type": "string", "maxLength": 256},
                                       "ClientSecret": {"type": "string", "maxLength": 1024},
                                       CONFIRM_MEMBER: {"type": "boolean"}}},
        response_schema={"type": "object", "properties": {**_RESPONSE_PROPERTIES,
                                                          "Connection": CONNECTION}})
def update_openid_config(ctx: ActionContext) -> dict[str, Any]:
    body = ctx.body()
    view = ctx.mutate(_service(ctx).update, ctx.account_id,
                      issuer_uri=body.get("IssuerUri"), client_id=body.get("ClientId"),
                      client_secret=body.get("ClientSecret"), connect=connect_flag(body))
    shape = _shape(ctx, view)
    if view.connected is not None:
        shape["Connection"] = view.connected.as_json()
    return shape


@action("PreviewOktaConnection", "GET", PATH + "/connection-preview",
        iam_action="GetAccountWithOpenIdConfig", openapi=True,
        summary="What connecting Okta would change, before it happens (null when connected)",
        response_schema={"type": "object", "properties": {
            "Connection": {**CONNECTION, "type": ["object", "null"]}}})
def preview_okta_connection(ctx: ActionContext) -> dict[str, Any]:
    plan = ctx.engine.okta_connect_plan(ctx.account_id)
    return {"Connection": plan.as_json() if plan is not None else None}


@action("DeleteAccountWithOpenIdConfig", "DELETE", PATH, status=204, openapi=True,
        summary="Remove the Okta OpenID Connect configuration")
def delete_openid_config(ctx: ActionContext) -> None:
    ctx.mutate(_service(ctx).delete, ctx.account_id)
