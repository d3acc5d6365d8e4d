"""Property: the store's SQL translation of a filter (``bridge/store/search.py``, through GET
/Users?filter=) and the in-memory evaluator (``scim.filters.matches``, the one PATCH value
filters use) select the same users, on random users and random filters, on SQLite and on a
real PostgreSQL. Case is where they used to part: each attribute compares as RFC 7643 says
(``id`` and ``externalId`` caseExact, the User schema's strings not), so the generated values
are case variants of one another.

Deterministic and bounded: derandomized, no example database, a fixed number of examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.app import build_services, create_app
from bridge.domain import Actor
from scim.filters import matches, parse_filter
from scim.schemas import USER
from tests.conftest import FakeClock, make_settings
from tests.functional.scim.conftest import ENTERPRISE, ScimClient, make_scim_client
from tests.functional.scim.conftest import USER as USER_URN

# Short words over a tiny alphabet: case variants ("ab", "AB", "aB") and prefixes collide
# often, so eq/co/sw/ew/gt on case-exact and case-insensitive attributes are all exercised.
WORDS = st.text(alphabet="aAbB-", min_size=1, max_size=3)
STRINGS = ("userName", "displayName", "externalId", "title", "nickName", "name.givenName",
           f"{ENTERPRISE}:department")
STRING_OPS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr")


@st.composite
def users(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER_URN, ENTERPRISE], "userName": draw(WORDS),
                            "active": draw(st.booleans())}
    for key in ("displayName", "externalId", "title", "nickName"):
        if draw(st.booleans()):
            body[key] = draw(WORDS)
    if draw(st.booleans()):
        body["name"] = {"givenName": draw(WORDS)}
    if draw(st.booleans()):
        body[ENTERPRISE] = {"department": draw(WORDS)}
    return body


def comparison(attribute: str, op: str, value: str) -> str:
    return f"{attribute} pr" if op == "pr" else f'{attribute} {op} "{value}"'


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def filters(population: list[dict[str, Any]]) -> st.SearchStrategy[str]:
    """Filters whose values are mostly the population's own values in another case (or a
    piece of one), so that each comparison's case rule decides the answer."""
    seen = sorted({s for body in population for key, v in body.items() if key != "schemas"
                   for s in _strings(v)})
    variants = st.sampled_from(seen).flatmap(lambda s: st.sampled_from(sorted({
        s, s.upper(), s.lower(), s.swapcase(), s[:1], s[-1:]})))
    values = st.one_of(variants, WORDS)
    leaves = st.one_of(
        st.builds(comparison, st.sampled_from(STRINGS), st.sampled_from(STRING_OPS), values),
        st.builds(comparison, st.just("active"), st.sampled_from(("eq", "ne", "pr")),
                  st.sampled_from(("true", "false", "True"))),
    )
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a} and {b})", inner, inner),
        st.builds(lambda a, b: f"({a} or {b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner)), max_leaves=4)


def _probes(data: st.DataObject, resources: list[dict[str, Any]]) -> list[str]:
    """One comparison per string attribute of one user, with its own value in another case
    (swapped, upper, lower) or a piece of it: the case rule alone decides each answer."""
    resource = data.draw(st.sampled_from(resources))
    found = {"id": resource["id"], "userName": resource["userName"],
             "externalId": resource.get("externalId"), "displayName": resource.get(
                 "displayName"), "title": resource.get("title"),
             "nickName": resource.get("nickName"),
             "name.givenName": (resource.get("name") or {}).get("givenName"),
             f"{ENTERPRISE}:department": (resource.get(ENTERPRISE) or {}).get("department")}
    out = []
    for attribute, value in found.items():
        if value is None:
            continue
        op = data.draw(st.sampled_from(("eq", "ne", "co", "sw", "ew", "gt", "le")))
        variant = data.draw(st.sampled_from((str.swapcase, str.upper, str.lower)))(value)
        out.append(comparison(attribute, op, variant[:data.draw(st.integers(
            1, len(variant)))] if op in ("co", "sw") else variant))
    return out


@pytest.fixture
def scim(store_url: str, tmp_path: Path, admin: Actor) -> Iterator[ScimClient]:
    services = build_services(make_settings(tmp_path, store_url), clock=FakeClock())
    app = create_app(services.settings, services)
    yield make_scim_client(app, services, admin, "example.com", "Filter Corp")
    services.db.dispose()


def _ids(scim: ScimClient, query: str) -> dict[str, dict[str, Any]]:
    resp = scim.get(f"/Users?count=1000{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {r["id"]: r for r in resp.get_json()["Resources"]}


@settings(max_examples=60, derandomize=True, database=None, deadline=None,
          print_blob=False, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                   HealthCheck.too_slow])
@given(population=st.lists(users(), min_size=1, max_size=5), data=st.data())
def test_sql_search_and_in_memory_evaluator_select_the_same_users(
        scim: ScimClient, population: list[dict[str, Any]], data: st.DataObject) -> None:
    created = []
    try:
        for body in population:
            resp = scim.post("/Users", body)
            # Two users whose userName or externalId collide: the second is refused, kept out.
            assert resp.status_code in (201, 409), resp.get_data(as_text=True)
            if resp.status_code == 201:
                created.append(resp.get_json()["id"])
        resources = _ids(scim, "")
        assert set(resources) == set(created)
        probes = _probes(data, [resources[i] for i in created])  # in creation order
        for text in probes + data.draw(st.lists(filters(population), min_size=1, max_size=4)):
            node = parse_filter(text, USER)
            in_memory = {i for i, r in resources.items() if matches(node, r, USER)}
            in_sql = set(_ids(scim, f"&filter={quote(text)}"))
            assert in_sql == in_memory, (text, [resources[i] for i in in_sql ^ in_memory])
    finally:
        for user_id in created:
            assert scim.delete(f"/Users/{user_id}").status_code == 204
