"""The body of a SCIM request: read within the size limit, parsed as JSON."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from bridge.bounds import parse_json
from scim.errors import ScimError, invalid_syntax


def read_json(limit: int) -> Any:
    """The request's JSON. ScimError 413 over ``limit`` bytes, 400 invalidSyntax if not
    JSON or if an object names one attribute twice (:func:`refuse_case_variants`)."""
    try:
        raw = request.get_data(cache=False)  # the bytes buffer_body kept, if it ran
    except RequestEntityTooLarge:
        raise ScimError(413, f"The request body is larger than {limit} bytes.") from None
    if len(raw) > limit:
        raise ScimError(413, f"The request body is larger than {limit} bytes.")
    value = parse_json(raw)  # InvalidJson: 400 invalidSyntax
    refuse_case_variants(value)
    return value


def refuse_case_variants(value: Any) -> None:
    """Raise 400 invalidSyntax when an object of ``value`` has two member names equal but
    for case (``"userName"`` and ``"USERNAME"``): SCIM names are case-insensitive (RFC
    7643 section 2.1), so both name one attribute and which one counts would be the
    parser's accident. ``value`` is already depth-bounded by ``parse_json``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            names: set[str] = set()
            for name in item:
                lowered = name.lower()
                if lowered in names:
                    raise invalid_syntax(f"The attribute {name[:64]!r} is given twice "
                                         "(attribute names are case-insensitive).")
                names.add(lowered)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def buffer_body(limit: int) -> None:
    """Read a body of announced, acceptable length now, before the writers' lock: a client
    sending it slowly (a server without a buffering proxy) must not hold that lock. A body
    without a length, or over ``limit``, is left to :func:`read_json` (its 413)."""
    length = request.content_length
    if length is not None and length <= limit:
        request.get_data(cache=True)
