"""What a SCIM request asks for, read from its headers, query string or SearchRequest body:
the version of ``If-Match``, the list parameters (RFC 7644 3.4.2 and 3.4.3) as a
:class:`bridge.domain.search.SearchQuery`, and the attributes to return. Pure functions of
the current Flask request and the limits passed in; every refusal is a :class:`ScimError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import request

from bridge.bounds import bounded_int
from bridge.domain.search import SearchQuery
from bridge.errors import ValidationError
from scim import errors
from scim.errors import ScimError, invalid_value
from scim.filters import canonical, parse_filter
from scim.resources import Projection
from scim.schemas import SCHEMAS, SEARCH_REQUEST, Schema

_ETAG = re.compile(r'^(?:W/)?"([0-9]{1,18})"$')


def if_match() -> int | None:
    """The version of ``If-Match`` (RFC 7232); None when absent or ``*``. A value that is
    not one of our ETags can never match: 412."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    match = _ETAG.match(raw.strip())
    if match is None:
        raise ScimError(412, "If-Match does not name a version of this resource.")
    return int(match.group(1))


def _int_arg(params: dict[str, Any], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return bounded_int(raw, name)
    except ValidationError as exc:
        raise invalid_value(exc.message) from None


def list_params(body: Callable[[], Any]) -> dict[str, Any]:
    """The list parameters of this request: the query string of GET, or the SearchRequest
    body of ``POST .search`` (RFC 7644 3.4.3), in query-string form; ``body`` reads the
    request's JSON."""
    if request.method == "GET":
        return dict(request.args)
    body_doc = body()
    if not isinstance(body_doc, dict) or SEARCH_REQUEST.lower() not in {
            str(s).lower() for s in body_doc.get("schemas") or []}:
        raise errors.invalid_syntax(f"A search needs 'schemas': [{SEARCH_REQUEST!r}].")
    params: dict[str, Any] = {}
    for key in ("filter", "sortBy", "sortOrder", "startIndex", "count"):
        if body_doc.get(key) is not None:
            params[key] = str(body_doc[key])
    for key in ("attributes", "excludedAttributes"):
        value = body_doc.get(key)
        if isinstance(value, list):
            params[key] = ",".join(str(v) for v in value)
        elif isinstance(value, str):
            params[key] = value
    return params


def list_query(schema: Schema, params: dict[str, Any], maximum: int) -> SearchQuery:
    """filter / startIndex / count / sortBy / sortOrder of a list request (RFC 7644
    3.4.2). ``count`` above ``scim_max_results`` is cut to it (the page says how many it
    holds); a negative count is 0; startIndex below 1 is 1."""
    text = params.get("filter")
    node = parse_filter(text, schema) if text is not None else None
    start = max(_int_arg(params, "startIndex", 1), 1)
    count = min(max(_int_arg(params, "count", maximum), 0), maximum)
    sort_by = params.get("sortBy")
    order = (params.get("sortOrder") or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise invalid_value("sortOrder must be ascending or descending.")
    sort_key = canonical(schema, *_split_sort(sort_by)) if sort_by else None
    return SearchQuery(node, sort_key, order == "descending", start, count)


def _split_sort(sort_by: str) -> tuple[str, str | None, str | None]:
    uri = None
    for s in SCHEMAS.values():
        if sort_by.lower().startswith(s.id.lower() + ":"):
            uri, sort_by = s.id, sort_by[len(s.id) + 1:]
    name, _, sub = sort_by.partition(".")
    return name, sub or None, uri


def attributes(schema: Schema, extensions: tuple[Schema, ...],
                params: dict[str, Any] | None = None) -> Projection:
    source = request.args if params is None else params
    return Projection(source.get("attributes"), source.get("excludedAttributes"),
                      schema, extensions)
