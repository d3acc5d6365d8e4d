"""The directory registry (the guide's AuthorizeDirectory, UnauthorizeDirectory and
ListDirectories) at ``/directories``: Active Directories the organisation (the admins' AWS
account id) makes available once, for its accounts to connect to by id.

* ``POST /directories`` with ``{"Name", "LdapUrl", "StartTls", "BindDn", "BindPassword",
  "CaCertificatePem", "TlsServerName"}`` binds once as the service account (400
  BadRequestException with the LDAP error in words when it cannot) → 201
  ``{"Directory": {"DirectoryId": "d-…", …}}``; 409 when the same URL and service account
  are already registered (the message names the id).
* ``PUT /directories/{directoryId}`` (UpdateAuthorizedDirectory, IAM action
  AuthorizeDirectory) with the same body replaces that directory's settings (a rotated
  service-account password, a renewed CA) after the same bind check → 200; every account
  connected to it uses them from its next bind.
* ``GET /directories`` → ``{"Directories": [...]}`` with each one's ``Health`` (the last
  bind's outcome: ``Healthy``, ``Failing`` with its message, ``Unknown``) and
  ``ConnectedAccountIds``.
* ``DELETE /directories/{directoryId}`` → 204; 409 ConflictException naming the accounts
  still connected to it; 404 for an id the organisation did not register.

The bind password is sealed at rest and never returned or audited. Accounts connect with
``PUT /accounts/{accountId}/directory`` and ``{"DirectoryId", "BaseDn", ...}``
(:mod:`bridge.api.directory`).
"""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.errors import UpstreamUnavailable

_STR = {"type": "string"}
_OPT = {"type": ["string", "null"]}
_REGISTRATION = {"type": "object", "required": ["LdapUrl", "BindDn", "BindPassword"],
                 "properties": {
                     "Name": _STR, "LdapUrl": _STR, "StartTls": {"type": "boolean"},
                     "BindDn": _STR, "BindPassword": {"type": "string", "writeOnly": True},
                     "CaCertificatePem": _STR, "TlsServerName": _STR}}
_REGISTERED = {"type": "object", "properties": {
    "DirectoryId": _STR, "Name": _STR, "LdapUrl": _STR, "StartTls": {"type": "boolean"},
    "BindDn": _STR, "HasCaCertificate": {"type": "boolean"}, "TlsServerName": _OPT,
    "DefaultNamingContext": _OPT, "CreatedTimestamp": _STR,
    "Health": {"type": "object", "properties": {
        "Status": {"type": "string", "enum": ["Healthy", "Failing", "Unknown"]},
        "CheckedTimestamp": _OPT, "Message": _OPT}},
    "ConnectedAccountIds": {"type": "array", "items": _STR}}}


@action("AuthorizeDirectory", "POST", "/directories", status=201, openapi=True,
        summary="Register an Active Directory for the organisation's accounts (binds once)",
        request_schema=_REGISTRATION,
        response_schema={"type": "object", "properties": {"Directory": _REGISTERED}})
def authorize_directory(ctx: ActionContext) -> dict[str, Any]:
    return _authorize(ctx, directory_id=None)


@action("UpdateAuthorizedDirectory", "PUT", "/directories/<directoryId>",
        iam_action="AuthorizeDirectory", openapi=True,
        summary="Replace a registered directory's settings (binds once to check them)",
        request_schema=_REGISTRATION,
        response_schema={"type": "object", "properties": {"Directory": _REGISTERED}})
def update_authorized_directory(ctx: ActionContext) -> dict[str, Any]:
    return _authorize(ctx, directory_id=ctx.path["directoryId"])


def _authorize(ctx: ActionContext, *, directory_id: str | None) -> dict[str, Any]:
    """Register (``directory_id`` None) or replace a directory, after the AD door's bind
    check of the settings."""
    verify = ctx.state.verify_directory_bind
    if verify is None:
        raise UpstreamUnavailable("The Active Directory door is not installed.")
    view = ctx.mutate(ctx.engine.directory_registry.authorize, ctx.aws_account_id,
                      ctx.body(), verify, directory_id=directory_id)
    return {"Directory": view.as_json()}


@action("ListDirectories", "GET", "/directories", openapi=True,
        summary="The organisation's registered Active Directories, with their health",
        response_schema={"type": "object", "properties": {
            "Directories": {"type": "array", "items": _REGISTERED}}})
def list_directories(ctx: ActionContext) -> dict[str, Any]:
    views = ctx.engine.directory_registry.list_directories(ctx.aws_account_id)
    return {"Directories": [view.as_json() for view in views]}


@action("UnauthorizeDirectory", "DELETE", "/directories/<directoryId>", status=204,
        openapi=True,
        summary="Remove a registered Active Directory (refused while accounts use it)")
def unauthorize_directory(ctx: ActionContext) -> None:
    ctx.mutate(ctx.engine.directory_registry.unauthorize, ctx.aws_account_id,
               ctx.path["directoryId"])
