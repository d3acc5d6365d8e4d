"""Directory groups, item by item, as SCIM pushes them and the AD sync reads them: create,
rename, change members, delete — each one engine operation in one transaction — and a
user's memberships. Members' tiers follow at once (the tier rule reads memberships)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, update

from bridge.domain import (
    Actor,
)
from bridge.domain.groups import group_name
from bridge.engine.provisioning import WRITE_ATTEMPTS
from bridge.engine.results import (
    DirectoryGroupView,
    GroupChange,
    UserView,
)
from bridge.engine.room import Room
from bridge.errors import Conflict, NotFound, StaleVersion
from bridge.store.models import (
    DirectoryGroup,
    GroupMembership,
)
from bridge.store.repository import Repository

log = logging.getLogger(__name__)


class DirectoryGroups(Room):
    """Directory groups and memberships (SCIM /Groups, the AD sync, OIDC group claims)."""

    def upsert_group(self, actor: Actor, account_id: str, *, name: str,
                     external_id: str | None = None, group_id: str | None = None,
                     attributes: Mapping[str, Any] | None = None,
                     expected_version: int | None = None,
                     event_name: str = "ProvisionGroup",
                     replace_external_id: bool = False) -> DirectoryGroupView:
        """Create a directory group, or rename/update the one ``group_id`` names.

        On update, ``external_id`` None keeps the stored one unless ``replace_external_id``
        (SCIM PUT, or a PATCH removing it): then it is set exactly, None clearing it.

        Raises Conflict when another group of the account has the name, StaleVersion on a
        version mismatch. A rename re-applies the tier rule to the members (mappings are by
        name).
        """
        clean = group_name(name, field="displayName")

        def work(repo: Repository) -> tuple[DirectoryGroupView, dict[str, Any]]:
            self._account(repo, account_id)
            same_name = repo.group_by_name(account_id, clean)
            if group_id is None:
                if same_name is not None:
                    raise Conflict(f"A group named {clean!r} already exists.")
                group = DirectoryGroup(account_id=account_id, name=clean,
                                       name_lower=clean.lower(), external_id=external_id,
                                       attributes=dict(attributes or {}),
                                       created_at=self._now(), updated_at=self._now())
                repo.session.add(group)
                repo.session.flush()
            else:
                found = repo.group(account_id, group_id)
                if found is None:
                    raise NotFound(f"Group {group_id} was not found.")
                group = found
                if expected_version is not None and group.version != expected_version:
                    raise StaleVersion("The group was changed since the version you sent.")
                if same_name is not None and same_name.id != group.id:
                    raise Conflict(f"A group named {clean!r} already exists.")
                renamed = group.name_lower != clean.lower()
                group.name, group.name_lower = clean, clean.lower()
                if external_id is not None or replace_external_id:
                    group.external_id = external_id
                if attributes is not None:
                    group.attributes = dict(attributes)
                group.updated_at = self._now()
                repo.session.flush()
                if renamed:
                    self._refresh_tiers(repo, account_id, repo.group_member_ids(group.id))
            return DirectoryGroupView.of(group), {"groupId": group.id, "name": group.name}

        return self._run(actor, event_name, {"accountId": account_id, "name": clean,
                                             "groupId": group_id},
                         work, account_id=account_id)

    def delete_group(self, actor: Actor, account_id: str, group_id: str,
                     *, expected_version: int | None = None,
                     event_name: str = "DeprovisionGroup") -> None:
        """Delete a directory group and its memberships; the members' tiers follow at once.
        Raises NotFound, or StaleVersion when ``expected_version`` (If-Match) is given and
        is not the group's version — checked in the transaction, and the DELETE itself only
        matches the version read (the ORM's version check)."""

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            group = repo.group(account_id, group_id)
            if group is None:
                raise NotFound(f"Group {group_id} was not found.")
            if expected_version is not None and group.version != expected_version:
                raise StaleVersion("The group was changed since the version you sent.")
            members = repo.group_member_ids(group.id)
            repo.session.execute(delete(GroupMembership).where(
                GroupMembership.group_id == group.id))
            repo.session.delete(group)
            repo.session.flush()
            self._refresh_tiers(repo, account_id, members)
            return None, {"groupId": group_id}

        self._run(actor, event_name, {"accountId": account_id, "groupId": group_id}, work,
                  account_id=account_id)

    def change_group_members(self, actor: Actor, account_id: str, group_id: str, *,
                             add: Sequence[str] = (), remove: Sequence[str] = (),
                             replace: Sequence[str] | None = None,
                             expected_version: int | None = None,
                             event_name: str = "UpdateGroupMembers") -> DirectoryGroupView:
        """Add/remove members row by row (safe under parallel PATCHes), or replace the whole
        list. Unknown user ids raise NotFound (nothing changes); re-adding a member and
        removing a non-member succeed. Tiers of the affected users change at once.
        Raises StaleVersion when ``expected_version`` is given and differs (the version
        column makes the check atomic: the group row is updated ``WHERE version = ?``)."""

        def work(repo: Repository) -> tuple[DirectoryGroupView, dict[str, Any]]:
            group = repo.group(account_id, group_id)
            if group is None:
                raise NotFound(f"Group {group_id} was not found.")
            if expected_version is not None and group.version != expected_version:
                raise StaleVersion("The group was changed since the version you sent.")
            wanted = list(dict.fromkeys([*add, *(replace or [])]))
            for uid in wanted:
                if repo.user_in_account(account_id, uid) is None:
                    raise NotFound(f"User {uid} was not found in the account.")
            touched: set[str] = set()
            if replace is not None:
                current = set(repo.group_member_ids(group.id))
                for uid in current - set(replace):
                    repo.remove_membership(group.id, uid)
                    touched.add(uid)
            for uid in remove:
                if repo.remove_membership(group.id, uid):
                    touched.add(uid)
            for uid in wanted:
                if repo.add_membership(group.id, uid):
                    touched.add(uid)
            if touched:
                # The member list is part of the group, so its version (ETag) changes. One
                # atomic UPDATE: parallel member changes queue on the row instead of failing
                # an ORM version check; with If-Match it only matches the expected version.
                bump = update(DirectoryGroup).where(DirectoryGroup.id == group.id)
                if expected_version is not None:
                    bump = bump.where(DirectoryGroup.version == expected_version)
                done = repo.session.execute(
                    bump.values(version=DirectoryGroup.version + 1, updated_at=self._now())
                    .execution_options(synchronize_session=False))
                if not done.rowcount:  # type: ignore[attr-defined]
                    raise StaleVersion("The group was changed since the version you sent.")
                repo.session.refresh(group)
                self._refresh_tiers(repo, account_id, sorted(touched))
            return DirectoryGroupView.of(group), {"groupId": group.id,
                                                  "changedMembers": len(touched)}

        return self._run(actor, event_name, {"accountId": account_id, "groupId": group_id,
                                             "add": list(add), "remove": list(remove),
                                             "replace": list(replace) if replace is not None
                                             else None},
                         work, account_id=account_id)

    @staticmethod
    def _require_users(repo: Repository, account_id: str, user_ids: Iterable[str]) -> None:
        for uid in user_ids:
            if repo.user_in_account(account_id, uid) is None:
                raise NotFound(f"User {uid} was not found in the account.")

    def create_group(self, actor: Actor, account_id: str, *, name: str,
                     external_id: str | None = None, members: Sequence[str] = (),
                     event_name: str = "ProvisionGroup") -> DirectoryGroupView:
        """Create a directory group with its members in one transaction (SCIM POST).

        Raises ValidationError for a bad name, Conflict when the account has a group of that
        name, NotFound when a member is not a user of the account: then nothing is created.
        The members' tiers follow the group's mapping at once."""
        clean = group_name(name, field="displayName")
        wanted = list(dict.fromkeys(members))

        def work(repo: Repository) -> tuple[DirectoryGroupView, dict[str, Any]]:
            self._account(repo, account_id)
            if repo.group_by_name(account_id, clean) is not None:
                raise Conflict(f"A group named {clean!r} already exists.")
            self._require_users(repo, account_id, wanted)
            now = self._now()
            group = DirectoryGroup(account_id=account_id, name=clean, name_lower=clean.lower(),
                                   external_id=external_id, attributes={}, created_at=now,
                                   updated_at=now)
            repo.session.add(group)
            repo.session.flush()
            for uid in wanted:
                repo.add_membership(group.id, uid)
            if wanted:
                self._refresh_tiers(repo, account_id, wanted)
            return DirectoryGroupView.of(group), {"groupId": group.id, "name": group.name,
                                                  "members": len(wanted)}

        return self._run(actor, event_name, {"accountId": account_id, "name": clean,
                                             "externalId": external_id, "members": wanted},
                         work, account_id=account_id)

    def change_group(self, actor: Actor, account_id: str, group_id: str,
                     change: GroupChange, *, expected_version: int | None = None,
                     event_name: str = "UpdateGroup") -> DirectoryGroupView:
        """Apply the whole ``change`` (SCIM PUT: name, externalId and the member list; PATCH:
        what its operations net to) in one transaction, or nothing.

        Raises NotFound (no such group, or a member to add that is not a user of the
        account), ValidationError (bad name), Conflict (name taken), StaleVersion
        (``expected_version`` given and not the group's version, checked inside the write;
        or a rename that lost a race with another writer). A change that changes nothing
        (Okta repeats the name with each membership PATCH) writes no row and keeps the
        version; membership-only changes without ``expected_version`` queue on the group
        row instead of failing, so parallel membership PATCHes all apply."""
        clean = group_name(change.name, field="displayName") if change.name is not None else None
        replace = list(dict.fromkeys(change.replace)) if change.replace is not None else None
        add, remove = list(dict.fromkeys(change.add)), list(dict.fromkeys(change.remove))

        def work(repo: Repository) -> tuple[DirectoryGroupView, dict[str, Any]]:
            group = repo.group(account_id, group_id)
            if group is None:
                raise NotFound(f"Group {group_id} was not found.")
            read_version = group.version
            if expected_version is not None and read_version != expected_version:
                raise StaleVersion("The group was changed since the version you sent.")
            fields: dict[str, Any] = {}
            renamed = False
            if clean is not None and clean != group.name:
                same_name = repo.group_by_name(account_id, clean)
                if same_name is not None and same_name.id != group.id:
                    raise Conflict(f"A group named {clean!r} already exists.")
                fields.update(name=clean, name_lower=clean.lower())
                renamed = clean.lower() != group.name_lower
            if change.set_external_id and change.external_id != group.external_id:
                fields["external_id"] = change.external_id
            self._require_users(repo, account_id, [*(replace or []), *add])
            touched: set[str] = set()
            if replace is not None:
                for uid in set(repo.group_member_ids(group.id)) - set(replace):
                    repo.remove_membership(group.id, uid)
                    touched.add(uid)
            for uid in remove:
                if repo.remove_membership(group.id, uid):
                    touched.add(uid)
            for uid in [*(replace or []), *add]:
                if repo.add_membership(group.id, uid):
                    touched.add(uid)
            if fields or touched:
                # One UPDATE of the row: the name, externalId and member list are all part
                # of the group, so its version (ETag) changes once per write. A field change
                # is applied only to the version it was decided on; a membership-only change
                # only to the expected version when the client sent one.
                guard = read_version if fields else expected_version
                bump = update(DirectoryGroup).where(DirectoryGroup.id == group.id)
                if guard is not None:
                    bump = bump.where(DirectoryGroup.version == guard)
                done = repo.session.execute(
                    bump.values(version=DirectoryGroup.version + 1, updated_at=self._now(),
                                **fields)
                    .execution_options(synchronize_session=False))
                if not done.rowcount:  # type: ignore[attr-defined]
                    raise StaleVersion("The group was changed since the version you sent.")
                repo.session.refresh(group)
                refresh = set(repo.group_member_ids(group.id)) if renamed else set()
                self._refresh_tiers(repo, account_id, sorted(touched | refresh))
            return DirectoryGroupView.of(group), {"groupId": group.id,
                                                  "fields": sorted(fields),
                                                  "changedMembers": len(touched)}

        params = {"accountId": account_id, "groupId": group_id, "name": clean,
                  "externalId": change.external_id if change.set_external_id else None,
                  "add": add, "remove": remove, "replace": replace,
                  "expectedVersion": expected_version}
        # Without an expected version the change applies to the current state: a try
        # that lost a race with another writer is run again (one event for the outcome).
        return self._run(actor, event_name, params, work, account_id=account_id,
                         attempts=1 if expected_version is not None else WRITE_ATTEMPTS)

    def set_user_groups(self, actor: Actor, account_id: str, user_id: str,
                        group_names: Iterable[str], *, create_missing: bool = False,
                        event_name: str = "UpdateUserGroups") -> UserView:
        """Make the user's directory groups exactly ``group_names`` (effective membership,
        nested groups already resolved by the directory). Unknown names are created when
        ``create_missing`` (AD sync), otherwise ignored (OIDC groups claim: only groups the
        account knows matter)."""
        names = [n.strip() for n in group_names if isinstance(n, str) and n.strip()]

        def work(repo: Repository) -> tuple[UserView, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            groups = {g.name_lower: g for g in repo.groups_by_names(account_id, names)}
            if create_missing:
                for name in names:
                    if name.lower() not in groups:
                        group = DirectoryGroup(account_id=account_id, name=name,
                                               name_lower=name.lower(), created_at=self._now(),
                                               updated_at=self._now())
                        repo.session.add(group)
                        repo.session.flush()
                        groups[name.lower()] = group
            wanted = {g.id for g in groups.values()}
            current = repo.user_group_ids(user.id)
            for gid in current - wanted:
                repo.remove_membership(gid, user.id)
            for gid in wanted - current:
                repo.add_membership(gid, user.id)
            self._refresh_tiers(repo, account_id, [user.id])
            repo.session.refresh(user)
            return self._user_view(repo, user), {"userId": user.id, "groups": sorted(groups)}

        return self._run(actor, event_name, {"accountId": account_id, "userId": user_id,
                                             "groups": names},
                         work, account_id=account_id)

    def get_group(self, account_id: str, group_id: str) -> tuple[DirectoryGroupView, list[str]]:
        """A group and its member user ids."""

        def work(repo: Repository) -> tuple[DirectoryGroupView, list[str]]:
            group = repo.group(account_id, group_id)
            if group is None:
                raise NotFound(f"Group {group_id} was not found.")
            return DirectoryGroupView.of(group), repo.group_member_ids(group.id)

        return self._read(work)
