"""Directory users and groups, item by item, as SCIM and the AD sync describe them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update

from bridge import search
from bridge.domain import (
    Actor,
    IdentitySource,
    UserStatus,
    effective_addresses,
    normalize_email,
)
from bridge.engine.results import (
    DirectoryGroupView,
    DirectoryUserResult,
    UserView,
)
from bridge.engine.room import Room
from bridge.errors import Conflict, Forbidden, NotFound, StaleVersion, ValidationError
from bridge.store.models import (
    DirectoryGroup,
    GroupMembership,
    User,
)
from bridge.store.repository import Repository

log = logging.getLogger(__name__)


class Provisioning(Room):
    """Directory users and groups, item by item, as SCIM and the AD sync describe them."""

    def upsert_directory_user(
        self,
        actor: Actor,
        account_id: str,
        *,
        source: IdentitySource,
        external_id: str | None,
        primary_email: str | None,
        other_emails: Sequence[str] = (),
        display_name: str | None = None,
        enabled: bool = True,
        attributes: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        expected_version: int | None = None,
        on_address_conflict: str = "raise",
        event_name: str = "ProvisionUser",
        user_name: str | None = None,
        create_only: bool = False,
    ) -> DirectoryUserResult:
        """Create or update the user a directory describes, keyed by (source, account,
        external_id) — or by ``user_id`` when the door addresses an existing user.

        Addresses: only those on the account's verified claimed domains become effective
        (primary first, the rest aliases); all are remembered so they take effect when their
        domain is verified. An address another user owns raises Conflict
        (``on_address_conflict="raise"``, SCIM) or is skipped and reported ("skip", AD sync).
        A user with no effective address is stored but cannot sign in. ``enabled`` False
        means disabled in the directory (cannot sign in, sessions revoked).
        Raises StaleVersion when ``expected_version`` is given and differs.

        SCIM: ``user_name`` (any string, unique per account case-insensitively: Conflict when
        taken) is stored when given; ``external_id`` may be None (a user that arrived without
        one; the user's link of this source is then dropped); ``create_only`` never updates
        (POST: Conflict when the external id is already provisioned).
        """
        primary = normalize_email(primary_email) if primary_email else None
        others: list[str] = []
        for raw in other_emails:
            try:
                address = normalize_email(raw)
            except ValidationError:
                continue
            if address != primary and address not in others:
                others.append(address)
        params = {"accountId": account_id, "source": source.value, "externalId": external_id,
                  "primaryEmail": primary, "emails": others, "enabled": enabled}
        if user_name is not None:
            params["userName"] = user_name

        def work(repo: Repository) -> tuple[DirectoryUserResult, dict[str, Any]]:
            account = self._account(repo, account_id)
            if account.directory_kind is None:
                raise Forbidden("The account has no directory connected.")
            user: User | None = None
            if user_id is not None:
                user = self._user(repo, account_id, user_id)
            elif external_id is not None:
                user = repo.user_by_identity(source.value, account_id, external_id)
                if user is not None and create_only:
                    raise Conflict(f"A user with the external id {external_id!r} already "
                                   "exists.")
            if user_name is not None and search.user_name_taken(
                    repo.session, account_id, user_name, user.id if user else None):
                raise Conflict(f"The userName {user_name!r} is already taken.")
            if user is not None and external_id is not None:
                holder = repo.user_by_identity(source.value, account_id, external_id)
                if holder is not None and holder.id != user.id:
                    raise Conflict(f"The external id {external_id!r} belongs to another "
                                   "user.")
            if user is not None and expected_version is not None and (
                    user.version != expected_version):
                raise StaleVersion("The user was changed since the version you sent.")
            verified = repo.verified_domain_names(account_id)
            eff_primary, aliases = effective_addresses(primary, others, verified)
            skipped: list[str] = []
            own_id = user.id if user is not None else None
            for address in [a for a in [eff_primary, *aliases] if a]:
                owner = repo.address_owner_id(address)
                if owner is not None and owner != own_id:
                    if on_address_conflict == "raise":
                        raise Conflict(f"The email address {address} belongs to another user.")
                    skipped.append(address)
            if eff_primary in skipped:
                eff_primary = None
            aliases = [a for a in aliases if a not in skipped]
            now = self._now()
            created = user is None
            if user is None:
                user = self._new_user(repo, account_id=account_id,
                                      primary_email=primary or "", status=UserStatus.REGISTERED,
                                      tier=None, in_directory=True)
            was_enabled = user.directory_enabled and user.in_directory
            user.primary_email = primary or ""
            user.display_name = display_name
            user.source_addresses = ([primary] if primary else []) + others
            user.in_directory = True
            user.directory_deleted_at = None
            user.directory_enabled = enabled
            if user.status == UserStatus.RELEASED.value:
                user.status = UserStatus.REGISTERED.value
            if user_name is not None:
                user.user_name, user.user_name_lower = user_name, user_name.lower()
            if attributes is not None:
                user.attributes = dict(attributes)
            if was_enabled and not enabled:
                user.sessions_valid_after = now
            user.updated_at = now
            repo.set_addresses(user, eff_primary, aliases)
            for link in repo.identities(user.id, source.value):
                # One external id per user and directory: a changed one replaces the old.
                if link.issuer == account_id and link.external_id != external_id:
                    repo.session.delete(link)
            if external_id is not None:
                repo.link_identity(user.id, source.value, account_id, external_id)
            self._refresh_tiers(repo, account_id, [user.id])
            repo.session.refresh(user)
            view = self._user_view(repo, user)
            result = DirectoryUserResult(view, created, tuple(skipped))
            return result, {"userId": view.id, "created": created, "skipped": skipped}

        return self._run(actor, event_name, params, work, account_id=account_id)

    def directory_user(self, account_id: str, source: IdentitySource,
                       external_id: str) -> UserView | None:
        def work(repo: Repository) -> UserView | None:
            user = repo.user_by_identity(source.value, account_id, external_id)
            return self._user_view(repo, user) if user is not None else None

        return self._read(work)

    def mark_directory_user_deleted(self, actor: Actor, account_id: str, user_id: str,
                                    *, event_name: str = "DeprovisionUser") -> UserView:
        """The directory no longer has the user: they cannot sign in, sessions are revoked,
        and the profile is kept for the grace period (see :meth:`purge_deleted_users`)."""

        def work(repo: Repository) -> tuple[UserView, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            now = self._now()
            if user.in_directory:
                user.in_directory = False
                user.directory_deleted_at = now
                user.sessions_valid_after = now
            return self._user_view(repo, user), {"userId": user.id}

        return self._run(actor, event_name, {"accountId": account_id, "userId": user_id},
                         work, account_id=account_id)

    def delete_user(self, actor: Actor, account_id: str, user_id: str,
                    *, event_name: str = "DeleteUser") -> None:
        """Delete a user's profile and every row that belongs to it."""

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            repo.session.delete(user)
            return None, {"userId": user_id}

        self._run(actor, event_name, {"accountId": account_id, "userId": user_id}, work,
                  account_id=account_id)

    def purge_deleted_users(self, actor: Actor, account_id: str, grace: timedelta) -> int:
        """Delete profiles whose directory deletion is older than ``grace``; returns count."""

        def work(repo: Repository) -> tuple[int, dict[str, Any]]:
            cutoff = self._now() - grace
            users = list(repo.session.scalars(select(User).where(
                User.account_id == account_id, User.in_directory.is_(False),
                User.directory_deleted_at.is_not(None), User.directory_deleted_at <= cutoff)))
            for user in users:
                repo.session.delete(user)
            return len(users), {"deleted": [u.id for u in users]}

        return self._run(actor, "PurgeDeletedUsers", {"accountId": account_id}, work,
                         account_id=account_id)

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
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 256:
            raise ValidationError("A group name must be 1 to 256 characters.",
                                  field="displayName")
        clean = name.strip()

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
                     *, event_name: str = "DeprovisionGroup") -> None:
        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            group = repo.group(account_id, group_id)
            if group is None:
                raise NotFound(f"Group {group_id} was not found.")
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
