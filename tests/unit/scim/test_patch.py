"""scim/patch.py: PATCH (RFC 7644 section 3.5.2) on a User document and on a Group, as Okta
and Entra ID send it, without a database or an app."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scim.errors import ScimError
from scim.patch import apply_user_patch, operations, plan_group_patch
from scim.schemas import ENTERPRISE, ENTERPRISE_SCHEMA, GROUP, PATCH_OP, USER

EXT = (ENTERPRISE,)
Ops = list[tuple[str, str | None, Any]]


def body(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(ops)}


def patch(doc: dict[str, Any], *ops: dict[str, Any]) -> dict[str, Any]:
    return apply_user_patch(doc, operations(body(*ops)), USER, EXT)


def refused(scim_type: str, doc: dict[str, Any], *ops: dict[str, Any]) -> None:
    with pytest.raises(ScimError) as raised:
        patch(doc, *ops)
    assert (raised.value.status, raised.value.scim_type) == (400, scim_type)


BASE: dict[str, Any] = {"userName": "bjensen@example.com", "active": True}


# --- the PatchOp message ------------------------------------------------------------------

def test_operations_are_validated_and_normalised() -> None:
    ops = operations({"schemas": [PATCH_OP.upper()], "Operations": [
        {"op": "Replace", "path": "title", "value": "Boss"},
        {"op": "ADD", "path": "  ", "value": {"title": "x"}},
        {"op": "remove", "path": "nickName"}]})
    assert ops == [("replace", "title", "Boss"), ("add", None, {"title": "x"}),
                   ("remove", "nickName", None)]
    assert operations({"schemas": [PATCH_OP], "Operations": []}) == []


@pytest.mark.parametrize(("message", "scim_type"), [
    ([], "invalidSyntax"),
    ({"Operations": []}, "invalidSyntax"),
    ({"schemas": ["urn:x"], "Operations": []}, "invalidSyntax"),
    ({"schemas": [PATCH_OP]}, "invalidSyntax"),
    ({"schemas": [PATCH_OP], "Operations": {}}, "invalidSyntax"),
    ({"schemas": [PATCH_OP], "Operations": ["add"]}, "invalidSyntax"),
    ({"schemas": [PATCH_OP], "Operations": [{"op": "move", "path": "a", "value": 1}]},
     "invalidSyntax"),
    ({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": 3, "value": 1}]},
     "invalidPath"),
    # RFC 7644 3.5.2.2: remove without a path is noTarget; add/replace need a value.
    ({"schemas": [PATCH_OP], "Operations": [{"op": "remove"}]}, "noTarget"),
    ({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title"}]}, "invalidValue"),
])
def test_malformed_patch_messages(message: Any, scim_type: str) -> None:
    with pytest.raises(ScimError) as raised:
        operations(message)
    assert raised.value.scim_type == scim_type


# --- users --------------------------------------------------------------------------------

def test_the_input_document_is_not_modified() -> None:
    doc = {**BASE, "emails": [{"value": "a@example.com", "type": "work"}]}
    snapshot = {**doc, "emails": [dict(doc["emails"][0])]}
    patch(doc, {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x.org"})
    assert doc == snapshot


def test_replace_add_and_remove_single_values() -> None:
    doc = patch(BASE, {"op": "replace", "path": "title", "value": "Tour Guide"},
                {"op": "add", "path": "name.givenName", "value": "Barbara"},
                {"op": "add", "path": "NAME.familyName", "value": "Jensen"},
                {"op": "remove", "path": "name.givenName"})
    assert doc == {**BASE, "title": "Tour Guide", "name": {"familyName": "Jensen"}}


def test_entra_filtered_sub_attribute_creates_the_element_when_missing() -> None:
    doc = patch(BASE, {"op": "replace", "path": 'addresses[type eq "work"].locality',
                       "value": "Redmond"})
    assert doc["addresses"] == [{"type": "work", "locality": "Redmond"}]


def test_entra_filtered_sub_attribute_changes_only_the_matching_element() -> None:
    start = {**BASE, "addresses": [{"type": "home", "locality": "Oslo"},
                                   {"type": "work", "locality": "Bergen", "country": "NO"}]}
    doc = patch(start, {"op": "Replace", "path": 'addresses[type eq "WORK"].locality',
                        "value": "Redmond"})
    assert doc["addresses"] == [{"type": "home", "locality": "Oslo"},
                                {"type": "work", "locality": "Redmond", "country": "NO"}]


def test_entra_clears_a_work_phone_by_removing_its_value() -> None:
    start = {**BASE, "phoneNumbers": [{"value": "+1 555", "type": "work"},
                                      {"value": "+1 666", "type": "mobile"}]}
    doc = patch(start, {"op": "remove", "path": 'phoneNumbers[type eq "work"].value'})
    assert doc["phoneNumbers"] == [{"value": "+1 666", "type": "mobile"}]
    doc = patch(doc, {"op": "remove", "path": 'phoneNumbers[type eq "mobile"]'})
    assert "phoneNumbers" not in doc


def test_a_filtered_value_creates_a_work_email_typed_as_the_filter_says() -> None:
    doc = patch(BASE, {"op": "add", "path": 'emails[type eq "work" and primary eq true].value',
                       "value": "b@example.com"})
    assert doc["emails"] == [{"type": "work", "primary": True, "value": "b@example.com"}]


def test_path_less_operations_take_dotted_and_urn_keys_and_entras_strings() -> None:
    doc = patch(BASE, {"op": "replace", "value": {
        "name.givenName": "Barbara", f"{ENTERPRISE_SCHEMA}:department": "Sales",
        "active": "False", "id": "ignored", "schemas": ["ignored"]}})
    assert doc == {"userName": BASE["userName"], "active": False,
                   "name": {"givenName": "Barbara"}, ENTERPRISE_SCHEMA: {"department": "Sales"}}


def test_the_enterprise_extension_as_a_whole() -> None:
    doc = patch(BASE, {"op": "add", "path": ENTERPRISE_SCHEMA,
                       "value": {"department": "Sales", "manager": "m-1"}})
    assert doc[ENTERPRISE_SCHEMA] == {"department": "Sales", "manager": {"value": "m-1"}}
    doc = patch(doc, {"op": "remove", "path": f"{ENTERPRISE_SCHEMA}:department"},
                {"op": "remove", "path": f"{ENTERPRISE_SCHEMA}:manager"})
    assert ENTERPRISE_SCHEMA not in doc  # an emptied extension is gone


def test_add_merges_multi_valued_attributes_and_keeps_one_primary() -> None:
    start = {**BASE, "emails": [{"value": "a@example.com", "type": "work", "primary": True}]}
    doc = patch(start, {"op": "add", "path": "emails", "value": [
        {"value": "b@example.com", "type": "home", "primary": True},
        {"value": "A@EXAMPLE.COM", "display": "A"}]})
    # RFC 7643 2.4: at most one primary; the one set last wins. Same value: one element.
    assert doc["emails"] == [
        {"value": "A@EXAMPLE.COM", "type": "work", "primary": False, "display": "A"},
        {"value": "b@example.com", "type": "home", "primary": True}]


def test_replace_of_a_multi_valued_attribute_replaces_the_list() -> None:
    start = {**BASE, "emails": [{"value": "a@example.com"}, {"value": "b@example.com"}]}
    doc = patch(start, {"op": "replace", "path": "emails", "value": [{"value": "c@x.org"}]})
    assert doc["emails"] == [{"value": "c@x.org"}]


def test_remove_with_a_value_list_removes_those_elements() -> None:
    start = {**BASE, "emails": [{"value": "a@example.com"}, {"value": "b@example.com"}]}
    doc = patch(start, {"op": "remove", "path": "emails", "value": [{"value": "A@example.com"}]})
    assert doc["emails"] == [{"value": "b@example.com"}]


def test_read_only_attributes_are_refused_with_mutability() -> None:
    # RFC 7643 4.1: groups is readOnly (changed through the Group resource).
    refused("mutability", BASE, {"op": "add", "path": "groups", "value": [{"value": "g"}]})


@pytest.mark.parametrize("path", ["id", "meta.created", "schemas", "nope", "name.nope",
                                  'title[value eq "x"]', 'emails[type eq "a"].nope'])
def test_paths_the_schema_does_not_allow_are_invalid_path(path: str) -> None:
    refused("invalidPath", BASE, {"op": "replace", "path": path, "value": "x"})


@pytest.mark.parametrize(("path", "value"), [
    ("active", "maybe"), ("title", {"a": 1}), ("emails", 3),
    ("x509Certificates", [{"value": "not base64!"}]), ("userName", "u" * 257),
    ("name", ["x"]),
])
def test_values_of_the_wrong_type_are_invalid_value(path: str, value: Any) -> None:
    refused("invalidValue", BASE, {"op": "replace", "path": path, "value": value})


def test_a_required_attribute_cannot_be_removed() -> None:
    refused("invalidValue", BASE, {"op": "remove", "path": "userName"})
    refused("invalidValue", BASE, {"op": "replace", "path": "userName", "value": "  "})


def test_write_only_password_is_accepted() -> None:
    # RFC 7643 4.1: password is writeOnly; the door discards it later (user_args).
    assert patch(BASE, {"op": "replace", "path": "password", "value": "s3cret"})[
        "password"] == "s3cret"


# --- property: only SCIM errors -----------------------------------------------------------

_PATHS = st.sampled_from([
    "userName", "title", "active", "name", "name.givenName", "emails", "emails.value",
    'emails[type eq "work"]', 'emails[type eq "work"].value', 'emails[value co "@"].primary',
    'addresses[type eq "work"].locality', "addresses", "phoneNumbers", "groups",
    "x509Certificates", ENTERPRISE_SCHEMA, f"{ENTERPRISE_SCHEMA}:manager",
    f"{ENTERPRISE_SCHEMA}:manager.value", "externalId", "id", "nope", "", 'emails[',
    'emails[type eq "work"]].value', 'members[value eq "x"]'])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=6),
                     st.sampled_from(["True", "false", "QUJD", "a@example.com"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["value", "type", "primary", "display", "locality",
                                     "givenName", "title", "name.givenName", "bogus",
                                     ENTERPRISE_SCHEMA]), inner, max_size=3)), max_leaves=6)
_OPERATION = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "Add", "copy"])},
    optional={"path": st.one_of(_PATHS, st.integers()), "value": _VALUES})


@settings(max_examples=600, derandomize=True, database=None, deadline=None)
@given(ops=st.lists(_OPERATION, max_size=5))
def test_any_operation_sequence_gives_a_document_or_a_scim_error(
        ops: list[dict[str, Any]]) -> None:
    start = {**BASE, "emails": [{"value": "a@example.com", "type": "work", "primary": True}]}
    try:
        doc = apply_user_patch(start, operations(body(*ops)), USER, EXT)
    except ScimError as exc:
        assert exc.status == 400 and exc.scim_type in (
            "invalidSyntax", "invalidPath", "invalidValue", "mutability", "noTarget")
        return
    assert isinstance(doc["userName"], str) and doc["userName"].strip()
    assert len([e for e in doc.get("emails", []) if e.get("primary") is True]) <= 1
    assert all(v not in (None, [], {}) for v in doc.values())


# --- groups -------------------------------------------------------------------------------

def group(*ops: dict[str, Any]) -> Any:
    return plan_group_patch(operations(body(*ops)), "g-1", GROUP)


def test_okta_rename_repeats_the_id() -> None:
    plan = group({"op": "replace", "value": {"id": "g-1", "displayName": "Admins"}})
    assert plan.display_name == "Admins" and plan.renames and not plan.changes_members


def test_member_operations_in_order() -> None:
    plan = group({"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]},
                 {"op": "remove", "path": 'members[value eq "u1"]'},
                 {"op": "remove", "path": "members", "value": [{"value": "u3"}]})
    assert (plan.add, plan.remove, plan.replace) == (["u2"], ["u1", "u3"], None)
    plan = group({"op": "replace", "path": "members", "value": [{"value": "u1"}]},
                 {"op": "add", "path": "members", "value": {"value": "u2"}},
                 {"op": "remove", "path": 'members[value eq "u1" or value eq "u9"]'})
    assert plan.replace == ["u2"]
    assert group({"op": "remove", "path": "members"}).replace == []


def test_external_id_changes() -> None:
    assert not group().external_id_changed
    removed = group({"op": "remove", "path": "externalId"})
    assert removed.external_id_changed and removed.new_external_id is None
    assert group({"op": "replace", "path": "externalId", "value": "e"}).new_external_id == "e"


@pytest.mark.parametrize(("op", "scim_type"), [
    ({"op": "replace", "value": {"id": "other"}}, "mutability"),
    ({"op": "remove", "path": "displayName"}, "mutability"),
    ({"op": "replace", "path": "displayName", "value": " "}, "invalidValue"),
    ({"op": "add", "path": 'members[value eq "u1"]', "value": [{"value": "u1"}]},
     "invalidPath"),
    ({"op": "remove", "path": 'members[display eq "u1"]'}, "invalidPath"),
    ({"op": "replace", "path": "members.value", "value": "u1"}, "invalidPath"),
    ({"op": "add", "path": "members", "value": [{"value": "g2", "type": "Group"}]},
     "invalidValue"),
    ({"op": "add", "path": "members", "value": [{"display": "no id"}]}, "invalidValue"),
    ({"op": "replace", "path": "title", "value": "x"}, "invalidPath"),
    ({"op": "replace", "value": "not an object"}, "invalidValue"),
])
def test_group_operations_that_cannot_apply(op: dict[str, Any], scim_type: str) -> None:
    with pytest.raises(ScimError) as raised:
        group(op)
    assert raised.value.scim_type == scim_type


_IDS = st.sampled_from(["u1", "u2", "u3", "u4"])
_MEMBER_OPS = st.one_of(
    st.builds(lambda ids: {"op": "add", "path": "members",
                           "value": [{"value": i} for i in ids]}, st.lists(_IDS, max_size=3)),
    st.builds(lambda ids: {"op": "replace", "path": "members",
                           "value": [{"value": i} for i in ids]}, st.lists(_IDS, max_size=3)),
    st.builds(lambda ids: {"op": "remove", "path": "members",
                           "value": [{"value": i} for i in ids]},
              st.lists(_IDS, min_size=1, max_size=3)),
    st.builds(lambda i: {"op": "remove", "path": f'members[value eq "{i}"]'}, _IDS),
    st.just({"op": "remove", "path": "members"}))


def _one_by_one(members: set[str], op: dict[str, Any]) -> set[str]:
    ids = {v["value"] for v in op.get("value") or []}
    if op["op"] == "add":
        return members | ids
    if op["op"] == "replace":
        return ids
    if "[" in op["path"]:
        return members - {op["path"].split('"')[1]}
    return members - ids if "value" in op else set()


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(start=st.sets(_IDS), ops=st.lists(_MEMBER_OPS, max_size=6))
def test_the_net_membership_change_equals_the_operations_one_by_one(
        start: set[str], ops: list[dict[str, Any]]) -> None:
    plan = group(*ops)
    expected = start
    for op in ops:
        expected = _one_by_one(expected, op)
    result = set(plan.replace) if plan.replace is not None else \
        (start | set(plan.add)) - set(plan.remove)
    assert result == expected
