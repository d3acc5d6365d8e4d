"""Bounds on what a client may send, shared by every door (no web framework here: the
engine's search uses :func:`parse_time` too; the request class is in
:mod:`bridge.http_input`).

Hostile input must be refused as a client error in the door's own format, never reach a
500 and never change anything. The generic causes are handled here once:

- :func:`parse_json` — the one JSON parser of request bodies (and JSON carried inside
  them, such as a policy document sent as a string). It refuses invalid JSON, the
  non-standard constants ``NaN``/``Infinity``, an object naming a member twice (Python
  keeps the last, other readers the first), and documents nested deeper than
  :data:`MAX_JSON_DEPTH` levels (a body of 50,000 ``[`` would otherwise exhaust the stack of
  the parser or of any code that walks the value) with :class:`~bridge.errors.InvalidJson`.
- :func:`bounded_int` — integers taken from a query string or a body member, in a range
  the store can hold (``startIndex=9999999999999999999999999`` overflowed SQLite).
- :func:`storable_text` — no NUL and no lone surrogate in text a client sends (PostgreSQL
  refuses NUL, UTF-8 has no surrogates): JSON strings are checked by :func:`parse_json`,
  URLs by :mod:`bridge.http_input`.
- :func:`parse_time` — RFC 3339 times, in UTC; a time whose UTC form is outside the years
  1-9999 (``9999-12-31T23:59:59-14:00``) is malformed, not an OverflowError later.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from bridge.errors import InvalidJson, ValidationError

# Deep enough for every document of the doors (SCIM resources and PATCH values, policy
# documents nest 4-6 levels), shallow enough for any recursive code that walks them.
MAX_JSON_DEPTH = 32
# Integers a client may send (SQL INTEGER on PostgreSQL is 32-bit signed).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_INTEGER = re.compile(r"[+-]?[0-9]{1,12}")


_UNSTORABLE = "The request has a string with a NUL character or a lone surrogate."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class _DuplicateMember(ValueError):
    """An object names one member twice."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal names; a reader that keeps the first (a
    # reviewer of a policy document, a proxy that inspected the body) sees another value.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateMember(f"the member {name[:64]!r} appears twice in one "
                                       "object")
            seen.add(name)
    return value


def storable_text(text: str) -> bool:
    """Whether ``text`` can be stored and compared by every store: no NUL (PostgreSQL
    refuses U+0000 in text) and no lone surrogate (``"\\ud800"`` in JSON has no UTF-8
    form)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), without
    recursion. Raises InvalidJson for a string or member name that is not
    :func:`storable_text`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not storable_text(item):
                raise InvalidJson(_UNSTORABLE)
            continue
        if isinstance(item, dict):
            if not all(storable_text(key) for key in item):
                raise InvalidJson(_UNSTORABLE)
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def parse_json(raw: bytes | str, *, what: str = "The request body") -> Any:
    """``raw`` parsed as JSON (RFC 8259). Raises :class:`InvalidJson` (a ValidationError)
    for invalid JSON, undecodable bytes, ``NaN``/``Infinity``, integers too long to
    convert, nesting deeper than :data:`MAX_JSON_DEPTH`, an object with two members of one
    name, or a string that is not :func:`storable_text`."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant,
                           object_pairs_hook=_unique_members)
    except RecursionError:
        raise InvalidJson(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        reason = (exc.msg if isinstance(exc, json.JSONDecodeError)
                  else str(exc) if isinstance(exc, _DuplicateMember) else "undecodable")
        raise InvalidJson(f"{what} is not valid JSON ({reason}).") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise InvalidJson(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels.")
    return value


def bounded_int(raw: Any, name: str, *, low: int = INT_MIN, high: int = INT_MAX) -> int:
    """``raw`` (a string of ASCII digits with an optional sign, or a JSON integer) as an
    int in ``[low, high]``. Raises ValidationError naming ``name`` otherwise."""
    if isinstance(raw, bool):
        raise ValidationError(f"{name} must be an integer.", field=name)
    if isinstance(raw, int):
        number = raw
    elif isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
        number = int(raw.strip())
    else:
        raise ValidationError(f"{name} must be an integer.", field=name)
    if not low <= number <= high:
        raise ValidationError(f"{name} must be between {low} and {high}.", field=name)
    return number


def parse_time(text: str) -> datetime:
    """An ISO 8601 / RFC 3339 time (``Z`` allowed; no offset means UTC) as an aware UTC
    datetime. Raises ValueError when malformed or not representable in UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside the years 1-9999 in UTC") from None
