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
``{"Directories": [...]}`` without it, each with the last sync run and dry run
(``LastSync``, ``LastDryRun``: when, full or incremental, outcome, counts, the users
refused and why, some of the users a run suspends or would suspend).

POST ``/accounts/<accountId>/directory/syncs`` (SyncDirectory, an extension: FullAccess)
``{"DryRun": bool, "Full": bool, "AllowMassChange": bool, "MassChangeMaxUsers": int}``
starts a run of the AD sync: a dry run reports what it would change and applies nothing;
``AllowMassChange`` applies a run the mass-change limit stopped, and ``MassChangeMaxUsers``
(optional) bounds it: a run that would now suspend more users stops all the same (the
count the stopped run showed, which the console's Apply the mass change sends). It
answers 202 ``{"Sync": {...}}``: the run's report when it finished within a moment
(``State`` ``done``), else ``State`` ``running`` (the report then shows in
GetAccountDirectory). 409 while another run of the directory is under way; 429 while the
server already runs ``ad_sync_now_max_runs`` of them (all accounts); 404 without a
directory; 503 when the AD door is not installed.
"""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.errors import UpstreamUnavailable, ValidationError

_STR = {"type": "string"}
_DIRECTORY = {"type": "object", "properties": {
    "AccountId": _STR, "DirectoryId": {"type": ["string", "null"]}, "LdapUrl": _STR,
    "StartTls": {"type": "boolean"}, "BaseDn": _STR,
    "BindDn": _STR, "HasCaCertificate": {"type": "boolean"}, "TlsServerName": _STR,
    "UserFilter": _STR, "GroupBaseDn": _STR, "CreatedTimestamp": _STR,
    "LastSyncTimestamp": _STR, "LastFullSyncTimestamp": _STR, "LastSyncStatus": _STR,
    "Watermark": {"type": "object"}, "LastSync": {"type": ["object", "null"]},
    "LastDryRun": {"type": ["object", "null"]}}}
_FLAG = {"type": "boolean"}
_MAX_USERS = 10_000_000  # MassChangeMaxUsers' bound (far above any directory)


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
    if view is None:
        return {"Directories": []}
    reports = ctx.engine.ad_sync_runs.reports(ctx.account_id, ctx.state.directory_syncs)
    return {"Directories": [{**view.as_json(), **reports.as_json()}]}


@action("DisconnectDirectory", "DELETE", "/accounts/<accountId>/directory", status=204,
        openapi=True, summary="Disconnect the account's Active Directory")
def disconnect_directory(ctx: ActionContext) -> None:
    ctx.mutate(ctx.engine.ad_directories.disconnect, ctx.account_id)


@action("SyncDirectory", "POST", "/accounts/<accountId>/directory/syncs", status=202,
        openapi=True, summary="Run the account's Active Directory sync now, or preview it "
                              "(DryRun: nothing applied)",
        request_schema={"type": "object", "properties": {
            "DryRun": _FLAG, "Full": _FLAG, "AllowMassChange": _FLAG,
            "MassChangeMaxUsers": {"type": "integer", "minimum": 0,
                                   "maximum": _MAX_USERS}}},
        response_schema={"type": "object", "properties": {"Sync": {"type": "object"}}})
def sync_directory(ctx: ActionContext) -> dict[str, Any]:
    syncs = ctx.state.directory_syncs
    if syncs is None:
        raise UpstreamUnavailable("The Active Directory door is not installed.")
    body = ctx.body()
    flags = {}
    for member, name in (("DryRun", "dry_run"), ("Full", "full"),
                         ("AllowMassChange", "allow_mass_change")):
        value = body.get(member, False)
        if not isinstance(value, bool):
            raise ValidationError(f"{member} must be true or false.", field=member)
        flags[name] = value
    cap = body.get("MassChangeMaxUsers")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)
                            or not 0 <= cap <= _MAX_USERS):
        raise ValidationError(f"MassChangeMaxUsers must be a whole number from 0 to "
                              f"{_MAX_USERS}.", field="MassChangeMaxUsers")
    started = ctx.audited_call(ctx.engine.ad_sync_runs.start, ctx.account_id, syncs,
                               mass_change_max=cap, **flags)
    reports = ctx.engine.ad_sync_runs.reports(ctx.account_id, syncs)
    last = reports.last_dry_run if flags["dry_run"] else reports.last_run
    if started.finished and last is not None and last.run_id == started.run_id:
        return {"Sync": last.as_json()}
    return {"Sync": {"RunId": started.run_id, "DryRun": flags["dry_run"],
                     "State": "running", "InProgress": True}}
