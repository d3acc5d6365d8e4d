"""Searching users and groups: the neutral filter tree every door builds and the store
translates (:mod:`bridge.store.search`). Pure values, no I/O.

Doors build a :data:`Node` tree from their protocol's filter language (``scim/`` builds it
from ``scim2-filter-parser``'s AST of an RFC 7644 section 3.4.2.2 filter) and hand it to the
engine with a :class:`SearchQuery`. Attribute names in the tree are canonical
(``userName``, ``emails.value``, ``meta.created``): the door resolves case and schema URNs.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import ValidationError

OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"})


class InvalidFilter(ValidationError):
    """The filter cannot be parsed, names an attribute the store cannot search, or compares
    a value of the wrong type. SCIM maps it to 400 ``invalidFilter`` (RFC 7644 section
    3.12)."""

    code = "InvalidFilter"


@dataclass(frozen=True)
class Comparison:
    """``attribute op value``; ``value`` is None for ``pr`` (present)."""

    attribute: str
    op: str
    value: str | None = None


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class ValueFilter:
    """``attribute[node]``: one element of the multi-valued ``attribute`` satisfies ``node``
    (whose comparisons name sub-attributes, e.g. ``type`` and ``value`` of ``emails``)."""

    attribute: str
    node: Node


Node = Comparison | And | Or | Not | ValueFilter


@dataclass(frozen=True)
class SearchQuery:
    """A page of a filtered, sorted search. ``start_index`` is 1-based (RFC 7644 3.4.2.4)."""

    filter: Node | None = None
    sort_by: str | None = None
    descending: bool = False
    start_index: int = 1
    count: int = 100


@dataclass(frozen=True)
class Ref:
    """A reference to a member or a group: id and display name."""

    id: str
    display: str | None


__all__ = ["OPERATORS", "And", "Comparison", "InvalidFilter", "Node", "Not", "Or", "Ref",
           "SearchQuery", "ValueFilter"]


# --- the folded copy of a user's case-insensitive strings --------------------------------
#
# SQL's lower() is not Python's: SQLite's folds ASCII only, PostgreSQL's follows the
# database's collation. The SCIM in-memory evaluator (and userName's unique key) fold with
# Python's ``str.lower``, so the store keeps a copy of every case-insensitive string a
# filter or sortBy may read, lowered here, in ``users.search_folded``; the SQL translation
# compares against that copy and agrees with the evaluator on every backend.

ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# Top-level keys of the attributes document whose strings are searchable (RFC 7643 4.1,
# 4.3; ``bridge.store.search.USER_DOCUMENT_STRINGS`` names the paths inside them).
FOLDED_KEYS = ("nickName", "profileUrl", "title", "userType", "preferredLanguage", "locale",
               "timezone", "name", ENTERPRISE_USER)


def fold(value: object) -> object:
    """``value`` with every string lowered (Python's full Unicode lowercasing) and every
    boolean turned into the string ``"true"``/``"false"`` (one JSON type for both backends'
    text extraction); dicts and lists are folded item by item."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, dict):
        return {k: fold(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fold(v) for v in value]
    return value


def folded_user_document(display_name: str | None, attributes: dict[str, object] | None,
                         user_name: str | None, primary_email: str | None) -> dict[str, object]:
    """The folded search copy of a user (``users.search_folded``): ``displayName``, the
    searchable attributes (FOLDED_KEYS) and ``emails`` folded by :func:`fold`.

    ``emails`` are the elements as the SCIM door renders them: the client's, or, for a user
    that never came through SCIM (no ``userName``) and has no emails of its own, its
    primary address as one primary work email (``scim.resources.user_document``)."""
    attributes = attributes or {}
    doc: dict[str, object] = {k: fold(attributes[k]) for k in FOLDED_KEYS if k in attributes}
    if display_name is not None:
        doc["displayName"] = display_name.lower()
    emails = attributes.get("emails")
    if emails is None and user_name is None and primary_email:
        emails = [{"value": primary_email, "type": "work", "primary": True}]
    if isinstance(emails, list):
        doc["emails"] = [fold(e) for e in emails if isinstance(e, dict)]
    return doc
