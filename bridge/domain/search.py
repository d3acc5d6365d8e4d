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
