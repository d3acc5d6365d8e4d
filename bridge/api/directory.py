"""Active Directory connection actions (the guide's ConnectDirectory, ListDirectories,
DisconnectDirectory) at ``/accounts/<accountId>/directory``.

PUT body: either inline settings ``{"LdapUrl": "ldaps://dc.example.com:636" | "ldap://...",
"StartTls": bool, "BaseDn", "BindDn", "BindPassword", "CaCertificatePem", "TlsServerName",
"UserFilter", "GroupBaseDn"}``, or a registered directory's id (AuthorizeDirectory,
:mod:`bridge.api.directory_registry`) with the account's own scope ``{"DirectoryId",
"BaseDn", "GroupBaseDn", "UserFilter"}`` (404 for an id the organisation did not
register; 400 when inline settings come with it). PUT binds once with those settings and
refuses (400 BadRequestException, the LDAP error in words) a directory it cannot reach,
verify (TLS) or bind to, or whose BaseDn it cannot read; only enterprise accounts (403); the
account becomes EnterpriseDirectory. The bind password is sealed at rest and never
returned: GET (GetAccountDirectory, IAM action ListDirectories) answers
``{"Directories": [...]}`` without it.
"""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.errors import UpstreamUnavailable

_STR = {"type": "string"}
_DIRECTORY = {"type": "object", "properties": {
    "AccountId": _STR, "DirectoryId": {"type": ["string", "null"]}, "LdapUrl": _STR,
    "StartTls": {"type": "boolean"}, "BaseDn": _STR,
    "BindDn": _STR, "HasCaCertificate": {"type": "boolean"}, "TlsServerName": _STR,
    "UserFilter": _STR, "GroupBaseDn": _STR, "CreatedTimestamp": _STR,
    "LastSyncTimestamp": _STR, "LastFullSyncTimestamp": _STR, "LastSyncStatus": _STR,
    "Watermark": {"type": "object"}}}


@action("ConnectDirectory", "PUT", "/accounts/<accountId>/directory", openapi=True,
        summary="Connect the account's Active Directory (binds once to check it)",
        request_schema={"type": "object", "required": ["BaseDn"],
                        "description": "Either DirectoryId (a registered directory) or "
                                       "LdapUrl, BindDn and BindPassword.",
                        "properties": {
                            "DirectoryId": _STR, "LdapUrl": _STR,
                            "StartTls": {"type": "boolean"}, "BaseDn": _STR,
                            "BindDn": _STR, "BindPassword": {"type": "string",
                                                             "writeOnly": True},
                            "CaCertificatePem": _STR, "TlsServerName": _STR,
                            "UserFilter": _STR, "GroupBaseDn": _STR}},
        response_schema={"type": "object", "properties": {"Directory": _DIRECTORY}})
def connect_directory(ctx: ActionContext) -> dict[str, Any]:
    verify = ctx.state.verify_directory
    if verify is None:
        raise UpstreamUnavailable("The Active Directory door is not installed.")
    view = ctx.mutate(ctx.engine.ad_directories.connect, ctx.account_id, ctx.body(), verify,
                      organisation=ctx.aws_account_id)
    return {"Directory": view.as_json()}


@action("GetAccountDirectory", "GET", "/accounts/<accountId>/directory",
        iam_action="ListDirectories", openapi=True,
        summary="The account's Active Directory connection (no password)",
        response_schema={"type": "object", "properties": {
            "Directories": {"type": "array", "items": _DIRECTORY}}})
def list_directories(ctx: ActionContext) -> dict[str, Any]:
    ctx.engine.get_account(ctx.account_id)  # NotFound for an unknown account
    view = ctx.engine.ad_directories.get(ctx.account_id)
    return {"Directories": [view.as_json()] if view is not None else []}


@action("DisconnectDirectory", "DELETE", "/accounts/<accountId>/directory", status=204,
        openapi=True, summary="Disconnect the account's Active Directory")
def disconnect_directory(ctx: ActionContext) -> None:
    ctx.mutate(ctx.engine.ad_directories.disconnect, ctx.account_id)
