"""Hypothesis settings and strategies shared by the hostile-input property tests.

Runs are deterministic (``derandomize``: the examples follow from the test's code, no
example database), bounded (``max_examples`` per test) and have no deadline (a shared CI
machine is slow at times; time is bounded by the number of examples)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz_settings(max_examples: int) -> settings:
    return settings(max_examples=max_examples, derandomize=True, database=None,
                    deadline=None, print_blob=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow,
                                           HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# --- JSON values --------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["", "True", "false", "9" * 30, "-1", "x" * 300, "é\u0000\ud7ff",
                     "a@example.com", "2026-11-24T21:00:00Z", "*", "%", "../", "Pro"]))


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, a few levels deep."""
    return st.recursive(SCALARS, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=max_leaves)


# Nesting depths: shallow, around the limit, and far past any stack (Hypothesis raises the
# recursion limit while it runs, so a few thousand levels are not enough to show a bug).
_DEPTHS = st.one_of(st.integers(min_value=1, max_value=40),
                    st.sampled_from([1000, 5000, 50_000]))


def raw_bodies() -> st.SearchStrategy[bytes]:
    """Bodies that are not JSON objects: broken JSON, other types, deep nesting, bytes."""
    return st.one_of(
        st.binary(max_size=64),
        json_values().map(lambda v: json.dumps(v).encode()),
        _DEPTHS.map(lambda n: b"[" * n + b"]" * n),
        _DEPTHS.map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        _DEPTHS.map(lambda n: b"[" * n),
        st.sampled_from([b"", b"{", b'{"a": NaN}', b"Infinity", b"\xff\xfe{}",
                         b"1" * 5000, b'{"Name": "\\ud800"}']))


# --- SCIM filters ------------------------------------------------------------------------

ATTRIBUTES = st.sampled_from([
    "userName", "UserName", "name.givenName", "name.familyName", "displayName", "active",
    "externalId", "id", "emails", "emails.value", "emails.type", "emails.primary",
    "phoneNumbers.value", "title", "meta.lastModified", "meta.created", "members",
    "members.value", "nickName", "unknownAttr", "name.nothing",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:nope:attr"])
OPERATORS = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ",
                             "Sw", "xx"])
FILTER_VALUES = st.one_of(
    st.text(max_size=20).map(json.dumps), st.sampled_from([
        "true", "false", "null", "42", "-1", "9" * 40, "1.5e308", "jyoung",
        '"2026-11-24T21:00:00Z"', '"9999-12-31T23:59:59-14:00"',
        '"0001-01-01T00:00:00+14:00"', '"a\\"b"', '"%_\\\\"', "'x'", '"unterminated']))


def _comparison() -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, o, v: f"{a} {o} {v}", ATTRIBUTES, OPERATORS, FILTER_VALUES),
        ATTRIBUTES.map(lambda a: f"{a} pr"))


def filters() -> st.SearchStrategy[str]:
    """SCIM filter text: mostly well-formed expressions of any shape, some junk."""
    expression = st.recursive(_comparison(), lambda inner: st.one_of(
        inner.map(lambda e: f"({e})"),
        inner.map(lambda e: f"not ({e})"),
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        st.builds(lambda a, e: f"{a.split('.')[0]}[{e}]", ATTRIBUTES, inner)),
        max_leaves=8)
    # Nesting: shallow, around the limit, and far past it (yet under 4,096 characters).
    depth = st.one_of(st.integers(min_value=1, max_value=40),
                      st.sampled_from([300, 1000, 2000, 2035]))
    deep = st.one_of(
        st.builds(lambda n, e: "(" * n + e + ")" * n, depth, _comparison()),
        st.builds(lambda n, e: "not (" * n + e + ")" * n, depth, _comparison()),
        st.builds(lambda n, e: "emails[" * n + e + "]" * n, depth, _comparison()))
    junk = st.text(alphabet='()[]" aeqnotrusvlN.:\\', max_size=80)
    return st.one_of(expression, expression, deep, junk)


# --- SCIM PATCH ---------------------------------------------------------------------------

PATCH_PATHS = st.one_of(
    st.none(),
    st.sampled_from([
        "displayName", "active", "name.givenName", "name", "emails", "emails.value",
        'emails[type eq "work"].value', 'emails[type eq "work"]', 'emails[value co "@"]',
        "phoneNumbers", "title", "externalId", "userName", "id", "meta", "schemas",
        "members", 'members[value eq "x"]', "urn:ietf:params:scim:schemas:extension:"
        "enterprise:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:"
        "User:employeeNumber", "urn:nope", "", " ", "emails[", "a.b.c"]),
    filters().map(lambda f: f"emails[{f}].value"),
    st.text(max_size=30))
PATCH_VALUES = st.one_of(json_values(), st.sampled_from([
    "True", "False", {"displayName": "X", "name.givenName": "Y"},
    [{"value": "b@example.com", "type": "work", "primary": True}], [{"value": 1}],
    {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7"}]))


def patch_bodies() -> st.SearchStrategy[Any]:
    """PatchOp messages: mostly well-formed envelopes around generated operations."""
    operation = st.fixed_dictionaries(
        {"op": st.sampled_from(["add", "replace", "remove", "Replace", "Add", "move", 1])},
        optional={"path": PATCH_PATHS, "value": PATCH_VALUES})
    envelope = st.fixed_dictionaries({
        "schemas": st.sampled_from([["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                    ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                    [], "x", [1]]),
        "Operations": st.lists(operation, max_size=4)})
    return st.one_of(envelope, envelope, envelope, json_values())
