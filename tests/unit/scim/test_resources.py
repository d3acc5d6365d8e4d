"""scim/resources.py: resources in (RFC 7643 attribute rules: names, types, mutability,
required) and out (returned, projection per RFC 7644 3.4.2.5), without a database or an
app."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.domain.search import Ref
from bridge.engine.results import DirectoryGroupView, UserView
from scim.errors import ScimError
from scim.resources import (
    Projection,
    etag,
    group_member_ids,
    render_group,
    render_user,
    user_args,
    user_document,
    validate,
)
from scim.schemas import (
    ENTERPRISE,
    ENTERPRISE_SCHEMA,
    GROUP,
    GROUP_SCHEMA,
    MS_GROUP_SCHEMA,
    USER,
    USER_SCHEMA,
)

EXT = (ENTERPRISE,)
BASE_URL = "https://bridge.example/scim/v2"
MOMENT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def user(**extra: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": "bjensen@example.com", **extra}


def invalid(scim_type: str, body: Any, core: Any = USER) -> None:
    with pytest.raises(ScimError) as raised:
        validate(body, core, EXT if core is USER else ())
    assert (raised.value.status, raised.value.scim_type) == (400, scim_type)


# --- input --------------------------------------------------------------------------------

def test_names_are_made_canonical_and_entra_strings_coerced() -> None:
    doc = validate({"SCHEMAS": [USER_SCHEMA.upper()], "schemas": [USER_SCHEMA],
                    "USERNAME": "b", "Active": "False", "NAME": {"GIVENNAME": "Barbara"},
                    f"{USER_SCHEMA}:title": "Guide", "externalid": "e-1",
                    ENTERPRISE_SCHEMA: {"schemas": [ENTERPRISE_SCHEMA], "department": "Sales",
                                        "manager": "m-1"},
                    "emails": [{"value": "b@example.com", "primary": "True"}]}, USER, EXT)
    assert doc == {"userName": "b", "active": False, "name": {"givenName": "Barbara"},
                   "title": "Guide", "externalId": "e-1",
                   ENTERPRISE_SCHEMA: {"department": "Sales", "manager": {"value": "m-1"}},
                   "emails": [{"value": "b@example.com", "primary": True}]}


def test_server_owned_and_read_only_values_are_ignored_on_input() -> None:
    # RFC 7643 3.1 (id, meta) and RFC 7644 3.5.1 (readOnly values are ignored).
    doc = validate(user(id="mine", meta={"version": "1"}, groups=[{"value": "g"}],
                        **{ENTERPRISE_SCHEMA: {"manager": {"value": "m",
                                                           "displayName": "Boss"}}}),
                   USER, EXT)
    assert doc == {"userName": "bjensen@example.com",
                   ENTERPRISE_SCHEMA: {"manager": {"value": "m"}}}


def test_nulls_and_empty_lists_mean_no_value() -> None:
    assert validate(user(title=None, emails=[], name={"givenName": None}), USER) == {
        "userName": "bjensen@example.com"}


def test_entras_group_schema_is_accepted_and_ignored() -> None:
    assert validate({"schemas": [GROUP_SCHEMA, MS_GROUP_SCHEMA], "displayName": "Admins",
                     MS_GROUP_SCHEMA: {"x": 1}}, GROUP, ()) == {"displayName": "Admins"}


@pytest.mark.parametrize(("body", "scim_type"), [
    ([], "invalidSyntax"),
    ({"userName": "b"}, "invalidSyntax"),
    ({"schemas": USER_SCHEMA, "userName": "b"}, "invalidSyntax"),
    ({"schemas": [GROUP_SCHEMA], "userName": "b"}, "invalidSyntax"),
    (user(schemas=[USER_SCHEMA, "urn:example:unknown"]), "invalidValue"),
    (user(nope="x"), "invalidSyntax"),
    (user(name={"nope": "x"}), "invalidSyntax"),
    (user(active="yes"), "invalidValue"),
    (user(title=["a"]), "invalidValue"),
    (user(title=True), "invalidValue"),
    (user(emails={"value": "a@example.com"}), "invalidValue"),
    (user(emails=["a@example.com", 3]), "invalidValue"),
    (user(x509Certificates=[{"value": "not base64!"}]), "invalidValue"),
    (user(userName="u" * 257), "invalidValue"),
    (user(title="t" * 2049), "invalidValue"),
    ({"schemas": [USER_SCHEMA]}, "invalidValue"),  # userName is required
    (user(userName="   "), "invalidValue"),
])
def test_bodies_the_schema_refuses(body: Any, scim_type: str) -> None:
    invalid(scim_type, body)


def test_a_group_needs_a_display_name() -> None:
    invalid("invalidValue", {"schemas": [GROUP_SCHEMA]}, GROUP)


def test_numbers_are_accepted_as_strings() -> None:
    assert validate(user(**{ENTERPRISE_SCHEMA: {"employeeNumber": 701984}}), USER, EXT)[
        ENTERPRISE_SCHEMA] == {"employeeNumber": "701984"}


_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
                     lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(
                         st.sampled_from(["value", "type", "primary", "givenName", "x"]),
                         inner, max_size=3)), max_leaves=5)
_KEYS = st.sampled_from(["userName", "name", "emails", "active", "title", "addresses",
                         "x509Certificates", "groups", "id", "password", ENTERPRISE_SCHEMA,
                         "externalId", "bogus"])


@settings(max_examples=500, derandomize=True, database=None, deadline=None)
@given(extra=st.dictionaries(_KEYS, _JSON, max_size=5))
def test_any_body_gives_a_valid_document_or_a_scim_400(extra: dict[str, Any]) -> None:
    body = {"schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA], "userName": "b", **extra}
    try:
        doc = validate(body, USER, EXT)
    except ScimError as exc:
        assert exc.status == 400
        return
    assert "groups" not in doc and "id" not in doc  # never taken from the client
    assert validate({"schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA], **doc}, USER, EXT) == doc


# --- the engine's arguments ---------------------------------------------------------------

def test_the_primary_address_is_the_primary_email_else_user_name_else_the_first() -> None:
    args = user_args({"userName": "b@example.com", "password": "pw", "emails": [
        {"value": "x@example.com"}, {"value": "p@example.com", "primary": True}]})
    assert args["primary_email"] == "p@example.com"
    assert args["other_emails"] == ["x@example.com"]
    assert "password" not in args["attributes"]  # the bridge never stores one
    assert user_args({"userName": "b@example.com", "emails": [{"value": "x@example.com"}]})[
        "primary_email"] == "b@example.com"
    assert user_args({"userName": "bjensen", "emails": [{"value": "not an address"},
                                                        {"value": "x@example.com"}]})[
        "primary_email"] == "x@example.com"
    assert user_args({"userName": "bjensen"})["primary_email"] is None


def test_an_invalid_primary_email_is_refused() -> None:
    with pytest.raises(ScimError) as raised:
        user_args({"userName": "b", "emails": [{"value": "nope", "primary": True}]})
    assert raised.value.scim_type == "invalidValue"


def test_active_defaults_to_enabled() -> None:
    assert user_args({"userName": "b"})["enabled"] is True
    assert user_args({"userName": "b", "active": False})["enabled"] is False


@pytest.mark.parametrize(("members", "ids"), [
    (None, []), ({"value": "u1"}, ["u1"]),
    ([{"value": "u1", "type": "User"}, {"value": "u2"}, {"value": "u1"}], ["u1", "u2"]),
])
def test_group_member_ids(members: Any, ids: list[str]) -> None:
    assert group_member_ids(members) == ids


@pytest.mark.parametrize("members", ["u1", [{"value": ""}], [{"value": "g", "type": "Group"}],
                                     [{"display": "x"}], ["u1"]])
def test_group_members_that_are_not_user_references(members: Any) -> None:
    with pytest.raises(ScimError):
        group_member_ids(members)


# --- output -------------------------------------------------------------------------------

def view(**overrides: Any) -> UserView:
    fields: dict[str, Any] = dict(
        id="u-1", account_id="a-1", primary_email="b@example.com", aliases=(),
        display_name="Barbara", status="active", tier=None, invited_at=None, joined_at=None,
        personal_pin=None, privacy="default", last_active_at=None, meetings_attended=0,
        meetings_organized=0, chat_messages_sent=0, in_directory=True, directory_enabled=True,
        trial_started_at=None, trial_ended_at=None, created_at=MOMENT, updated_at=MOMENT,
        version=3, user_name="bjensen",
        attributes={"externalId": "e-1", "title": "Guide", "active": True,
                    "password": "should never show", ENTERPRISE_SCHEMA: {"department": "S"}})
    fields.update(overrides)
    return UserView(**fields)


def test_a_rendered_user() -> None:
    out = render_user(view(), [Ref("g-1", "Admins")], BASE_URL)
    assert out == {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA], "id": "u-1", "externalId": "e-1",
        "userName": "bjensen", "displayName": "Barbara", "title": "Guide", "active": True,
        "groups": [{"value": "g-1", "$ref": f"{BASE_URL}/Groups/g-1", "display": "Admins"}],
        ENTERPRISE_SCHEMA: {"department": "S"},
        "meta": {"resourceType": "User", "created": "2026-11-01T12:00:00Z",
                 "lastModified": "2026-11-01T12:00:00Z", "version": 'W/"3"',
                 "location": f"{BASE_URL}/Users/u-1"}}


def test_the_directory_state_is_the_truth_for_active() -> None:
    assert render_user(view(directory_enabled=False), None, BASE_URL)["active"] is False


def test_a_user_from_before_scim_shows_its_address() -> None:
    doc = user_document(view(user_name=None, attributes={}))
    assert doc["userName"] == "b@example.com"
    assert doc["emails"] == [{"value": "b@example.com", "type": "work", "primary": True}]


def test_a_rendered_group() -> None:
    group = DirectoryGroupView(id="g-1", account_id="a-1", name="Admins", external_id=None,
                               created_at=MOMENT, updated_at=MOMENT, version=1)
    out = render_group(group, [Ref("u-1", "Barbara"), Ref("u-2", None)], BASE_URL)
    assert "externalId" not in out
    assert out["members"] == [
        {"value": "u-1", "$ref": f"{BASE_URL}/Users/u-1", "type": "User", "display": "Barbara"},
        {"value": "u-2", "$ref": f"{BASE_URL}/Users/u-2", "type": "User"}]
    assert out["meta"]["version"] == etag(1) == 'W/"1"'


FULL = render_user(view(attributes={
    "externalId": "e-1", "name": {"givenName": "B", "familyName": "J"},
    "emails": [{"value": "b@example.com", "type": "work"}],
    ENTERPRISE_SCHEMA: {"department": "S", "costCenter": "4"}}), None, BASE_URL)


def project(attributes: str | None = None, excluded: str | None = None) -> dict[str, Any]:
    return Projection(attributes, excluded, USER, EXT).apply(FULL)


def test_attributes_returns_those_and_the_always_returned_ones() -> None:
    # RFC 7643 7: id and schemas are returned always.
    assert project("USERNAME") == {"schemas": FULL["schemas"], "id": "u-1",
                                   "userName": "bjensen"}
    assert project("name.givenName,emails.value") == {
        "schemas": FULL["schemas"], "id": "u-1", "name": {"givenName": "B"},
        "emails": [{"value": "b@example.com"}]}
    assert project(f"{ENTERPRISE_SCHEMA}:department")[ENTERPRISE_SCHEMA] == {
        "department": "S"}


def test_excluded_attributes_never_drop_id_or_schemas() -> None:
    out = project(excluded="id,schemas,emails,name.familyName,meta")
    assert out["id"] == "u-1" and out["schemas"] == FULL["schemas"]
    assert "emails" not in out and "meta" not in out
    assert out["name"] == {"givenName": "B"}
    assert project(excluded=f"{ENTERPRISE_SCHEMA}:costCenter")[ENTERPRISE_SCHEMA] == {
        "department": "S"}


def test_wants_tells_the_door_what_to_load() -> None:
    assert not Projection(None, "groups", USER, EXT).wants("groups")
    assert Projection(None, "groups.display", USER, EXT).wants("groups")
    assert not Projection("userName", None, USER, EXT).wants("groups")
    assert Projection(None, None, USER, EXT).wants("groups")


def test_projection_of_an_unknown_attribute_is_invalid_value() -> None:
    with pytest.raises(ScimError) as raised:
        Projection("nope", None, USER, EXT)
    assert (raised.value.status, raised.value.scim_type) == (400, "invalidValue")
