"""Searching users and groups: the translation of the neutral filter tree
(:mod:`bridge.domain.search`) to SQL.

Doors build a :data:`Node` tree from their protocol's filter language and hand it to the
engine with a :class:`SearchQuery`; the store turns it into SQLAlchemy expressions here. Every
value is bound as a parameter (never spliced into SQL), and the same expressions run on SQLite
and PostgreSQL: ``co``/``sw``/``ew`` use ``replace``/``substr`` (case-exact on both backends,
unlike SQLite's ASCII-case-insensitive ``LIKE``), and case-insensitive attributes compare
lowercased copies.

Attribute names in the tree are canonical (``userName``, ``emails.value``, ``meta.created``):
the door resolves case and schema URNs. A name this module does not know raises
:class:`InvalidFilter` — an unknown attribute is an error, never "no filter".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    bindparam,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session

from bridge.domain import IdentitySource
from bridge.domain.search import (
    ENTERPRISE_USER,
    Comparison,
    Node,
    Ref,
    SearchQuery,
    ValueFilter,
)
from bridge.errors import ValidationError
from bridge.store.filter_sql import (
    Compiler,
    Transform,
    _Binder,
    _boolean,
    _compile,
    _emails,
    _emails_attribute,
    _moment,
    _no_nesting,
    _shape,
    _string,
    _unknown,
    _values,
)
from bridge.store.models import (
    DirectoryGroup,
    EmailAddress,
    ExternalIdentity,
    GroupMembership,
    User,
)


@dataclass(frozen=True)
class UserRows:
    """A page of users as stored: ``users`` are rows with the user columns, ``addresses``
    their effective addresses (user id → rows), ``groups`` their groups (only when asked
    for). The engine turns it into views."""

    total: int
    users: list[Any]
    addresses: dict[str, list[Any]]
    groups: dict[str, list[Ref]] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupRows:
    """A page of directory groups as stored; ``members`` None when not asked for."""

    total: int
    groups: list[Any]
    members: dict[str, list[Ref]] | None = None


# --- users ------------------------------------------------------------------------------

def _user_leaf(b: _Binder, sqlite: bool) -> Compiler:
    def leaf(c: Comparison) -> ColumnElement[bool]:
        name = c.attribute
        if name == "id":
            return _string(b, User.id, c.op, fold=False)
        if name == "userName":
            return _string(b, User.user_name, c.op, fold=True,
                           folded_column=User.user_name_lower)
        if name == "displayName":
            return _string(b, User.display_name, c.op, fold=True,
                           folded_column=_folded_string(("displayName",)))
        if name == "externalId":
            if c.op == "ne":
                return not_(leaf(Comparison("externalId", "eq", c.value)))
            return User.id.in_(select(ExternalIdentity.user_id).where(
                ExternalIdentity.source == IdentitySource.SCIM.value,
                ExternalIdentity.issuer == bindparam("account_id"),
                _string(b, ExternalIdentity.external_id, c.op, fold=False)))
        if name == "active":
            return _boolean(b, User.directory_enabled, c.op)
        if name in ("emails", "emails.value", "emails.primary", "emails.type",
                    "emails.display"):
            sub = name.partition(".")[2] or "value"
            return _emails_attribute(b, Comparison(sub, c.op, c.value), sqlite)
        if name == "meta.created":
            return _moment(b, User.created_at, c.op)
        if name == "meta.lastModified":
            return _moment(b, User.updated_at, c.op)
        path = USER_DOCUMENT_STRINGS.get(name)
        if path is not None:
            return _string(b, _document_string(path), c.op, fold=True,
                           folded_column=_folded_string(path))
        raise _unknown(name)

    return leaf


def _user_value_filter(b: _Binder,
                       sqlite: bool) -> Callable[[ValueFilter], ColumnElement[bool]]:
    def value_filter(node: ValueFilter) -> ColumnElement[bool]:
        if node.attribute != "emails":
            raise _unknown(node.attribute)
        return _emails(b, node.node, sqlite)

    return value_filter


# The singular, case-insensitive strings of the user's attributes document (the SCIM-owned
# profile, RFC 7643 sections 4.1 and 4.3) that filters and sortBy may name: canonical name
# -> JSON path in ``users.attributes``. Multi-valued ones (phoneNumbers, addresses, ...) are
# not searchable; emails are, through the address table.
USER_DOCUMENT_STRINGS: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name in ("nickName", "profileUrl", "title", "userType",
                                  "preferredLanguage", "locale", "timezone")},
    **{f"name.{sub}": ("name", sub) for sub in ("formatted", "familyName", "givenName",
                                                 "middleName", "honorificPrefix",
                                                 "honorificSuffix")},
    **{f"{ENTERPRISE_USER}:{name}": (ENTERPRISE_USER, name)
       for name in ("employeeNumber", "costCenter", "organization", "division",
                    "department")},
    f"{ENTERPRISE_USER}:manager": (ENTERPRISE_USER, "manager", "value"),
    f"{ENTERPRISE_USER}:manager.value": (ENTERPRISE_USER, "manager", "value"),
}


def _document_string(path: tuple[str, ...]) -> Any:
    """The string at ``path`` of the user's attributes document (NULL when absent): SQLite's
    ``json_extract``, PostgreSQL's ``#>>``, from the same expression."""
    column: Any = User.attributes
    return (column[path[0]] if len(path) == 1 else column[path]).as_string()


def _folded_string(path: tuple[str, ...]) -> Any:
    """The same string in ``users.search_folded``, lowered by Python (see
    ``bridge.domain.search.folded_user_document``)."""
    column: Any = User.search_folded
    return (column[path[0]] if len(path) == 1 else column[path]).as_string()


USER_SORT = {"id": User.id, "userName": User.user_name_lower,
             "displayName": _folded_string(("displayName",)),
             "meta.created": User.created_at, "meta.lastModified": User.updated_at,
             **{name: _folded_string(path) for name, path in USER_DOCUMENT_STRINGS.items()}}
GROUP_SORT = {"id": DirectoryGroup.id, "displayName": DirectoryGroup.name_lower,
              "externalId": DirectoryGroup.external_id,
              "meta.created": DirectoryGroup.created_at,
              "meta.lastModified": DirectoryGroup.updated_at}


def _order(sorts: dict[str, Any], query: SearchQuery, tie: Any) -> list[Any]:
    if query.sort_by is None:
        return [tie]
    column = sorts.get(query.sort_by)
    if column is None:
        raise ValidationError(f"Sorting by {query.sort_by!r} is not supported.",
                              field="sortBy")
    # NULLs sort last ascending on PostgreSQL and first on SQLite: pin them (RFC 7644 3.4.2.3
    # says missing values sort last ascending) so both backends page identically.
    primary = column.desc().nulls_first() if query.descending else column.asc().nulls_last()
    return [primary, tie]


@dataclass(frozen=True)
class _Prepared:
    page: Any
    count: Any
    transforms: tuple[Transform, ...]


_CACHE: OrderedDict[Any, _Prepared] = OrderedDict()
_CACHE_SIZE = 512
_CACHE_LOCK = threading.Lock()


def _prepared(kind: str, query: SearchQuery,
              build: Callable[[_Binder], tuple[Any, Any]]) -> _Prepared:
    """The cached statements of this query's shape (built on first use). ``kind`` names
    the dialect too where the statement differs by backend."""
    key = (kind, _shape(query.filter), query.sort_by, query.descending)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    binder = _Binder()
    page, count = build(binder)
    prepared = _Prepared(page, count, tuple(binder.transforms))
    with _CACHE_LOCK:
        _CACHE[key] = prepared
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return prepared


def _params(prepared: _Prepared, query: SearchQuery, account_id: str) -> dict[str, Any]:
    values = _values(query.filter) if query.filter is not None else []
    params: dict[str, Any] = {f"p{i}": transform(value) for i, (transform, value)
                              in enumerate(zip(prepared.transforms, values, strict=True))}
    params.update(account_id=account_id, offset=max(query.start_index, 1) - 1,
                  limit=query.count)
    return params


def _paged(session: Session, prepared: _Prepared, params: dict[str, Any],
           query: SearchQuery) -> tuple[int, list[Any]]:
    """(total matches, the page's rows). Rows are Core rows, not ORM objects: a lookup is
    the hot path of provisioning and the ORM's identity map buys nothing for a read."""
    conn = session.connection()
    rows = list(conn.execute(prepared.page, params)) if query.count > 0 else []
    if params["offset"] == 0 and len(rows) < query.count:
        total = len(rows)  # the page holds every match: no second query
    else:
        total = int(conn.execute(prepared.count, params).scalar() or 0)
    return total, rows


def _statements(table: Any, where: list[ColumnElement[bool]],
                order: list[Any]) -> tuple[Any, Any]:
    page = (select(table).where(*where).order_by(*order)
            .offset(bindparam("offset")).limit(bindparam("limit")))
    count = select(func.count()).select_from(table).where(*where)
    return page, count


_ADDRESSES = (select(EmailAddress.__table__)
              .where(EmailAddress.user_id.in_(bindparam("ids", expanding=True)))
              .order_by(EmailAddress.is_primary.desc(), EmailAddress.address))
_USER_GROUPS = (select(GroupMembership.user_id, DirectoryGroup.id, DirectoryGroup.name)
                .join(DirectoryGroup, DirectoryGroup.id == GroupMembership.group_id)
                .where(GroupMembership.user_id.in_(bindparam("ids", expanding=True)))
                .order_by(DirectoryGroup.name_lower))
_GROUP_MEMBERS = (select(GroupMembership.group_id, User.id, User.display_name)
                  .join(User, User.id == GroupMembership.user_id)
                  .where(GroupMembership.group_id.in_(bindparam("ids", expanding=True)))
                  .order_by(User.id))


def search_users(session: Session, account_id: str, query: SearchQuery, *,
                 include_groups: bool, include_addresses: bool = True) -> UserRows:
    """One page of the account's users matching ``query`` (see the module docstring).

    ``include_addresses`` False skips reading the effective addresses: the views' ``aliases``
    are then empty (SCIM renders the emails the client sent, kept with the attributes).
    Raises InvalidFilter for a filter the store cannot evaluate, ValidationError for an
    unknown sort attribute.
    """

    sqlite = session.get_bind().dialect.name == "sqlite"

    def build(b: _Binder) -> tuple[Any, Any]:
        where: list[ColumnElement[bool]] = [User.account_id == bindparam("account_id")]
        if query.filter is not None:
            where.append(_compile(query.filter, _user_leaf(b, sqlite),
                                  _user_value_filter(b, sqlite)))
        return _statements(User.__table__, where, _order(USER_SORT, query, User.id))

    prepared = _prepared("users-sqlite" if sqlite else "users", query, build)
    total, users = _paged(session, prepared, _params(prepared, query, account_id), query)
    ids = [u.id for u in users]
    addresses: dict[str, list[Any]] = {uid: [] for uid in ids}
    groups: dict[str, list[Ref]] = {}
    conn = session.connection()
    if ids and include_addresses:
        for row in conn.execute(_ADDRESSES, {"ids": ids}):
            addresses[row.user_id].append(row)
    if ids and include_groups:
        groups = {uid: [] for uid in ids}
        for uid, gid, name in conn.execute(_USER_GROUPS, {"ids": ids}).tuples():
            groups[uid].append(Ref(gid, name))
    return UserRows(total, list(users), addresses, groups)


# --- groups -----------------------------------------------------------------------------

def _members(b: _Binder, node: Node) -> ColumnElement[bool]:
    def leaf(c: Comparison) -> ColumnElement[bool]:
        if c.attribute.lower() != "value":
            raise _unknown(f"members.{c.attribute}")
        # members.value is not caseExact (RFC 7643 section 8.7.1). A user id is minted
        # lowercase (``models.new_id``), so the column is its own folded copy and the
        # index still serves ``members[value eq ...]``.
        return _string(b, GroupMembership.user_id, c.op, fold=True,
                       folded_column=GroupMembership.user_id)

    return DirectoryGroup.id.in_(select(GroupMembership.group_id).where(
        _compile(node, leaf, _no_nesting)))


def _group_leaf(b: _Binder) -> Compiler:
    def leaf(c: Comparison) -> ColumnElement[bool]:
        name = c.attribute
        if name == "id":
            return _string(b, DirectoryGroup.id, c.op, fold=False)
        if name == "displayName":
            return _string(b, DirectoryGroup.name, c.op, fold=True,
                           folded_column=DirectoryGroup.name_lower)
        if name == "externalId":
            return _string(b, DirectoryGroup.external_id, c.op, fold=False)
        if name in ("members", "members.value"):
            some = DirectoryGroup.id.in_(select(GroupMembership.group_id))
            if c.op == "pr":
                return some
            matching = _members(b, Comparison("value", c.op, c.value))
            # As the in-memory evaluator reads a list: a group without members has no
            # value to compare, which satisfies "ne" only.
            return or_(~some, matching) if c.op == "ne" else matching
        if name == "meta.created":
            return _moment(b, DirectoryGroup.created_at, c.op)
        if name == "meta.lastModified":
            return _moment(b, DirectoryGroup.updated_at, c.op)
        raise _unknown(name)

    return leaf


def _group_value_filter(b: _Binder) -> Callable[[ValueFilter], ColumnElement[bool]]:
    def value_filter(node: ValueFilter) -> ColumnElement[bool]:
        if node.attribute != "members":
            raise _unknown(node.attribute)
        return _members(b, node.node)

    return value_filter


def search_groups(session: Session, account_id: str, query: SearchQuery, *,
                  include_members: bool) -> GroupRows:
    """One page of the account's directory groups matching ``query``. Members are read
    (ids and display names, one query for the page) only when ``include_members``: a large
    group is never loaded when the client excluded them."""

    def build(b: _Binder) -> tuple[Any, Any]:
        where: list[ColumnElement[bool]] = [
            DirectoryGroup.account_id == bindparam("account_id")]
        if query.filter is not None:
            where.append(_compile(query.filter, _group_leaf(b), _group_value_filter(b)))
        return _statements(DirectoryGroup.__table__, where,
                           _order(GROUP_SORT, query, DirectoryGroup.id))

    prepared = _prepared("groups", query, build)
    total, groups = _paged(session, prepared, _params(prepared, query, account_id), query)
    members: dict[str, list[Ref]] | None = None
    if include_members:
        members = {g.id: [] for g in groups}
        if groups:
            for gid, uid, display in session.connection().execute(
                    _GROUP_MEMBERS, {"ids": list(members)}).tuples():
                members[gid].append(Ref(uid, display))
    return GroupRows(total, list(groups), members)


def user_name_taken(session: Session, account_id: str, user_name: str,
                    except_user_id: str | None) -> bool:
    """Whether another user of the account has ``user_name`` (case-insensitively) — the same
    column the ``userName eq`` filter reads, so lookup and uniqueness never disagree."""
    params = {"account_id": account_id, "user_name_lower": user_name.lower()}
    if except_user_id is None:
        return session.scalar(_NAME_HOLDER, params) is not None
    return session.scalar(_NAME_HOLDER_OTHER, {**params, "user_id": except_user_id}) is not None


# Built once (a statement per write otherwise): every value a bind parameter.
_NAME_HOLDER = select(User.id).where(
    User.account_id == bindparam("account_id"),
    User.user_name_lower == bindparam("user_name_lower")).limit(1)
_NAME_HOLDER_OTHER = select(User.id).where(
    User.account_id == bindparam("account_id"),
    User.user_name_lower == bindparam("user_name_lower"),
    User.id != bindparam("user_id")).limit(1)


__all__ = ["GroupRows", "UserRows", "search_groups", "search_users", "user_name_taken"]
