"""Property: the store's SQL translation of a filter (``bridge/store/search.py``, through GET
/Users?filter=) and the in-memory evaluator (``scim.filters.matches``, the one PATCH value
filters use) select the same users, on random users and random filters, on SQLite and on a
real PostgreSQL; and the same for groups (GET /Groups?filter= against the evaluator on the
group resources). Case is where they used to part: each attribute compares as RFC 7643 says
(``id`` and ``externalId`` caseExact, the User schema's strings and ``members.value`` not),
so the generated values are case variants of one another, with letters whose lowercase
only Unicode folding finds (SQL's ``lower()`` is ASCII-only on SQLite). Users carry emails
of several types (the SQL translation once treated every email as "work").

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
from scim.schemas import GROUP, USER
from tests.conftest import FakeClock, make_settings
from tests.functional.scim.conftest import ENTERPRISE, ScimClient, make_scim_client
from tests.functional.scim.conftest import GROUP as GROUP_URN
from tests.functional.scim.conftest import USER as USER_URN

# Short words over a tiny alphabet: case variants ("ab", "AB", "aB") and prefixes collide
# often, so eq/co/sw/ew/gt on case-exact and case-insensitive attributes are all exercised.
# "É"/"é" fold only in Unicode; "İ" lowers to two characters ("i" + a combining dot).
WORDS = st.text(alphabet="aAbB-éÉİ", min_size=1, max_size=3)
# Email local parts stay ASCII (an address must be valid to be the primary one).
LOCALS = st.text(alphabet="aAbB", min_size=1, max_size=3)
EMAIL_TYPES = ("work", "Work", "home", "HOME", "other")
STRINGS = ("userName", "displayName", "externalId", "title", "nickName", "name.givenName",
           f"{ENTERPRISE}:department", "emails.value", "emails.type", "emails.display")
EMAIL_SUBS = ("value", "type", "display")
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
    emails = []
    for _ in range(draw(st.integers(0, 2))):
        email: dict[str, Any] = {
            "value": f"{draw(LOCALS)}@{draw(st.sampled_from(('example.com', 'home.example')))}",
            "type": draw(st.sampled_from(EMAIL_TYPES))}
        if draw(st.booleans()):
            email["display"] = draw(WORDS)
        if draw(st.booleans()):
            email["primary"] = draw(st.booleans())
        emails.append(email)
    if emails:
        body["emails"] = emails
    return body


def comparison(attribute: str, op: str, value: str) -> str:
    return f"{attribute} pr" if op == "pr" else f'{attribute} {op} "{value}"'


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def filters(population: list[dict[str, Any]]) -> st.SearchStrategy[str]:
    """Filters whose values are mostly the population's own values in another case (or a
    piece of one), so that each comparison's case rule decides the answer."""
    seen = sorted({s for body in population for key, v in body.items() if key != "schemas"
                   for s in _strings(v)})
    variants = st.sampled_from(seen).flatmap(lambda s: st.sampled_from(sorted({
        s, s.upper(), s.lower(), s.swapcase(), s[:1], s[-1:]})))
    values = st.one_of(variants, WORDS)
    booleans = st.sampled_from(("true", "false", "True"))
    email_leaves = st.one_of(
        st.builds(comparison, st.sampled_from(EMAIL_SUBS), st.sampled_from(STRING_OPS),
                  st.one_of(values, st.sampled_from(EMAIL_TYPES))),
        st.builds(comparison, st.just("primary"), st.sampled_from(("eq", "ne", "pr")),
                  booleans))
    leaves = st.one_of(
        st.builds(comparison, st.sampled_from(STRINGS), st.sampled_from(STRING_OPS), values),
        st.builds(comparison, st.sampled_from(("active", "emails.primary")),
                  st.sampled_from(("eq", "ne", "pr")), booleans),
        # A value filter: one email satisfies both comparisons (emails[type eq "home"
        # and value co "a"]), or one.
        st.builds(lambda a, b, both: f"emails[{a} and {b}]" if both else f"emails[{a}]",
                  email_leaves, email_leaves, st.booleans()),
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


# How a drawn id or name is recased, and which piece of it is used: fixed choices, so that
# what Hypothesis draws never depends on the (random) ids the store minted.
CASES = (str, str.upper, str.lower, str.swapcase)
PIECES = (slice(None), slice(0, 8), slice(-4, None))


def _case_variants(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from(CASES).map(lambda case: case(text))


def group_filters(users: list[str],
                  groups: dict[str, dict[str, Any]]) -> st.SearchStrategy[str]:
    """members.value comparisons (in brackets or not) with user ids in another case or a
    piece of one, and displayName comparisons, combined as the user filters are."""
    ids = st.builds(lambda uid, piece, case: case(uid[piece]), st.sampled_from(users),
                    st.sampled_from(PIECES), st.sampled_from(CASES))
    names = st.builds(lambda name, case: case(name), st.sampled_from(
        sorted({g["displayName"] for g in groups.values()})), st.sampled_from(CASES))
    leaves = st.one_of(
        st.builds(lambda op, v: comparison("members.value", op, v),
                  st.sampled_from(STRING_OPS), ids),
        st.builds(lambda op, v: f"members[{comparison('value', op, v)}]",
                  st.sampled_from(STRING_OPS), ids),
        st.builds(lambda op, v: comparison("displayName", op, v),
                  st.sampled_from(STRING_OPS), names))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a} or {b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner)), max_leaves=3)


@pytest.fixture
def scim(store_url: str, tmp_path: Path, admin: Actor) -> Iterator[ScimClient]:
    services = build_services(make_settings(tmp_path, store_url), clock=FakeClock())
    app = create_app(services.settings, services)
    yield make_scim_client(app, services, admin, "example.com", "Filter Corp")
    services.db.dispose()


def _ids(scim: ScimClient, query: str, kind: str = "Users") -> dict[str, dict[str, Any]]:
    resp = scim.get(f"/{kind}?count=1000{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {r["id"]: r for r in resp.get_json()["Resources"]}


@settings(max_examples=60, derandomize=True, database=None, deadline=None,
          print_blob=False, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                   HealthCheck.too_slow])
@given(population=st.lists(users(), min_size=1, max_size=5), data=st.data())
def test_sql_search_and_in_memory_evaluator_select_the_same_users(
        scim: ScimClient, population: list[dict[str, Any]], data: st.DataObject) -> None:
    created: list[str] = []
    group_ids: list[str] = []

    def _groups(scim: ScimClient, data: st.DataObject,
                users: list[str]) -> dict[str, dict[str, Any]]:
        """Two groups, members a random subset of ``users`` named in a random case (one
        group may be empty), as GET /Groups returns them."""
        for name in ("Alpha", "Beta"):
            members = data.draw(st.lists(st.sampled_from(users), unique=True, max_size=3))
            body = {"schemas": [GROUP_URN], "displayName": name, "members": [
                {"value": data.draw(_case_variants(uid))} for uid in members]}
            resp = scim.post("/Groups", body)
            assert resp.status_code == 201, resp.get_data(as_text=True)
            group_ids.append(resp.get_json()["id"])
        return _ids(scim, "", "Groups")

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
        groups = _groups(scim, data, created)
        for text in data.draw(st.lists(group_filters(created, groups), min_size=1,
                                       max_size=4)):
            node = parse_filter(text, GROUP)
            in_memory = {i for i, g in groups.items() if matches(node, g, GROUP)}
            in_sql = set(_ids(scim, f"&filter={quote(text)}", "Groups"))
            assert in_sql == in_memory, (text, [groups[i] for i in in_sql ^ in_memory])
    finally:
        for group_id in group_ids:
            assert scim.delete(f"/Groups/{group_id}").status_code == 204
        for user_id in created:
            assert scim.delete(f"/Users/{user_id}").status_code == 204
