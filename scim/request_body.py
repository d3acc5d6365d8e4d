"""The body of a SCIM request: read within the size limit, parsed as JSON."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from bridge.bounds import parse_json
from scim.errors import ScimError


def read_json(limit: int) -> Any:
    """The request's JSON. ScimError 413 over ``limit`` bytes, 400 invalidSyntax if not
    JSON."""
    try:
        raw = request.get_data(cache=False)  # the bytes buffer_body kept, if it ran
    except RequestEntityTooLarge:
        raise ScimError(413, f"The request body is larger than {limit} bytes.") from None
    if len(raw) > limit:
        raise ScimError(413, f"The request body is larger than {limit} bytes.")
    return parse_json(raw)  # InvalidJson: 400 invalidSyntax


def buffer_body(limit: int) -> None:
    """Read a body of announced, acceptable length now, before the writers' lock: a client
    sending it slowly (a server without a buffering proxy) must not hold that lock. A body
    without a length, or over ``limit``, is left to :func:`read_json` (its 413)."""
    length = request.content_length
    if length is not None and length <= limit:
        request.get_data(cache=True)
