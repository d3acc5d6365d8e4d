"""scim/filters.py: RFC 7644 section 3.4.2.2 filters, section 3.5.2 PATCH paths, and the
in-memory evaluator, without a database or an app."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.domain.search import And, Comparison, InvalidFilter, Node, Not, Or, ValueFilter
from scim.errors import ScimError
from scim.filters import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    PatchPath,
    matches,
    parse_filter,
    parse_path,
)
from scim.schemas import ENTERPRISE, ENTERPRISE_SCHEMA, GROUP, USER, USER_SCHEMA

EXT = (ENTERPRISE,)


def c(attribute: str, op: str, value: str | None = None) -> Comparison:
    return Comparison(attribute, op, value)


# --- parsing ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "node"), [
    ('userName eq "bjensen"', c("userName", "eq", "bjensen")),
    # Attribute names and operators are case-insensitive (RFC 7644 3.4.2.2, RFC 7643 2.1).
    ('USERNAME EQ "bjensen"', c("userName", "eq", "bjensen")),
    ('name.familyName co "O\'Malley"', c("name.familyName", "co", "O'Malley")),
    ('NAME.FAMILYNAME sw "J"', c("name.familyName", "sw", "J")),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"', c("userName", "sw", "J")),
    (f'{ENTERPRISE_SCHEMA}:department eq "Sales"', c(f"{ENTERPRISE_SCHEMA}:department", "eq",
                                                      "Sales")),
    (f'{ENTERPRISE_SCHEMA}:Manager.Value eq "26118915"',
     c(f"{ENTERPRISE_SCHEMA}:manager.value", "eq", "26118915")),
    ("title pr", c("title", "pr")),
    ('meta.LASTMODIFIED gt "2011-05-13T04:42:34Z"',
     c("meta.lastModified", "gt", "2011-05-13T04:42:34Z")),
    ('externalid eq "x"', c("externalId", "eq", "x")),
    ('userType ne "Employee"', c("userType", "ne", "Employee")),
    ('not (userName eq "a")', Not(c("userName", "eq", "a"))),
    ('emails[type eq "work" and value co "@example.com"]',
     ValueFilter("emails", And(c("type", "eq", "work"), c("value", "co", "@example.com")))),
    ('Emails[TYPE eq "work"]', ValueFilter("emails", c("type", "eq", "work"))),
])
def test_filters_parse_to_canonical_trees(text: str, node: Node) -> None:
    assert parse_filter(text, USER) == node


def test_and_binds_tighter_than_or() -> None:
    # RFC 7644 3.4.2.2: precedence is grouping, then not, then and, then or. (The parser
    # library gives and/or the same precedence: this read `a or b and c` as `(a or b) and c`.)
    assert parse_filter('title pr or userType eq "a" and nickName pr', USER) == Or(
        c("title", "pr"), And(c("userType", "eq", "a"), c("nickName", "pr")))
    assert parse_filter('(title pr or userType eq "a") and nickName pr', USER) == And(
        Or(c("title", "pr"), c("userType", "eq", "a")), c("nickName", "pr"))


def test_entras_unquoted_values_are_read_as_strings() -> None:
    assert parse_filter("externalId eq jyoung", USER) == c("externalId", "eq", "jyoung")
    assert parse_filter("active eq true", USER) == c("active", "eq", "true")


def test_group_filters_resolve_against_the_group_schema() -> None:
    assert parse_filter('DISPLAYNAME eq "Admins"', GROUP) == c("displayName", "eq", "Admins")
    assert parse_filter('members[value eq "u1"]', GROUP) == ValueFilter(
        "members", c("value", "eq", "u1"))


@pytest.mark.parametrize("text", [
    "", "   ", 'userName', 'userName eq', 'userName zz "a"', 'userName eq "a" and',
    '(userName eq "a"', 'emails[type eq "work"', "x" * (MAX_FILTER_LENGTH + 1),
    "(" * (MAX_FILTER_DEPTH + 1) + 'title pr' + ")" * (MAX_FILTER_DEPTH + 1),
])
def test_a_filter_that_cannot_be_parsed_is_invalid_never_no_filter(text: str) -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(text, USER)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    text = "(" * MAX_FILTER_DEPTH + "title pr" + ")" * MAX_FILTER_DEPTH
    assert parse_filter(text, USER) == c("title", "pr")


def test_brackets_inside_quoted_values_do_not_count_as_nesting() -> None:
    text = f'title eq "{"(" * (MAX_FILTER_DEPTH + 5)}"'
    assert parse_filter(text, USER) == c("title", "eq", "(" * (MAX_FILTER_DEPTH + 5))


# --- round trip ---------------------------------------------------------------------------

_ATTRS = ("userName", "displayName", "title", "name.givenName", "externalId",
          f"{ENTERPRISE_SCHEMA}:department")
_OPS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr")
_VALUES = st.text(alphabet="abcXYZ 09-@.'", max_size=8)


def _leaf(attribute: str, op: str, value: str) -> Comparison:
    return c(attribute, op, None if op == "pr" else value)


_SUBS = st.builds(_leaf, st.sampled_from(("type", "value", "display")),
                  st.sampled_from(_OPS), _VALUES)
_LEAVES = st.one_of(st.builds(_leaf, st.sampled_from(_ATTRS), st.sampled_from(_OPS),
                              _VALUES),
                    st.builds(ValueFilter, st.just("emails"), st.recursive(
                        _SUBS, lambda inner: st.builds(And, inner, inner), max_leaves=2)))
NODES = st.recursive(_LEAVES, lambda inner: st.one_of(
    st.builds(And, inner, inner), st.builds(Or, inner, inner), st.builds(Not, inner)),
    max_leaves=6)


def render(node: Node, cased: Any = str) -> str:
    """The filter text of ``node``; ``cased`` rewrites names and operators (any case is the
    same filter)."""
    if isinstance(node, Comparison):
        name = cased(node.attribute) if ":" not in node.attribute else \
            node.attribute.rsplit(":", 1)[0] + ":" + cased(node.attribute.rsplit(":", 1)[1])
        if node.op == "pr":
            return f"{name} {cased('pr')}"
        return f'{name} {cased(node.op)} "{node.value}"'
    if isinstance(node, And | Or):
        word = "and" if isinstance(node, And) else "or"
        return f"({render(node.left, cased)} {cased(word)} {render(node.right, cased)})"
    if isinstance(node, Not):
        return f"{cased('not')} ({render(node.node, cased)})"
    return f"{cased(node.attribute)}[{render(node.node, cased)}]"


def render_minimal(node: Node) -> str:
    """The filter text of ``node`` with only the brackets precedence needs (not, then and,
    then or; a run of one operator groups from the left)."""
    if isinstance(node, And | Or):
        word, weight = ("and", 2) if isinstance(node, And) else ("or", 1)

        def side(child: Node, right: bool) -> str:
            text = render_minimal(child)
            inner = 2 if isinstance(child, And) else 1 if isinstance(child, Or) else 3
            return f"({text})" if inner < weight or (right and inner == weight) else text

        return f"{side(node.left, False)} {word} {side(node.right, True)}"
    if isinstance(node, Not):
        return f"not ({render_minimal(node.node)})"
    if isinstance(node, ValueFilter):
        return f"{node.attribute}[{render_minimal(node.node)}]"
    return render(node)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(node=NODES, upper=st.booleans())
def test_parse_of_the_rendered_tree_is_the_tree_in_any_case(node: Node, upper: bool) -> None:
    assert parse_filter(render(node), USER) == node
    assert parse_filter(render(node, str.upper if upper else str.swapcase), USER) == node


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(node=NODES)
def test_brackets_only_where_precedence_needs_them_give_the_same_tree(node: Node) -> None:
    assert parse_filter(render_minimal(node), USER) == node


# --- PATCH paths --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "path"), [
    ("userName", PatchPath(USER_SCHEMA, "userName")),
    ("name.givenName", PatchPath(USER_SCHEMA, "name", None, "givenName")),
    ("NAME.GIVENNAME", PatchPath(USER_SCHEMA, "name", None, "givenName")),
    ("externalId", PatchPath(USER_SCHEMA, "externalId")),
    (f"{USER_SCHEMA}:displayName", PatchPath(USER_SCHEMA, "displayName")),
    # Entra's filtered paths (RFC 7644 3.5.2: attrPath "[" valFilter "]" ["." subAttr]).
    ('addresses[type eq "work"].locality',
     PatchPath(USER_SCHEMA, "addresses", c("type", "eq", "work"), "locality")),
    ('emails[type eq "work"].value',
     PatchPath(USER_SCHEMA, "emails", c("type", "eq", "work"), "value")),
    ('phoneNumbers[type eq "mobile" and primary eq true]',
     PatchPath(USER_SCHEMA, "phoneNumbers",
               And(c("type", "eq", "mobile"), c("primary", "eq", "true")))),
    (f"{ENTERPRISE_SCHEMA}:manager", PatchPath(ENTERPRISE_SCHEMA, "manager")),
    (f"{ENTERPRISE_SCHEMA}:manager.value", PatchPath(ENTERPRISE_SCHEMA, "manager", None,
                                                     "value")),
    (ENTERPRISE_SCHEMA, PatchPath(ENTERPRISE_SCHEMA, None)),
])
def test_patch_paths(text: str, path: PatchPath) -> None:
    assert parse_path(text, USER, EXT) == path


@pytest.mark.parametrize("text", [
    "", "id", "meta", "schemas", "META.lastModified", "noSuchAttribute", "name.nickname",
    'userName[value eq "x"]', 'emails[type eq ]', 'emails[type eq "work"]]',
    'emails[type eq "work"].nope', "urn:example:unknown:attr", USER_SCHEMA,
    f"{USER_SCHEMA}displayName", 'externalId[value eq "x"]', "externalId.value",
    'emails[emails[type eq "a"]]',
])
def test_bad_patch_paths_are_invalid_path(text: str) -> None:
    with pytest.raises(ScimError) as raised:
        parse_path(text, USER, EXT)
    assert (raised.value.status, raised.value.scim_type) == (400, "invalidPath")


# --- the in-memory evaluator --------------------------------------------------------------

EMAILS = USER.attr("emails")
X509 = USER.attr("x509Certificates")


def test_element_filters_ignore_case_unless_the_sub_attribute_is_case_exact() -> None:
    assert matches(c("type", "eq", "WORK"), {"type": "work"}, EMAILS)
    assert matches(c("value", "co", "EXAMPLE"), {"value": "a@example.com"}, EMAILS)
    # RFC 7643 2.3.6: a binary is case exact (x509Certificates.value).
    assert matches(c("value", "eq", "QUJD"), {"value": "QUJD"}, X509)
    assert not matches(c("value", "eq", "qujd"), {"value": "QUJD"}, X509)


USER_DOC: dict[str, Any] = {
    "id": "2819c223-7f76-453a-919d-413861904646", "externalId": "Bjensen-1",
    "userName": "bjensen@example.com", "name": {"givenName": "Barbara"}, "active": True,
    "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True},
               {"value": "babs@jensen.org", "type": "home"}],
    ENTERPRISE_SCHEMA: {"department": "Tour Operations"},
}


@pytest.mark.parametrize(("text", "expected"), [
    # caseExact (RFC 7643 3.1: id and externalId)
    ('id eq "2819c223-7f76-453a-919d-413861904646"', True),
    ('id eq "2819C223-7F76-453A-919D-413861904646"', False),
    ('externalId eq "Bjensen-1"', True),
    ('externalId eq "bjensen-1"', False),
    ('externalId sw "bj"', False),
    # not caseExact (RFC 7643 4.1)
    ('userName eq "BJENSEN@EXAMPLE.COM"', True),
    ('name.givenName sw "bar"', True),
    (f'{ENTERPRISE_SCHEMA}:department co "tour"', True),
    # multi-valued: some value satisfies it; emails alone means emails.value
    ('emails co "jensen.org"', True),
    ('emails.type eq "home"', True),
    ('emails[type eq "home" and value co "example.com"]', False),
    ('emails[type eq "work" and primary eq true]', True),
    ("active eq true", True),
    ("active ne true", False),
    # an absent attribute: not present, unequal to everything, so its negation holds
    ("title pr", False),
    ('title ne "x"', True),
    ('title eq "x"', False),
    ('not (title eq "x")', True),
    ('title gt "a"', False),
    ("userName pr and emails pr", True),
])
def test_whole_resource_filters(text: str, expected: bool) -> None:
    assert matches(parse_filter(text, USER), USER_DOC, USER) is expected


def test_a_value_filter_inside_an_element_is_invalid_path() -> None:
    with pytest.raises(ScimError) as raised:
        matches(ValueFilter("emails", c("type", "eq", "work")), {"type": "work"}, EMAILS)
    assert raised.value.scim_type == "invalidPath"
