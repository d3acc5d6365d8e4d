"""The building blocks of the filter translation (:mod:`bridge.store.search`): bind
parameters handed out in walk order, the comparisons by type (string, boolean, date-time),
the walk of the neutral tree, and the users' ``emails`` as the SCIM door renders them
(``users.search_folded.emails``, a JSON array: SQLite's ``json_each``, PostgreSQL's
``json_array_elements``). No statement is run here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    String,
    and_,
    bindparam,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from bridge.bounds import parse_time
from bridge.domain.search import (
    OPERATORS,
    And,
    Comparison,
    InvalidFilter,
    Node,
    Not,
    Or,
    ValueFilter,
)
from bridge.store.models import User, UTCDateTime

# --- bind parameters (the statement cache is bridge.store.search._prepared) -------------
#
# Building a SQLAlchemy statement costs more than running it (a lookup's three statements
# took ~0.25 ms each to build, ~0.08 ms to run). Statements are therefore built once per
# *shape* — the filter with its values taken out, plus sort and paging — with every value a
# bind parameter, and kept in a bounded cache; a request only computes its parameters. The
# builders below never let a value change the SQL: every non-``pr`` comparison binds its
# value exactly once, in the order a left-to-right walk of the tree meets it.

Transform = Callable[[str | None], Any]


def _text(value: str | None) -> str:
    if value is None:
        raise InvalidFilter("The operator needs a value.", field="filter")
    return value


def _folded(value: str | None) -> str:
    return _text(value).lower()


def _bool(value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text not in ("true", "false"):
        raise InvalidFilter(f"'{value}' is not a boolean (true or false).", field="filter")
    return text == "true"


def _datetime(value: str | None) -> datetime:
    try:
        return parse_time(value or "")  # bounded: an out-of-range time is malformed
    except ValueError:
        raise InvalidFilter(f"'{value}' is not a date-time (RFC 3339).", field="filter") from None


class _Binder:
    """Hands out the bind parameter of each value-bearing comparison, in walk order, and
    remembers how to turn the filter's text into that parameter's value."""

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.transforms: list[Transform] = []
        self.pos = 0

    def param(self, transform: Transform, type_: Any) -> Any:
        if self.pos < len(self.params):  # the same comparison compiled again (emails)
            bound = self.params[self.pos]
        else:
            bound = bindparam(f"p{self.pos}", type_=type_)
            self.params.append(bound)
            self.transforms.append(transform)
        self.pos += 1
        return bound


def _values(node: Node) -> list[str | None]:
    """The comparison values of ``node`` in the order the builders bind them."""
    if isinstance(node, Comparison):
        return [] if node.op == "pr" else [node.value]
    if isinstance(node, And | Or):
        return [*_values(node.left), *_values(node.right)]
    if isinstance(node, Not):
        return _values(node.node)
    return _values(node.node)


def _shape(node: Node | None) -> Any:
    if node is None:
        return None
    if isinstance(node, Comparison):
        return ("c", node.attribute, node.op)
    if isinstance(node, And | Or):
        return (type(node).__name__, _shape(node.left), _shape(node.right))
    if isinstance(node, Not):
        return ("not", _shape(node.node))
    return ("vf", node.attribute, _shape(node.node))


def _string(b: _Binder, column: Any, op: str, *, fold: bool,
            folded_column: Any = None) -> ColumnElement[bool]:
    """A string comparison. ``fold``: case-insensitive (compare lowercase copies);
    ``folded_column`` is an already-lowercased column to use (an indexed copy)."""
    if op == "pr":
        return and_(column.is_not(None), column != "")
    col = (folded_column if folded_column is not None else func.lower(column)) if fold \
        else column
    val = b.param(_folded if fold else _text, String())
    if op == "eq":
        return col == val
    if op == "ne":
        return or_(col != val, column.is_(None))
    if op == "co":
        # replace() is case-exact on both backends (SQLite's LIKE is not) and takes the
        # needle as a parameter; an empty needle is in every string.
        return and_(column.is_not(None),
                    or_(func.length(val) == 0, func.replace(col, val, "") != col))
    if op == "sw":
        return func.substr(col, 1, func.length(val)) == val
    if op == "ew":
        return and_(func.length(col) >= func.length(val),
                    func.substr(col, func.length(col) - func.length(val) + 1) == val)
    return {"gt": col > val, "ge": col >= val, "lt": col < val, "le": col <= val}[op]


def _boolean(b: _Binder, column: Any, op: str) -> ColumnElement[bool]:
    if op == "pr":
        return true()
    if op not in ("eq", "ne"):
        raise InvalidFilter(f"The operator {op} does not apply to a boolean.", field="filter")
    wanted = b.param(_bool, Boolean())
    return column == wanted if op == "eq" else column != wanted


def _moment(b: _Binder, column: Any, op: str) -> ColumnElement[bool]:
    if op == "pr":
        return column.is_not(None)
    if op in ("co", "sw", "ew"):
        raise InvalidFilter(f"The operator {op} does not apply to a date-time.",
                            field="filter")
    moment = b.param(_datetime, UTCDateTime())
    return {"eq": column == moment, "ne": column != moment, "gt": column > moment,
            "ge": column >= moment, "lt": column < moment, "le": column <= moment}[op]


Compiler = Callable[[Comparison], ColumnElement[bool]]


def _compile(node: Node, leaf: Compiler, value_filter: Callable[[ValueFilter],
             ColumnElement[bool]]) -> ColumnElement[bool]:
    if isinstance(node, Comparison):
        if node.op not in OPERATORS:
            raise InvalidFilter(f"Unknown operator {node.op!r}.", field="filter")
        return leaf(node)
    if isinstance(node, And):
        return and_(_compile(node.left, leaf, value_filter),
                    _compile(node.right, leaf, value_filter))
    if isinstance(node, Or):
        return or_(_compile(node.left, leaf, value_filter),
                   _compile(node.right, leaf, value_filter))
    if isinstance(node, Not):
        # A comparison on an absent value is NULL (unknown) in SQL, and NOT NULL is NULL
        # too: without the coalesce, not (displayName eq "x") would leave out every user
        # without a displayName. A filter is two-valued: unknown is false before negating.
        return not_(func.coalesce(_compile(node.node, leaf, value_filter), false()))
    return value_filter(node)


def _unknown(name: str) -> InvalidFilter:
    return InvalidFilter(f"Filtering on the attribute {name!r} is not supported.",
                         field="filter")


def _email_field(element: Any, sub: str, sqlite: bool) -> Any:
    """The folded string ``sub`` of one element of ``search_folded.emails`` (NULL when
    absent): SQLite's ``json_extract``, PostgreSQL's ``->>``."""
    if sqlite:
        return func.json_extract(element, f"$.{sub}", type_=String())
    return element.op("->>")(literal(sub, String()))


def _email_elements(sqlite: bool) -> Any:
    """The elements of the user's folded ``emails`` as a table of one column ``value``."""
    if sqlite:
        return func.json_each(User.search_folded, "$.emails").table_valued("value")
    return func.json_array_elements(User.search_folded["emails"]).table_valued("value")


_EMAIL_SUBS = ("value", "display", "type", "primary")


def _email_leaf(b: _Binder, element: Any, sqlite: bool) -> Compiler:
    """A comparison on one email element, as the in-memory evaluator makes it inside
    ``emails[...]``: an absent sub-attribute satisfies ``ne`` only. Strings are folded
    (emails' sub-attributes are not caseExact, RFC 7643 4.1.2); ``primary`` is stored
    folded as "true"/"false"."""

    def leaf(c: Comparison) -> ColumnElement[bool]:
        sub = next((s for s in _EMAIL_SUBS if s == c.attribute.lower()), None)
        if sub is None:
            raise _unknown(f"emails.{c.attribute}")
        field = _email_field(element, sub, sqlite)
        if sub != "primary":
            return _string(b, field, c.op, fold=True, folded_column=field)
        if c.op == "pr":
            return field.is_not(None)
        if c.op not in ("eq", "ne"):
            raise InvalidFilter(f"The operator {c.op} does not apply to a boolean.",
                                field="filter")
        wanted = b.param(_bool_text, String())
        return field == wanted if c.op == "eq" else or_(field != wanted, field.is_(None))

    return leaf


def _bool_text(value: str | None) -> str:
    return "true" if _bool(value) else "false"


def _no_nesting(node: ValueFilter) -> ColumnElement[bool]:
    raise InvalidFilter("Value filters cannot be nested.", field="filter")


def _emails(b: _Binder, node: Node, sqlite: bool) -> ColumnElement[bool]:
    """``emails[node]``: some element of the user's emails (as the SCIM door renders them:
    ``search_folded.emails``) satisfies ``node``."""
    elements = _email_elements(sqlite)
    return select(literal(1)).select_from(elements).where(
        _compile(node, _email_leaf(b, elements.c.value, sqlite), _no_nesting)).exists()


def _emails_attribute(b: _Binder, c: Comparison, sqlite: bool) -> ColumnElement[bool]:
    """``emails.sub op value`` outside brackets, as the in-memory evaluator reads it: the
    list of the elements' present ``sub`` values satisfies ``op`` when one of them does,
    and an empty list satisfies ``ne`` only (``pr``: the list is not empty)."""
    sub = _email_sub(c.attribute)

    def some(test: Callable[[Any], ColumnElement[bool]] | None) -> ColumnElement[bool]:
        elements = _email_elements(sqlite)
        field = _email_field(elements.c.value, sub, sqlite)
        conditions = [field.is_not(None)]
        if test is not None:
            conditions.append(test(elements.c.value))
        return select(literal(1)).select_from(elements).where(*conditions).exists()

    if c.op == "pr":
        return some(None)
    matching = some(lambda element: _email_leaf(b, element, sqlite)(
        Comparison(sub, c.op, c.value)))
    return or_(~some(None), matching) if c.op == "ne" else matching


def _email_sub(name: str) -> str:
    sub = next((s for s in _EMAIL_SUBS if s == name.lower()), None)
    if sub is None:
        raise _unknown(f"emails.{name}")
    return sub
