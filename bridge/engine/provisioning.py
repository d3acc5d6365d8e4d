"""Directory users and groups, item by item, as SCIM and the AD sync describe them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import select

from bridge.domain import (
    Actor,
    IdentitySource,
    UserStatus,
    effective_addresses,
    normalize_email,
)
from bridge.domain.search import folded_user_document
from bridge.engine.results import (
    DirectoryUserResult,
    UserView,
)
from bridge.engine.room import Room
from bridge.errors import Conflict, Forbidden, NotFound, StaleVersion, ValidationError
from bridge.store import search, user_rows
from bridge.store.models import (
    User,
)
from bridge.store.repository import Repository

log = logging.getLogger(__name__)
# A write without an expected version that lost a race with another writer is run again
# from the current state this many times before the conflict is reported.
WRITE_ATTEMPTS = 5


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
        primary, others = directory_addresses(primary_email, other_emails)
        params = directory_user_params(account_id, source, external_id, primary, others,
                                        enabled, user_name)

        def work(repo: Repository) -> tuple[DirectoryUserResult, dict[str, Any]]:
            return self._write_directory_user(
                repo, account_id, source=source, external_id=external_id, primary=primary,
                others=others, display_name=display_name, enabled=enabled,
                attributes=attributes, user_id=user_id, expected_version=expected_version,
                on_address_conflict=on_address_conflict, user_name=user_name,
                create_only=create_only)

        return self._run(actor, event_name, params, work, account_id=account_id)

    def patch_directory_user(
        self, actor: Actor, account_id: str, user_id: str,
        change: Callable[[UserView], Mapping[str, Any]], *, source: IdentitySource,
        expected_version: int | None = None, event_name: str = "PatchUser",
    ) -> DirectoryUserResult:
        """Change a directory user from its current state in ONE transaction (SCIM PATCH):
        ``change`` receives the stored user (a view without addresses or groups) and
        returns the keyword arguments of :meth:`upsert_directory_user` describing the whole
        new state (``primary_email``, ``other_emails``, ``external_id``, ``display_name``,
        ``enabled``, ``attributes``, ``user_name``); they are applied under the same rules,
        read and written in the same transaction, so a concurrent change can neither be
        lost nor make the request fail. Raises NotFound, StaleVersion (``expected_version``
        given and not the user's), and whatever ``change`` or the rules raise (nothing is
        written then)."""
        params: dict[str, Any] = {"accountId": account_id, "userId": user_id}

        def work(repo: Repository) -> tuple[DirectoryUserResult, dict[str, Any]]:
            user = self._user_row(repo, account_id, user_id)
            if expected_version is not None and user.version != expected_version:
                raise StaleVersion("The user was changed since the version you sent.")
            args = dict(change(UserView.of(user, [])))
            primary, others = directory_addresses(args.pop("primary_email", None),
                                                   args.pop("other_emails", ()))
            params.update(directory_user_params(
                account_id, source, args.get("external_id"), primary, others,
                args.get("enabled", True), args.get("user_name")), userId=user_id)
            return self._write_directory_user(
                repo, account_id, source=source, primary=primary, others=others,
                user_id=user_id, expected_version=user.version, loaded=user,
                on_address_conflict="raise", create_only=False,
                external_id=args.get("external_id"), display_name=args.get("display_name"),
                enabled=args.get("enabled", True), attributes=args.get("attributes"),
                user_name=args.get("user_name"))

        # Without an expected version the change applies to the current state: a try
        # that lost a race with another writer is run again (one event for the outcome).
        return self._run(actor, event_name, params, work, account_id=account_id,
                         attempts=1 if expected_version is not None else WRITE_ATTEMPTS)

    def _write_directory_user(
        self, repo: Repository, account_id: str, *, source: IdentitySource,
        external_id: str | None, primary: str | None, others: Sequence[str],
        display_name: str | None, enabled: bool, attributes: Mapping[str, Any] | None,
        user_id: str | None, expected_version: int | None, on_address_conflict: str,
        user_name: str | None, create_only: bool, loaded: User | None = None,
    ) -> tuple[DirectoryUserResult, dict[str, Any]]:
        """The rules of :meth:`upsert_directory_user`, inside the caller's transaction.
        ``loaded``: the user ``user_id`` names, already read in this transaction."""
        found, directory_kind = repo.account_directory_kind(account_id)
        if not found:
            raise NotFound(f"Account {account_id} was not found.")
        if directory_kind is None:
            raise Forbidden("The account has no directory connected.")
        user: User | None = None
        if loaded is not None:
            user = loaded
        elif user_id is not None:
            user = self._user_row(repo, account_id, user_id)
        elif external_id is not None:
            user = repo.user_by_identity(source.value, account_id, external_id)
            if user is not None and create_only:
                raise Conflict(f"A user with the external id {external_id!r} already "
                               "exists.")
        # Write path cost (issue 12): every check below reads only what can have
        # changed — the user's own userName, link and addresses are not looked up again.
        if user_name is not None and not (
                user is not None and user.user_name_lower == user_name.lower()
        ) and search.user_name_taken(repo.session, account_id, user_name,
                                     user.id if user else None):
            raise Conflict(f"The userName {user_name!r} is already taken.")
        links = [link for link in repo.identities(user.id, source.value)
                 if link.issuer == account_id] if user is not None else []
        linked = any(link.external_id == external_id for link in links)
        if user is not None and external_id is not None and not linked:
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
        current = repo.addresses(user.id) if user is not None else []
        owned = {a.address for a in current}
        for address in [a for a in [eff_primary, *aliases] if a and a not in owned]:
            owner = repo.address_owner_id(address)
            if owner is not None and user is None and address == eff_primary and (
                    source is IdentitySource.SCIM):
                adopted = self._console_member(repo, account_id, owner, address)
                if adopted is not None:
                    # It has no link of this directory (checked), nor a userName.
                    user, own_id, links, linked = adopted, adopted.id, [], False
                    current = repo.addresses(user.id)
                    continue
            if owner is not None and owner != own_id:
                if on_address_conflict == "raise":
                    raise Conflict(f"The email address {address} belongs to another user.")
                skipped.append(address)
        if eff_primary in skipped:
            eff_primary = None
        aliases = [a for a in aliases if a not in skipped]
        now = self._now()
        profile: dict[str, Any] = {
            "primary_email": primary or "", "display_name": display_name,
            "source_addresses": [*([primary] if primary else []), *others],
            "in_directory": True, "directory_deleted_at": None,
            "directory_enabled": enabled, "updated_at": now}
        if user_name is not None:
            profile.update(user_name=user_name, user_name_lower=user_name.lower())
        if attributes is not None:
            profile["attributes"] = dict(attributes)
        if user is None:
            if not enabled:  # as the bulk path (and before it this one) records it
                profile["sessions_valid_after"] = now
            profile["search_folded"] = folded_user_document(
                display_name, profile.get("attributes", {}), user_name, profile["primary_email"])
            return self._insert_directory_user(repo, account_id, profile, eff_primary,
                                               aliases, source, external_id, skipped)
        was_enabled = user.directory_enabled and user.in_directory
        if user.status == UserStatus.RELEASED.value:
            profile["status"] = UserStatus.REGISTERED.value
        if was_enabled and not enabled:
            profile["sessions_valid_after"] = now
        if isinstance(user, User):  # an ORM object (found by its external id)
            for name, value in profile.items():
                setattr(user, name, value)
        else:
            user = self._update_row(repo, user, profile)
        # The owners were checked above, in this transaction.
        addresses_changed = repo.set_addresses(user, eff_primary, aliases, current=current,
                                               checked=True)
        for link in links:
            # One external id per user and directory: a changed one replaces the old.
            if link.external_id != external_id:
                repo.session.delete(link)
        if external_id is not None and not linked:
            # Not linked to anyone: a new user was looked up by this external id, an
            # existing one had its holder looked up above (another holder raised).
            repo.link_identity(user.id, source.value, account_id, external_id,
                               known_unlinked=True)
        # No tier refresh: the tier rule reads memberships and mappings only, and this
        # changes neither (a new user has no membership and is created without a tier).
        repo.session.flush()
        # No refresh: every changed column was set here and the ORM keeps the new version;
        # the groups are read for the view, the addresses only when they changed.
        groups = repo.user_groups(user.id)
        view = UserView.of(user, repo.addresses(user.id) if addresses_changed else current,
                           tuple(name for _, name in groups), tuple(gid for gid, _ in groups))
        result = DirectoryUserResult(view, False, tuple(skipped))
        return result, {"userId": view.id, "created": False, "skipped": skipped}

    @staticmethod
    def _user_row(repo: Repository, account_id: str, user_id: str) -> User:
        # Locked (PostgreSQL): a PATCH without If-Match reads the user it changes; without
        # the lock, 8 clients PATCHing one user lost the optimistic race 5 times in a row
        # about once in ten requests and answered 412 (issue 12, fourth round).
        user = user_rows.user_row(repo.session, account_id, user_id, lock=True)
        if user is None:
            raise NotFound(f"User {user_id} was not found in account {account_id}.")
        return user

    @staticmethod
    def _update_row(repo: Repository, user: User, profile: Mapping[str, Any]) -> User:
        """Write ``profile`` over a user read as a Core row (``user_rows.user_row``)
        in ONE ``UPDATE ... WHERE version = ?`` (issue 12: no ORM load and flush); returns
        the row as written. Raises StaleVersion when another writer changed the user
        since it was read (the unit of work runs the change again when allowed)."""
        values = dict(profile)
        new = {**vars(user), **values}
        # The folded search copy, as the ORM hook computes it for ORM writes.
        values["search_folded"] = new["search_folded"] = folded_user_document(
            new["display_name"], new["attributes"], new["user_name"], new["primary_email"])
        if not user_rows.update_user(repo.session, user.id, user.version, values):
            raise StaleVersion("The user was changed by another request; read it again.")
        new["version"] = user.version + 1
        return cast(User, SimpleNamespace(**new))

    @staticmethod
    def _console_member(repo: Repository, account_id: str, owner_id: str,
                        address: str) -> User | None:
        """The member of the account from its console-managed days whose primary address
        a provisioning client now pushes (Okta connected to an EnterpriseLWA account): the
        pushed user is that member, who keeps their profile, PIN and tier (held until a
        mapped group decides) instead of clashing with a duplicate. Only a member no
        directory ever provisioned: not in the directory, no deletion pending, no SCIM link,
        no userName."""
        owner = repo.user(owner_id)
        if owner is None or owner.account_id != account_id or owner.in_directory or (
                owner.directory_deleted_at is not None or owner.user_name is not None
                or owner.primary_email != address
                or repo.identities(owner.id, IdentitySource.SCIM.value)):
            return None
        return owner

    @staticmethod
    def _insert_directory_user(
        repo: Repository, account_id: str, profile: Mapping[str, Any],
        eff_primary: str | None, aliases: Sequence[str], source: IdentitySource,
        external_id: str | None, skipped: list[str],
    ) -> tuple[DirectoryUserResult, dict[str, Any]]:
        """A new directory user in three Core INSERTs (user, addresses, link), as the bulk
        path writes them: no ORM unit of work (issue 12: building and flushing the ORM
        objects was over a third of a create's CPU). The rules ran in
        :meth:`_write_directory_user`: the owners of the addresses and the external id
        were looked up in this transaction (the unique keys back them). Every column is
        written here, so the view needs no read-back; a new user is in no group and has
        no tier (the tier rule reads memberships)."""
        user = repo.insert_user({"account_id": account_id, "created_at": profile["updated_at"],
                                 "tier": None, "status": UserStatus.REGISTERED.value,
                                 **profile})
        addresses = repo.insert_addresses(user.id, eff_primary, aliases)
        if external_id is not None:
            repo.insert_identity(user.id, source.value, account_id, external_id)
        view = UserView.of(user, addresses)
        result = DirectoryUserResult(view, True, tuple(skipped))
        return result, {"userId": view.id, "created": True, "skipped": skipped}

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
                    *, expected_version: int | None = None,
                    event_name: str = "DeleteUser") -> None:
        """Delete a user's profile and every row that belongs to it. Raises NotFound, or
        StaleVersion when ``expected_version`` (If-Match) is not the user's version —
        checked in the transaction; the DELETE only matches the version read."""

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            if expected_version is not None and user.version != expected_version:
                raise StaleVersion("The user was changed since the version you sent.")
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




    # --- group writes, one engine operation each (SCIM POST/PUT/PATCH/DELETE /Groups) ------
    #
    # Each runs in ONE transaction with ONE audit event: a refused write (unknown member,
    # name taken, stale version) leaves the group exactly as it was — name, externalId,
    # members and version — and records only the refusal. ``expected_version`` (If-Match) is
    # checked inside the transaction and again by the write itself (``WHERE version = ?``),
    # so a concurrent change between the check and the write is a StaleVersion, never lost.








def directory_addresses(primary_email: str | None,
                         other_emails: Iterable[str]) -> tuple[str | None, list[str]]:
    """(normalized primary, the other valid addresses without it or duplicates): the
    addresses rule of every directory user write, item by item and in bulk. Raises
    ValidationError for an invalid primary address."""
    primary = normalize_email(primary_email) if primary_email else None
    others: list[str] = []
    for raw in other_emails:
        try:
            address = normalize_email(raw)
        except ValidationError:
            continue
        if address != primary and address not in others:
            others.append(address)
    return primary, others


def directory_user_params(account_id: str, source: IdentitySource, external_id: str | None,
                           primary: str | None, others: list[str], enabled: bool,
                           user_name: str | None) -> dict[str, Any]:
    """The audit event's request parameters of a directory user write."""
    params: dict[str, Any] = {"accountId": account_id, "source": source.value,
                              "externalId": external_id, "primaryEmail": primary,
                              "emails": others, "enabled": enabled}
    if user_name is not None:
        params["userName"] = user_name
    return params
