"""The incremental run of :class:`ad_sync.sync.DirectorySync`: what changed in the directory
since the watermark (users, tombstones, group membership), applied page by page.

:class:`IncrementalRun` adds it to the steps every run shares (:class:`RunSteps`);
``DirectorySync`` adds the full run and the entry point. The run's safety rules are
described in :mod:`ad_sync.sync`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ldap3 import Connection

from ad_sync import client, decisions, groups
from ad_sync.client import DirectoryError
from ad_sync.report import DISABLED, GONE, SyncReport, note_suspensions
from ad_sync.run_steps import RunSteps
from ad_sync.vendor import ms_ad
from bridge.engine.ad_directories import DirectoryConnection


class IncrementalRun(RunSteps):
    """The incremental run (the steps it shares with the full run: :class:`RunSteps`)."""

    def _incremental(self, conn: Connection, cfg: DirectoryConnection, dse: ms_ad.RootDse,
                     mappings: Sequence[str], map_fp: str, usn: int,
                     report: SyncReport) -> None:
        """One incremental run from watermark ``usn`` (see :mod:`ad_sync.sync`): the changed
        users, the tombstones and the group changes since, the mass-change guard, the
        suspensions, then the changes page by page, then the watermark."""
        user_filter = cfg.user_filter or ms_ad.DEFAULT_USER_FILTER
        domain = dse.default_naming_context or cfg.base_dn
        # Changed users anywhere in the domain: those now outside BaseDn moved out of scope.
        changed: dict[str, ms_ad.DirectoryUser] = {}
        moved_out: list[str] = []
        for page in client.paged(conn, domain, ms_ad.changed_since_filter(user_filter, usn),
                                 ms_ad.USER_ATTRIBUTES, page_size=self.page_size):
            for entry in page:
                user = ms_ad.user_from_entry(entry)
                if user is None:
                    continue
                if decisions.in_scope(user.dn, cfg.base_dn):
                    changed[user.guid] = user
                else:
                    moved_out.append(user.guid)
        for guid in self.records.retry_guids(self.account_id):
            if guid not in changed:
                retry = _read_user(conn, guid)
                if retry is not None and decisions.in_scope(retry.dn, cfg.base_dn):
                    changed[guid] = retry
        deleted: list[str] = []
        for page in client.paged(conn, domain, ms_ad.deleted_since_filter(usn), ["objectGUID"],
                                 page_size=self.page_size,
                                 controls=[(ms_ad.SHOW_DELETED_OID, True, None)]):
            for entry in page:
                raw = (entry.get("raw_attributes") or {}).get("objectGUID") or []
                if raw:
                    deleted.append(ms_ad.guid_from_bytes(raw[0]))
        closure, scan = self._group_changes(conn, cfg, dse, mappings, usn, changed, report)
        if scan:
            # The nesting of mapped groups changed (or the DC gives no member deltas): a
            # membership change bumps the group's USN, not the user's, so compare every
            # user's mapped groups (objectGUID and memberOf only, page by page).
            shared: dict[frozenset[str], tuple[str, ...]] = {}
            for page in client.paged(conn, cfg.base_dn, user_filter,
                                     ["objectGUID", "memberOf", "primaryGroupID"],
                                     page_size=self.page_size):
                users = [u for u in (ms_ad.user_from_entry(e) for e in page) if u is not None]
                prior = self.records.known_users(self.account_id, [u.guid for u in users])
                for user in users:
                    if user.guid in changed or user.guid not in prior:
                        continue
                    if decisions.groups_for(user, closure, shared) != prior[user.guid].groups:
                        full_user = _read_user(conn, user.guid)
                        if full_user is not None:
                            changed[user.guid] = full_user
        # Guard before anything changes.
        known = self.records.known_users(self.account_id,
                                       list({*changed, *deleted, *moved_out}))
        leaving = {g for g in [*deleted, *moved_out] if g in known and known[g].present}
        disabling = {g for g, u in changed.items()
                     if not u.enabled and g in known and known[g].enabled and known[g].present}
        report.would_suspend = len(leaving) + len(disabling)
        note_suspensions(report, [known[g] for g in sorted(leaving)], GONE)
        note_suspensions(report, [changed[g] for g in sorted(disabling)], DISABLED)
        if report.would_suspend:  # the count scans the account's users: only when needed
            self._guard(report.would_suspend, self.records.count_present(self.account_id)[0])
        self._suspend_gone([known[g] for g in sorted(leaving)], report)
        users = list(changed.values())
        for start in range(0, len(users), self.page_size):
            self._apply_page(users[start:start + self.page_size], closure, report,
                             run_id=None, known=known)
            self._check_stop()
        self._finish([], dse, map_fp, report, full=False)

    def _group_changes(self, conn: Connection, cfg: DirectoryConnection,
                       dse: ms_ad.RootDse, mappings: Sequence[str], usn: int,
                       changed: dict[str, ms_ad.DirectoryUser], report: SyncReport
                       ) -> tuple[dict[str, frozenset[str]], bool]:
        """What group changes since the last run mean for users: adds the users added to or
        removed from a mapped (or nested) group to ``changed`` and returns the closure
        lookup and whether every user's groups must be compared (see :mod:`ad_sync.groups`;
        with a DirSync cookie this reads only the changed groups' changed values)."""
        domain = dse.default_naming_context or cfg.base_dn
        with self.engine.uow.session() as session:
            stored = groups.GroupStateStore.load(session, self.account_id)
        if stored is not None and stored.cookie is not None:
            try:
                deltas, cookie = groups.read_changes(conn, domain, stored.cookie)
            except DirectoryError as exc:
                report.warnings.append(f"group changes compared user by user: {exc.message}")
            else:
                touched = groups.touched_members(deltas, stored.closure)
                resolved = groups.resolve_members(
                    conn, touched, cfg.user_filter or ms_ad.DEFAULT_USER_FILTER,
                    lambda dn: decisions.in_scope(dn, cfg.base_dn))
                for user in resolved.users:
                    changed.setdefault(user.guid, user)
                closure = stored.closure
                scan = False
                if resolved.groups_moved or any(d.renamed for d in deltas):
                    closure = self._read_closure(conn, cfg, dse, mappings, report)
                    scan = groups.needs_scan(stored.closure, closure)
                self._group_state = groups.GroupState(closure, cookie)
                return groups.lookup(closure), scan
        # No usable cookie: any changed group (deleted ones too, with Show Deleted:
        # deleting a group drops its members' memberOf without touching the users)
        # means comparing every user's groups; a fresh cookie for the next run first.
        fresh = groups.first_cookie(conn, domain)
        groups_changed = bool(client.search_all(
            conn, domain, ms_ad.changed_since_filter(ms_ad.GROUP_FILTER, usn), ["cn"],
            controls=[(ms_ad.SHOW_DELETED_OID, True, None)]))
        closure = self._read_closure(conn, cfg, dse, mappings, report)
        self._group_state = groups.GroupState(closure, fresh)
        return groups.lookup(closure), groups_changed and bool(closure)


def _read_user(conn: Connection, guid: str) -> ms_ad.DirectoryUser | None:
    ok = conn.search(ms_ad.guid_base(guid), "(objectClass=user)", "BASE",
                     attributes=list(ms_ad.USER_ATTRIBUTES))
    entries = [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]
    return ms_ad.user_from_entry(entries[0]) if ok and entries else None
