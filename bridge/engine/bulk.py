"""Directory users in bulk: a page of the AD sync applied with set-based statements, by the
same rules as :class:`~bridge.engine.provisioning.Provisioning` applies them one by one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bridge import audit
from bridge.domain import (
    Actor,
    IdentitySource,
    Tier,
    UserStatus,
    effective_addresses,
    email_domain,
    new_personal_pin,
    tier_for_groups,
)
from bridge.domain.search import folded_user_document
from bridge.engine.directory_groups import DirectoryGroups
from bridge.engine.provisioning import (
    Provisioning,
    directory_addresses,
    directory_user_params,
)
from bridge.engine.results import (
    DirectoryUserInput,
    DirectoryUserOutcome,
    DirectoryUserResult,
    UserView,
)
from bridge.engine.room import Clock, Room, chunks
from bridge.engine.unit_of_work import UnitOfWork
from bridge.errors import BridgeError, Conflict, Forbidden, NotFound, ValidationError
from bridge.store import licenses
from bridge.store.driver_insert import insert_rows
from bridge.store.models import (
    DirectoryGroup,
    EmailAddress,
    ExternalIdentity,
    GroupMembership,
    User,
    new_id,
    utcnow,
)
from bridge.store.repository import NEW_USER_DEFAULTS, Repository

log = logging.getLogger(__name__)


class BulkProvisioning(Room):
    """Pages of directory users (the AD sync), falling back to the per-user path."""

    def __init__(self, uow: UnitOfWork, clock: Clock, provisioning: Provisioning,
                 groups: DirectoryGroups) -> None:
        super().__init__(uow, clock)
        self._provisioning = provisioning
        self._groups = groups

    def apply_directory_users(self, actor: Actor, account_id: str, source: IdentitySource,
                              items: Sequence[DirectoryUserInput], *,
                              event_name: str) -> list[DirectoryUserOutcome]:
        """Apply a page of directory users: for each item in order, exactly what
        :meth:`upsert_directory_user` (``on_address_conflict="skip"``, keyed by
        ``external_id`` or ``user_id``) followed by :meth:`set_user_groups`
        (``create_missing=True``) do, with set-based queries and bulk inserts.

        Returns one outcome per item, in order. An address another user owns — or that an
        earlier item of the page took — is skipped and reported in the result. A refused
        item (an unknown ``user_id``, an external id linked to another user, an invalid
        primary address, an account without a directory) is reported with its error and
        changes nothing; the rest of the page is applied. Each applied or refused item
        writes ONE audit event ``event_name`` (the request parameters of
        :meth:`upsert_directory_user` plus ``groups`` when memberships are set; response
        ``userId``, ``created``, ``skipped``); an invalid primary address is refused
        unaudited, as :meth:`upsert_directory_user` does.

        Runs in the open :meth:`single_transaction` (else in a transaction of its own). If
        the bulk write meets a uniqueness conflict (a concurrent writer), the page is
        rolled back to a savepoint and applied item by item through the per-user
        operations (then two audit events per user, as those write).
        """
        with self._uow.single_transaction() as session:  # joins the open one
            try:
                with session.begin_nested():
                    return _DirectoryPage(self._now(), Repository(session), actor, account_id,
                                          source, event_name).apply(items)
            except IntegrityError as exc:
                log.info("bulk directory page conflicted (%s); applying user by user",
                         exc.orig)
            return [self._apply_directory_user_alone(actor, account_id, source, item,
                                                     event_name) for item in items]

    def _apply_directory_user_alone(self, actor: Actor, account_id: str,
                                    source: IdentitySource, item: DirectoryUserInput,
                                    event_name: str) -> DirectoryUserOutcome:
        """The per-user path of :meth:`apply_directory_users` (its fallback)."""
        try:
            result = self._provisioning.upsert_directory_user(
                actor, account_id, source=source, external_id=item.external_id,
                primary_email=item.primary_email, other_emails=item.other_emails,
                display_name=item.display_name, enabled=item.enabled,
                on_address_conflict="skip", event_name=event_name, user_id=item.user_id)
            if item.replace_groups or result.created:
                view = self._groups.set_user_groups(
                    actor, account_id, result.user.id, item.groups, create_missing=True,
                    event_name=event_name + "Groups")
                result = DirectoryUserResult(view, result.created, result.skipped_addresses)
        except BridgeError as exc:
            return DirectoryUserOutcome(None, exc)
        return DirectoryUserOutcome(result)


# =========================================================================================
# A page of directory users in bulk (BulkProvisioning.apply_directory_users)
# =========================================================================================


def _table(model: type[Any]) -> Table:
    """The Core table of a mapped class (for set-based statements)."""
    return cast(Table, model.__table__)


class _DirectoryPage:
    """One call of :meth:`BulkProvisioning.apply_directory_users`.

    Loads the rows the page can touch in a few set-based queries (links, users, their
    addresses and memberships, the owners of every address the page wants, the groups it
    names), applies the rules of ``upsert_directory_user`` + ``set_user_groups`` to that
    state in memory item by item (so a later item sees what an earlier one did), then
    writes the difference with bulk statements. Never commits."""

    def __init__(self, now: datetime, repo: Repository, actor: Actor,
                 account_id: str, source: IdentitySource, event_name: str) -> None:
        self.repo, self.actor = repo, actor
        self.account_id, self.source, self.event_name = account_id, source, event_name
        self.now = now
        self.audit_rows: list[dict[str, Any]] = []
        # One event per user, all of one actor, name and account: built from one template.
        self._events = audit.EventTemplate(actor, event_name, account_id=account_id)

    def _audit(self, params: Mapping[str, Any], *, response: Mapping[str, Any] | None = None,
               error: BridgeError | None = None) -> None:
        self.audit_rows.append(self._events.row(
            params, response, error.code if error else None,
            error.message if error else None))

    def _in(self, stmt_for: Callable[[Sequence[str]], Any], values: Iterable[str]) -> list[Any]:
        """Rows of ``stmt_for(chunk)`` over ``values`` in chunks (bounded IN lists)."""
        ordered = sorted(set(values))
        rows: list[Any] = []
        for chunk in chunks(ordered):
            rows.extend(self.repo.session.execute(stmt_for(chunk)).all())
        return rows

    def apply(self, items: Sequence[DirectoryUserInput]) -> list[DirectoryUserOutcome]:
        session, account_id, source = self.repo.session, self.account_id, self.source.value
        session.flush()
        outcomes: list[DirectoryUserOutcome | None] = [None] * len(items)
        # Normalise as upsert_directory_user does before its unit of work (an invalid
        # primary address is refused there, unaudited).
        prepared: list[tuple[int, DirectoryUserInput, str | None, list[str],
                             dict[str, Any]]] = []
        for index, item in enumerate(items):
            try:
                # The provisioning room's own rule functions (same addresses, same event).
                primary, others = directory_addresses(item.primary_email, item.other_emails)
            except ValidationError as exc:
                outcomes[index] = DirectoryUserOutcome(None, exc)
                continue
            params = directory_user_params(account_id, self.source, item.external_id,
                                           primary, others, item.enabled, None)
            prepared.append((index, item, primary, others, params))

        account = self.repo.account(account_id)
        page_error: BridgeError | None = None
        if account is None:
            page_error = NotFound(f"Account {account_id} was not found.")
        elif account.directory_kind is None:
            page_error = Forbidden("The account has no directory connected.")
        if page_error is not None:
            for index, _item, _p, _o, params in prepared:
                outcomes[index] = DirectoryUserOutcome(None, page_error)
                self._audit(params, error=page_error)
            self._write_audit()
            return [o for o in outcomes if o is not None]

        verified = self.repo.verified_domain_names(account_id)
        eff: dict[int, tuple[str | None, list[str]]] = {
            index: effective_addresses(primary, others, verified)
            for index, _item, primary, others, _params in prepared}

        # --- load the state the page can touch --------------------------------------------
        xi, ut, ea, gm, dg = (_table(ExternalIdentity), _table(User),
                              _table(EmailAddress), _table(GroupMembership),
                              _table(DirectoryGroup))
        link_owner: dict[str, str] = {}
        for ext, uid in self._in(lambda c: select(xi.c.external_id, xi.c.user_id).where(
                xi.c.source == source, xi.c.issuer == account_id, xi.c.external_id.in_(c)),
                [item.external_id for _i, item, _p, _o, _q in prepared]):
            link_owner[ext] = uid
        user_ids = set(link_owner.values()) | {
            item.user_id for _i, item, _p, _o, _q in prepared if item.user_id is not None}
        users: dict[str, dict[str, Any]] = {
            row["id"]: dict(row) for row in (r._mapping for r in self._in(
                lambda c: select(ut).where(ut.c.id.in_(c)), user_ids))}
        # (account, tier) as loaded: what changes goes to the tier history.
        licensed = {uid: (row["account_id"], row["tier"]) for uid, row in users.items()}
        user_exts: dict[str, set[str]] = {uid: set() for uid in users}
        # By user_id alone, source and issuer checked here: with them in the WHERE clause
        # SQLite walks the (source, issuer, external_id) index over every identity of the
        # account (O(account users) per page: 12-23 ms at 10k users) instead of probing
        # the user_id index for the page's few users.
        for ext, uid, row_source, row_issuer in self._in(
                lambda c: select(xi.c.external_id, xi.c.user_id, xi.c.source, xi.c.issuer)
                .where(xi.c.user_id.in_(c)), users):
            if row_source != source or row_issuer != account_id:
                continue
            link_owner[ext] = uid
            user_exts[uid].add(ext)
        addr: dict[str, tuple[str, bool]] = {}
        user_addrs: dict[str, set[str]] = {uid: set() for uid in users}
        for address, uid, is_primary in self._in(
                lambda c: select(ea.c.address, ea.c.user_id, ea.c.is_primary).where(
                    ea.c.user_id.in_(c)), users):
            addr[address] = (uid, bool(is_primary))
            user_addrs[uid].add(address)
        wanted_addresses = {a for p, aliases in eff.values() for a in [p, *aliases] if a}
        for address, uid, is_primary in self._in(
                lambda c: select(ea.c.address, ea.c.user_id, ea.c.is_primary).where(
                    ea.c.address.in_(c)), wanted_addresses - set(addr)):
            addr[address] = (uid, bool(is_primary))
        members: dict[str, set[str]] = {uid: set() for uid in users}
        for gid, uid in self._in(lambda c: select(gm.c.group_id, gm.c.user_id).where(
                gm.c.user_id.in_(c)), users):
            members[uid].add(gid)
        names_lower = {n.strip().lower() for _i, item, _p, _o, _q in prepared
                       for n in item.groups if isinstance(n, str) and n.strip()}
        group_ids: dict[str, str] = dict(self._in(
            lambda c: select(dg.c.name_lower, dg.c.id).where(
                dg.c.account_id == account_id, dg.c.name_lower.in_(c)), names_lower))
        initial_links, initial_addr = dict(link_owner), dict(addr)
        initial_members = {uid: set(gids) for uid, gids in members.items()}

        # --- the per-user rules, item by item, on that state ----------------------------
        new_users: list[str] = []
        new_groups: list[dict[str, Any]] = []
        applied: list[tuple[int, str, bool, tuple[str, ...]]] = []
        for index, item, primary, others, params in prepared:
            ext = item.external_id
            user: dict[str, Any] | None = None
            if item.user_id is not None:
                found = users.get(item.user_id)
                if found is None or found["account_id"] != account_id:
                    error: BridgeError = NotFound(
                        f"User {item.user_id} was not found in account {account_id}.")
                    outcomes[index] = DirectoryUserOutcome(None, error)
                    self._audit(params, error=error)
                    continue
                user = found
            elif ext in link_owner:
                user = users[link_owner[ext]]
            if user is not None and link_owner.get(ext, user["id"]) != user["id"]:
                error = Conflict(f"The external id {ext!r} belongs to another user.")
                outcomes[index] = DirectoryUserOutcome(None, error)
                self._audit(params, error=error)
                continue
            eff_primary, aliases = eff[index]
            own_id = user["id"] if user is not None else None
            skipped = [a for a in [eff_primary, *aliases]
                       if a and a in addr and addr[a][0] != own_id]
            if eff_primary in skipped:
                eff_primary = None
            aliases = [a for a in aliases if a not in skipped]
            created = user is None
            if user is None:
                uid = new_id()
                user = users[uid] = {
                    **_NEW_USER_DEFAULTS, "id": uid, "account_id": account_id,
                    "status": UserStatus.REGISTERED.value, "created_at": self.now,
                    "attributes": {}, "source_addresses": []}
                user_exts[uid], user_addrs[uid], members[uid] = set(), set(), set()
                new_users.append(uid)
            uid = user["id"]
            was_enabled = user["directory_enabled"] and user["in_directory"]
            user.update(primary_email=primary or "", display_name=item.display_name,
                        source_addresses=([primary] if primary else []) + others,
                        in_directory=True, directory_deleted_at=None,
                        directory_enabled=item.enabled, updated_at=self.now)
            user["search_folded"] = folded_user_document(
                user["display_name"], user["attributes"], user["user_name"],
                user["primary_email"])
            if user["status"] == UserStatus.RELEASED.value:
                user["status"] = UserStatus.REGISTERED.value
            if was_enabled and not item.enabled:
                user["sessions_valid_after"] = self.now
            wanted: dict[str, bool] = {}
            if eff_primary:
                wanted[eff_primary] = True
            for alias in aliases:
                wanted.setdefault(alias, False)
            for address in user_addrs[uid] - set(wanted):
                del addr[address]
            for address, is_primary in wanted.items():
                addr[address] = (uid, is_primary)
            user_addrs[uid] = set(wanted)
            for old_ext in user_exts[uid] - {ext}:
                link_owner.pop(old_ext, None)
            link_owner[ext] = uid
            user_exts[uid] = {ext}
            request = dict(params)
            if item.replace_groups or created:
                names = [n.strip() for n in item.groups if isinstance(n, str) and n.strip()]
                wanted_groups: set[str] = set()
                for name in names:
                    if name.lower() not in group_ids:
                        group_ids[name.lower()] = new_id()
                        new_groups.append({"id": group_ids[name.lower()],
                                           "account_id": account_id, "name": name,
                                           "name_lower": name.lower(), "external_id": None,
                                           "attributes": {}, "created_at": self.now,
                                           "updated_at": self.now, "version": 1})
                    wanted_groups.add(group_ids[name.lower()])
                members[uid] = wanted_groups
                request["groups"] = names
            self._audit(request, response={"userId": uid, "created": created,
                                           "skipped": skipped})
            applied.append((index, uid, created, tuple(skipped)))

        # --- the tier rule, on the final memberships ---------------------------------------
        touched = list(dict.fromkeys(uid for _i, uid, _c, _s in applied))
        group_names = self._group_names(touched, members, new_groups)
        mappings = {m.name: Tier(m.tier) for m in self.repo.mappings(account_id)}
        for uid in touched:
            tier = tier_for_groups((group_names[g][1] for g in members[uid]), mappings)
            users[uid]["tier"] = tier.value if tier else None

        # --- write the difference ---------------------------------------------------------
        self._assign_pins([users[uid] for uid in new_users])
        if new_groups:
            session.execute(insert(dg), new_groups)
        new_set = set(new_users)
        # New rows go to the driver prepared (bridge/store/driver_insert.py): a cold
        # import creates every user of the directory, page after page.
        insert_rows(session, ut, [{k: users[uid][k] for k in _NEW_USER_KEYS}
                                  for uid in new_users])
        existing = [uid for uid in touched if uid not in new_set]
        if existing:
            session.execute(_USER_UPDATE, [
                {"b_id": uid, **{f"b_{k}": users[uid][k] for k in _UPDATED_KEYS}}
                for uid in existing])
        licenses.record(session, [
            {"user_id": uid, "account_id": users[uid]["account_id"],
             "tier": users[uid]["tier"], "changed_at": self.now}
            for uid in touched
            # A new user without a tier needs no row (no license before the first one).
            if licensed.get(uid, (users[uid]["account_id"], None))
            != (users[uid]["account_id"], users[uid]["tier"])])
        self._write_addresses(initial_addr, addr)
        self._write_links(initial_links, link_owner)
        self._write_members(initial_members, members)
        self._write_audit()
        session.expire_all()
        views = self._views(touched, new_set, users, user_addrs, addr, members, group_names)
        for index, uid, created, skipped_addresses in applied:
            outcomes[index] = DirectoryUserOutcome(
                DirectoryUserResult(views[uid], created, skipped_addresses))
        return [o for o in outcomes if o is not None]

    def _assign_pins(self, new_users: Sequence[dict[str, Any]]) -> None:
        """Unique personal PINs for the new users: candidates checked in one query a
        round (a clash, rare, draws again)."""
        pending = list(new_users)
        taken_here: set[str] = set()
        for _ in range(20):
            if not pending:
                return
            candidates = [new_personal_pin() for _u in pending]
            taken = {row[0] for row in self._in(
                lambda c: select(User.personal_pin).where(User.personal_pin.in_(c)),
                candidates)}
            retry: list[dict[str, Any]] = []
            for user, pin in zip(pending, candidates, strict=True):
                if pin in taken or pin in taken_here:
                    retry.append(user)
                else:
                    user["personal_pin"] = pin
                    taken_here.add(pin)
            pending = retry
        if pending:
            raise Conflict("Could not allocate a unique personal PIN; try again.")

    def _write_addresses(self, before: Mapping[str, tuple[str, bool]],
                         after: Mapping[str, tuple[str, bool]]) -> None:
        ea, session = _table(EmailAddress), self.repo.session
        gone = [a for a, (uid, _p) in before.items() if a not in after or after[a][0] != uid]
        flipped = [{"b_address": a, "b_is_primary": after[a][1]} for a, (uid, p) in
                   before.items() if a in after and after[a][0] == uid and after[a][1] != p]
        added = [{"address": a, "user_id": uid, "domain": email_domain(a), "is_primary": p}
                 for a, (uid, p) in after.items() if a not in before or before[a][0] != uid]
        for chunk in chunks(sorted(gone)):
            session.execute(delete(ea).where(ea.c.address.in_(chunk)))
        if flipped:
            session.execute(update(ea).where(ea.c.address == bindparam("b_address"))
                            .values(is_primary=bindparam("b_is_primary")), flipped)
        insert_rows(session, ea, added)

    def _write_links(self, before: Mapping[str, str], after: Mapping[str, str]) -> None:
        xi, session = _table(ExternalIdentity), self.repo.session
        gone = [e for e, uid in before.items() if after.get(e) != uid]
        created_at = utcnow()  # one instant for the page's links (one transaction)
        added = [{"user_id": uid, "source": self.source.value, "issuer": self.account_id,
                  "external_id": e, "created_at": created_at}
                 for e, uid in after.items() if before.get(e) != uid]
        for chunk in chunks(sorted(gone)):
            session.execute(delete(xi).where(
                xi.c.source == self.source.value, xi.c.issuer == self.account_id,
                xi.c.external_id.in_(chunk)))
        insert_rows(session, xi, added)

    def _write_members(self, before: Mapping[str, set[str]],
                       after: Mapping[str, set[str]]) -> None:
        gm, session = _table(GroupMembership), self.repo.session
        gone = [{"b_group": g, "b_user": uid} for uid, gids in before.items()
                for g in sorted(gids - after.get(uid, set()))]
        added = [{"group_id": g, "user_id": uid} for uid, gids in after.items()
                 for g in sorted(gids - before.get(uid, set()))]
        if gone:
            session.execute(delete(gm).where(gm.c.group_id == bindparam("b_group"),
                                             gm.c.user_id == bindparam("b_user")), gone)
        insert_rows(session, gm, added)

    def _write_audit(self) -> None:
        UnitOfWork.record_many(self.repo.session, self.audit_rows)
        self.audit_rows = []

    def _group_names(self, user_ids: Sequence[str], members: Mapping[str, set[str]],
                     new_groups: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
        """Group id → (name_lower, name) for every group of ``user_ids``."""
        dg = _table(DirectoryGroup)
        names: dict[str, tuple[str, str]] = {g["id"]: (g["name_lower"], g["name"])
                                             for g in new_groups}
        wanted = {gid for uid in user_ids for gid in members[uid]} - set(names)
        for gid, name_lower, name in self._in(
                lambda c: select(dg.c.id, dg.c.name_lower, dg.c.name).where(dg.c.id.in_(c)),
                wanted):
            names[gid] = (name_lower, name)
        return names

    def _views(self, user_ids: Sequence[str], created: set[str],
               users: Mapping[str, Mapping[str, Any]], user_addrs: Mapping[str, set[str]],
               addr: Mapping[str, tuple[str, bool]], members: Mapping[str, set[str]],
               group_names: Mapping[str, tuple[str, str]]) -> dict[str, UserView]:
        """The applied users as the per-user operations return them, from the state the
        page holds (every column it wrote, the final addresses, memberships and tiers).
        Only the ``version`` of users that existed is read back: the UPDATE increments it
        in SQL, so a concurrent writer's bump is never lost."""
        ut = _table(User)
        versions: dict[str, int] = {}
        for uid, version in self._in(lambda c: select(ut.c.id, ut.c.version).where(
                ut.c.id.in_(c)), [uid for uid in user_ids if uid not in created]):
            versions[uid] = version
        views: dict[str, UserView] = {}
        for uid in user_ids:
            state = SimpleNamespace(**users[uid])
            if uid in versions:
                state.version = versions[uid]
            # Ordered as the store orders them: primary first, then by address.
            addresses = sorted((_Address(a, addr[a][1]) for a in user_addrs[uid]),
                               key=lambda a: (not a.is_primary, a.address))
            ordered = sorted((*group_names[g], g) for g in members[uid])
            views[uid] = UserView.of(cast(User, state), cast(Any, addresses),
                                     tuple(name for _lower, name, _gid in ordered),
                                     tuple(gid for _lower, _name, gid in ordered))
        return views


class _Address(NamedTuple):
    address: str
    is_primary: bool


# Columns of a user the page writes: all of them for a new user, the directory facts for
# an existing one (the rest keep their values or defaults).
_UPDATED_KEYS = ("primary_email", "display_name", "search_folded", "source_addresses",
                 "in_directory",
                 "directory_deleted_at", "directory_enabled", "status",
                 "sessions_valid_after", "updated_at", "tier")
# A new user's columns besides those the page sets (the model's defaults, written
# explicitly so the returned view needs no read-back of them).
_NEW_USER_DEFAULTS = NEW_USER_DEFAULTS
_NEW_USER_KEYS = ("id", "account_id", "created_at", "attributes",
                  *dict.fromkeys([*_NEW_USER_DEFAULTS, *_UPDATED_KEYS]))


def _user_update() -> Any:
    ut = _table(User)
    return (update(ut).where(ut.c.id == bindparam("b_id"))
            .values(version=ut.c.version + 1,
                    **{k: bindparam(f"b_{k}", type_=ut.c[k].type) for k in _UPDATED_KEYS}))


_USER_UPDATE = _user_update()
