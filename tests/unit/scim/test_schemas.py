"""scim/schemas.py: the schemas as data match RFC 7643's attribute characteristics, and
the discovery documents (sections 5, 6, 7) are built from them."""

from __future__ import annotations

from typing import Any

import pytest

from scim.schemas import (
    ENTERPRISE,
    ENTERPRISE_SCHEMA,
    GROUP,
    SCHEMAS,
    USER,
    USER_SCHEMA,
    Attr,
    Schema,
    resource_types,
    service_provider_config,
)

BASE_URL = "https://bridge.example/scim/v2"


def walk(attrs: tuple[Attr, ...]) -> list[Attr]:
    return [a for attr in attrs for a in (attr, *walk(attr.sub))]


@pytest.mark.parametrize("schema", [USER, GROUP, ENTERPRISE])
def test_names_are_unique_case_insensitively_and_looked_up_in_any_case(schema: Schema) -> None:
    for attrs in [schema.attributes, *(a.sub for a in walk(schema.attributes) if a.sub)]:
        names = [a.name.lower() for a in attrs]
        assert len(names) == len(set(names))
    for attr in schema.attributes:
        assert schema.attr(attr.name.upper()) is attr
        for sub in attr.sub:
            assert attr.child(sub.name.swapcase()) is sub


@pytest.mark.parametrize(("schema", "path", "expected"), [
    # (schema, attribute[.sub], the RFC 7643 characteristics that matter to the door)
    (USER, "userName", {"required": True, "uniqueness": "server", "caseExact": False}),
    (USER, "password", {"mutability": "writeOnly", "returned": "never"}),
    (USER, "groups", {"mutability": "readOnly", "multiValued": True}),
    (USER, "emails.value", {"caseExact": False}),
    (USER, "emails.type", {"canonicalValues": ["work", "home", "other"]}),
    (USER, "photos.value", {"type": "reference", "referenceTypes": ["external"]}),
    # Section 2.3.6: "A binary is case exact" (erratum 6000 corrects section 8.7.1).
    (USER, "x509Certificates.value", {"type": "binary", "caseExact": True}),
    (GROUP, "displayName", {"required": True}),
    (GROUP, "members.value", {"mutability": "immutable"}),
    (GROUP, "members.display", {"mutability": "readOnly"}),
    (ENTERPRISE, "manager.displayName", {"mutability": "readOnly"}),
])
def test_rfc_7643_characteristics(schema: Schema, path: str, expected: dict[str, Any]) -> None:
    doc = schema.document(BASE_URL)
    head, _, sub = path.partition(".")
    attr = next(a for a in doc["attributes"] if a["name"] == head)
    if sub:
        attr = next(a for a in attr["subAttributes"] if a["name"] == sub)
    assert {k: attr.get(k) for k in expected} == expected


def test_strings_other_than_binary_compare_ignoring_case() -> None:
    # RFC 7643 section 8.7.1: every string of the User schema is caseExact false.
    exact = [a.name for a in walk(USER.attributes) if a.case_exact]
    assert exact == ["value"]  # x509Certificates.value only
    certificates = USER.attr("x509Certificates")
    assert certificates is not None and certificates.child("value") in exact_attrs(USER)


def exact_attrs(schema: Schema) -> list[Attr]:
    return [a for a in walk(schema.attributes) if a.case_exact]


def test_schema_documents_follow_section_7() -> None:
    doc = USER.document(BASE_URL)
    assert doc["id"] == USER_SCHEMA
    assert doc["meta"] == {"resourceType": "Schema",
                           "location": f"{BASE_URL}/Schemas/{USER_SCHEMA}"}
    for attr in walk(USER.attributes):
        rendered = attr.document()
        assert {"name", "type", "multiValued", "required", "mutability", "returned"} <= set(
            rendered)
        # caseExact and uniqueness describe simple values, not complex or boolean ones.
        assert ("caseExact" in rendered) is (attr.type not in ("complex", "boolean"))
        assert ("subAttributes" in rendered) is bool(attr.sub)


def test_resource_types_and_service_provider_config() -> None:
    types = {t["id"]: t for t in resource_types(BASE_URL)}
    assert types["User"]["endpoint"] == "/Users"
    assert types["User"]["schemaExtensions"] == [{"schema": ENTERPRISE_SCHEMA,
                                                  "required": False}]
    assert types["Group"]["schema"] == GROUP.id
    spc = service_provider_config(BASE_URL, max_results=200, max_payload=1024)
    assert spc["patch"] == {"supported": True}
    assert spc["bulk"]["supported"] is False
    assert spc["filter"] == {"supported": True, "maxResults": 200}
    assert spc["etag"] == {"supported": True}
    assert set(SCHEMAS) == {USER.id, GROUP.id, ENTERPRISE.id}
