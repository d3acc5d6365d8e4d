"""Connecting a directory (the one connect rule) and mapping directory groups to tiers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.domain import (
    Actor,
    DirectoryKind,
    Tier,
)
from bridge.domain.connect import ConnectPlan
from bridge.domain.groups import group_name
from bridge.engine.results import (
    AccountView,
    GroupMappingView,
)
from bridge.engine.room import Room
from bridge.errors import Conflict, Forbidden, NotFound, ValidationError
from bridge.store.models import GroupMapping
from bridge.store.repository import Repository

log = logging.getLogger(__name__)


class Directories(Room):
    """Connecting a directory (the one connect rule) and mapping directory groups to tiers."""

    def set_directory(self, actor: Actor, account_id: str, kind: DirectoryKind | None,
                      *, event_name: str, confirmed: bool = True) -> AccountView:
        """Connect (``kind``) or disconnect (None) the account's one directory.

        Only enterprise accounts may connect; an account has at most one directory (Conflict
        when another kind is connected); Okta needs ``confirmed`` (see :meth:`_connect`).
        Disconnecting makes the account console-managed: users keep their current tier and
        become editable in the console.
        """

        def work(repo: Repository) -> tuple[AccountView, dict[str, Any]]:
            detail: dict[str, Any] = {}
            if kind is not None:
                connected = self._connect(repo, account_id, kind, confirmed=confirmed)
                account, detail = connected.account, connected.detail
            else:
                account = self._account(repo, account_id, lock=True)
                self._disconnect(repo, account)
            view = self._account_view(repo, account)
            return view, {"accountType": view.type.value, **detail}

        return self._run(actor, event_name, {"accountId": account_id,
                                             "directory": kind.value if kind else None},
                         work, account_id=account_id)

    def okta_connect_plan(self, account_id: str) -> ConnectPlan | None:
        """What connecting Okta would change for the account (the console's confirmation
        page, the admin API's preview), or None when Okta is already connected. Raises
        NotFound, Forbidden (not enterprise), Conflict (Active Directory connected)."""

        def work(repo: Repository) -> ConnectPlan | None:
            account = self._account(repo, account_id)
            if not repo.has_verified_domain(account_id):
                raise Forbidden("Only enterprise accounts (with a verified claimed domain) "
                                "can connect a directory.")
            if account.directory_kind == DirectoryKind.OKTA.value:
                return None
            if account.directory_kind is not None:
                raise Conflict("The account already has a directory connected "
                               f"({account.directory_kind}); disconnect it first.")
            return self._okta_plan(repo, account)

        return self._read(work)

    def list_group_mappings(self, account_id: str) -> list[GroupMappingView]:
        def work(repo: Repository) -> list[GroupMappingView]:
            self._account(repo, account_id)
            return [GroupMappingView(m.name, Tier(m.tier), m.created_at)
                    for m in repo.mappings(account_id)]

        return self._read(work)

    def add_or_update_group_mappings(self, actor: Actor, account_id: str,
                                     mappings: Mapping[str, Tier]) -> list[GroupMappingView]:
        """AddOrUpdateGroups: map directory group names to tiers; tiers change at once.

        For an Okta account a group must have been pushed over SCIM first (NotFound with the
        guide's message otherwise). Names compare case-insensitively.
        """
        params = {"accountId": account_id,
                  "groups": [{"groupName": n, "licenseType": t.value}
                             for n, t in mappings.items()]}

        def work(repo: Repository) -> tuple[list[GroupMappingView], dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            if not mappings:
                raise ValidationError("At least one group is required.", field="Groups")
            for name, tier in mappings.items():
                group_name(name, field="GroupName")
                if not isinstance(tier, Tier):
                    raise ValidationError("LicenseType must be Pro or Basic.",
                                          field="LicenseType")
            if account.directory_kind == DirectoryKind.OKTA.value:
                known = {g.name_lower for g in repo.groups_by_names(account_id, mappings)}
                missing = [n for n in mappings if n.strip().lower() not in known]
                if missing:
                    raise NotFound(
                        f"The group {missing[0]!r} was not found. The two systems might not "
                        "have completed the sync: wait a few minutes and add the group again."
                    )
            existing = {m.name_lower: m for m in repo.mappings(account_id)}
            for name, tier in mappings.items():
                clean = name.strip()
                row = existing.get(clean.lower())
                if row is None:
                    repo.session.add(GroupMapping(account_id=account_id, name=clean,
                                                  name_lower=clean.lower(), tier=tier.value,
                                                  created_at=self._now()))
                else:
                    row.tier = tier.value
            self._refresh_tiers(repo, account_id, None)
            views = [GroupMappingView(m.name, Tier(m.tier), m.created_at)
                     for m in repo.mappings(account_id)]
            return views, {"groups": [v.name for v in views]}

        return self._run(actor, "AddOrUpdateGroups", params, work, account_id=account_id)

    def delete_group_mappings(self, actor: Actor, account_id: str,
                              names: Sequence[str]) -> None:
        """DeleteGroups: remove mappings (NotFound for a name that is not mapped)."""

        def work(repo: Repository) -> tuple[None, None]:
            self._account(repo, account_id, lock=True)
            existing = {m.name_lower: m for m in repo.mappings(account_id)}
            for name in names:
                row = existing.get(name.strip().lower())
                if row is None:
                    raise NotFound(f"The group {name!r} is not mapped in this account.")
                repo.session.delete(row)
            self._refresh_tiers(repo, account_id, None)
            return None, None

        self._run(actor, "DeleteGroups", {"accountId": account_id, "groupNames": list(names)},
                  work, account_id=account_id)
