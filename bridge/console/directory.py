"""An account's **Settings, Active directory**: **Connect to your Active Directory** (LDAP
URL, BaseDn, bind DN and password, CA certificate, GroupBaseDn, user filter — or a directory
the organisation registered, by its Cloud directory ID), the bind check's result in words
when it fails, the connection (never the password) and **Disconnect** with confirmation;
**Directory groups**: the mapped groups (**Group**, **Permission tier**), **Add a new
group** (**Pro** / **Basic**) and **Delete** per group; **Sync**: the last sync run and
the last dry run in words (when, full or incremental, outcome, counts, the users refused
and why, some of the users it suspends or would suspend), **Preview (dry run)** and
**Sync now** (a run in the background: the page says while it is in progress), and a run
the mass-change limit stopped shown with what it would have done and **Apply the mass
change** after its confirmation.

Actions: ListDirectories (the page; the admin API's GetAccountDirectory), ListGroups,
ConnectDirectory, DisconnectDirectory, AddOrUpdateGroups, DeleteGroups, SyncDirectory.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from bridge.browser import form_post
from bridge.console.access import current_admin, signed_in
from bridge.console.errors import status_of
from bridge.console.state import ACCOUNT_PAGES, bp, console_state
from bridge.console.users import account_for_page
from bridge.domain import Actor, Tier
from bridge.engine.ad_directories import DirectoryView
from bridge.engine.ad_sync_runs import StartedSync, SyncReports
from bridge.engine.results import AccountView, GroupMappingView
from bridge.errors import BridgeError, UpstreamUnavailable, ValidationError

ACCOUNT_PAGES.append(("console.directory", "Active directory", "Settings"))

_SHOWN = {"ValidationError", "Conflict", "Forbidden", "UpstreamUnavailable"}
# Form field -> ConnectDirectory member (the admin API's names).
_FIELDS = {"directory_id": "DirectoryId", "ldap_url": "LdapUrl", "base_dn": "BaseDn",
           "bind_dn": "BindDn", "bind_password": "BindPassword",
           "ca_certificate": "CaCertificatePem", "tls_server_name": "TlsServerName",
           "group_base_dn": "GroupBaseDn", "user_filter": "UserFilter"}
_TIERS = {"Pro": Tier.PRO, "Basic": Tier.BASIC}


def _read(account_id: str) -> tuple[AccountView, DirectoryView | None, SyncReports]:
    state = console_state()
    engine = state.services.engine
    return (account_for_page(account_id), engine.ad_directories.get(account_id),
            engine.ad_sync_runs.reports(account_id, state.directory_syncs))


def _page(account_id: str, *, connect_error: str | None = None,
          group_error: str | None = None, status: int = 200) -> tuple[str, int]:
    admin = current_admin()
    params = {"accountId": account_id}
    account, directory, reports = admin.read("ListDirectories", account_id, _read,
                                             account_id, params=params)
    syncs = console_state().directory_syncs
    # From the reports: every run stores its report as "running" when it starts, so the
    # directory's lock is probed only when one says so. A probe of a free lock takes it for
    # a moment, and a page view must not make the daemon or a Sync now miss their turn.
    running = any(run is not None and run.in_progress
                  for run in (reports.last_run, reports.last_dry_run))
    groups: list[GroupMappingView] = admin.read(
        "ListGroups", account_id, console_state().services.engine.list_group_mappings,
        account_id, params=params)
    return render_template(
        "console/directory.html", account=account, directory=directory, groups=groups,
        page="console.directory",
        can_connect=admin.can("ConnectDirectory", account_id),
        can_disconnect=admin.can("DisconnectDirectory", account_id),
        can_add_group=admin.can("AddOrUpdateGroups", account_id),
        can_delete_group=admin.can("DeleteGroups", account_id),
        connect=request.args.get("connect") == "1" or connect_error is not None,
        connect_error=connect_error,
        disconnect=request.args.get("disconnect") == "1",
        add_group=request.args.get("add_group") == "1" or group_error is not None,
        group_error=group_error, reports=reports, running=running,
        can_sync=admin.can("SyncDirectory", account_id) and syncs is not None,
        apply_mass_change=request.args.get("apply_mass_change") == "1"), status


def _back(account_id: str) -> Any:
    return redirect(url_for("console.directory", account_id=account_id))


@bp.get("/accounts/<account_id>/settings/directory")
@signed_in
def directory(account_id: str) -> Any:
    return _page(account_id)


@bp.post("/accounts/<account_id>/settings/directory")
@form_post
@signed_in
def connect_directory(account_id: str) -> Any:
    """Connect to your Active Directory (ConnectDirectory): the engine binds once; a failed
    bind is shown in words on the form, nothing stored."""
    admin = current_admin()
    state = console_state()
    body: dict[str, Any] = {}
    for name, member in _FIELDS.items():
        value = request.form.get(name, "")
        value = value if name == "bind_password" else value.strip()
        if value:
            body[member] = value
    if not body.get("DirectoryId"):
        body["StartTls"] = request.form.get("start_tls") == "on"
    # Never the password in what is recorded.
    params = {"accountId": account_id, "directoryId": body.get("DirectoryId"),
              "ldapUrl": body.get("LdapUrl"), "baseDn": body.get("BaseDn")}

    def connect(actor: Actor) -> DirectoryView:
        if state.verify_directory is None:
            raise UpstreamUnavailable("The Active Directory door is not installed.")
        view: DirectoryView = state.services.engine.ad_directories.connect(
            actor, account_id, body, state.verify_directory,
            organisation=admin.organisation)
        return view

    try:
        admin.perform("ConnectDirectory", account_id, connect, params=params)
    except BridgeError as exc:
        if exc.code not in _SHOWN:
            raise
        return _page(account_id, connect_error=exc.message, status=status_of(exc))
    flash("The Active Directory is connected: its users are synchronized into the account.",
          "success")
    return _back(account_id)


@bp.post("/accounts/<account_id>/settings/directory/disconnect")
@form_post
@signed_in
def disconnect_directory(account_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    admin.perform("DisconnectDirectory", account_id, engine.ad_directories.disconnect,
                  account_id, params={"accountId": account_id})
    flash("The Active Directory was disconnected: the account is managed in this console "
          "again, and its users keep their tiers.", "success")
    return _back(account_id)


@bp.post("/accounts/<account_id>/settings/directory/groups")
@form_post
@signed_in
def add_group(account_id: str) -> Any:
    """Add a new group (AddOrUpdateGroups): the members' tiers change at once."""
    admin = current_admin()
    engine = console_state().services.engine
    name = request.form.get("group", "").strip()
    tier_name = request.form.get("tier", "")
    params = {"accountId": account_id,
              "groups": [{"groupName": name, "licenseType": tier_name}]}

    def add(actor: Actor) -> list[GroupMappingView]:
        tier = _TIERS.get(tier_name)
        if tier is None:
            raise ValidationError("Choose the Permission tier: Pro or Basic.",
                                  field="LicenseType")
        views: list[GroupMappingView] = engine.add_or_update_group_mappings(
            actor, account_id, {name: tier})
        return views

    try:
        admin.perform("AddOrUpdateGroups", account_id, add, params=params)
    except BridgeError as exc:
        # An Okta group not pushed yet is the guide's NotFound, said on the form.
        if exc.code not in _SHOWN and not (exc.code == "NotFound"
                                           and exc.message.startswith("The group")):
            raise
        return _page(account_id, group_error=exc.message, status=status_of(exc))
    flash(f"The group {name} gives its members the {tier_name} tier.", "success")
    return _back(account_id)


@bp.post("/accounts/<account_id>/settings/directory/groups/delete")
@form_post
@signed_in
def delete_group(account_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    name = request.form.get("group", "")[:256]
    admin.perform("DeleteGroups", account_id, engine.delete_group_mappings, account_id,
                  [name], params={"accountId": account_id, "groupName": name})
    flash(f"The group {name} no longer sets a tier; its members' tiers were recomputed.",
          "success")
    return _back(account_id)


@bp.post("/accounts/<account_id>/settings/directory/sync")
@form_post
@signed_in
def sync_directory(account_id: str) -> Any:
    """Preview (dry run) or Sync now (SyncDirectory): a background run of the AD sync; the
    page shows its report (at once for a short run) or that it is in progress.
    ``allow_mass_change`` (Apply the mass change, after its confirmation) applies a run the
    mass-change limit stopped, suspending at most ``mass_change_max`` users (the count the
    confirmation showed: a run that would now suspend more stops again)."""
    admin = current_admin()
    state = console_state()
    dry_run = request.form.get("dry_run") == "1"
    flags = {"dry_run": dry_run, "full": request.form.get("full") == "on",
             "allow_mass_change": request.form.get("allow_mass_change") == "1"}
    cap = request.form.get("mass_change_max")
    params = {"accountId": account_id, "dryRun": flags["dry_run"], "full": flags["full"],
              "allowMassChange": flags["allow_mass_change"], "massChangeMaxUsers": cap}

    def start(actor: Actor) -> StartedSync:
        if state.directory_syncs is None:
            raise UpstreamUnavailable("The Active Directory door is not installed.")
        if cap is not None and not (cap.isascii() and cap.isdigit() and len(cap) <= 9):
            raise ValidationError("The number of users to suspend is not a number.")
        started: StartedSync = state.services.engine.ad_sync_runs.start(
            actor, account_id, state.directory_syncs,
            mass_change_max=int(cap) if cap is not None else None, **flags)
        return started

    try:
        started = admin.perform("SyncDirectory", account_id, start, params=params)
    except BridgeError as exc:
        if exc.code not in {"Conflict", "UpstreamUnavailable", "RateLimited"}:
            raise
        flash(exc.message, "error")
        return _back(account_id)
    what = "The dry run" if dry_run else "The sync"
    flash(f"{what} finished: its report is below." if started.finished else
          f"{what} is in progress: its report shows here when it ends (reload the page).",
          "success")
    return _back(account_id)
