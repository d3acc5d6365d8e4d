"""Okta (OpenID Connect) configuration actions: the guide's GetAccountWithOpenIdConfig,
UpdateAccountWithOpenIdConfig and DeleteAccountWithOpenIdConfig (FullAccess only).

* ``GET /accounts/{accountId}/openid-config`` → 200 ``{"Account": <Account>,
  "OpenIdConfig": {"IssuerUri", "ClientId"}}``; 404 NotFoundException when the account has
  no configuration. The client secret is never returned.
* ``PUT /accounts/{accountId}/openid-config`` with ``{"IssuerUri", "ClientId",
  "ClientSecret"}`` (ClientSecret may be left out to keep the stored one) → 200 with the same
  shape as GET. 400 BadRequestException when the issuer's discovery document does not
  answer or names another issuer; 403 ForbiddenException for a team account; 409
  ConflictException when Active Directory is connected. Connecting makes the account
  EnterpriseOIDC.
* ``DELETE /accounts/{accountId}/openid-config`` → 204; Okta sign-in stops, the Okta
  directory (SCIM, tiers) stays connected.

The rules live in the engine's Okta room (:mod:`bridge.engine.openid_configs`); this
module only translates.
"""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.api.shapes import account_shape
from bridge.engine.openid_configs import OpenIdConfigs, OpenIdConfigView

PATH = "/accounts/<accountId>/openid-config"
_CONFIG = {"type": "object", "properties": {
    "IssuerUri": {"type": "string"}, "ClientId": {"type": "string"}}}
_RESPONSE = {"type": "object", "properties": {
    "Account": {"type": "object"}, "OpenIdConfig": _CONFIG}}


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
                                       "ClientSecret": {"type": "string", "maxLength": 1024}}},
        response_schema=_RESPONSE)
def update_openid_config(ctx: ActionContext) -> dict[str, Any]:
    body = ctx.body()
    view = ctx.mutate(_service(ctx).update, ctx.account_id,
                      issuer_uri=body.get("IssuerUri"), client_id=body.get("ClientId"),
                      client_secret=body.get("ClientSecret"))
    return _shape(ctx, view)


@action("DeleteAccountWithOpenIdConfig", "DELETE", PATH, status=204, openapi=True,
        summary="Remove the Okta OpenID Connect configuration")
def delete_openid_config(ctx: ActionContext) -> None:
    ctx.mutate(_service(ctx).delete, ctx.account_id)
