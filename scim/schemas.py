"""The schemas the SCIM door serves (RFC 7643 sections 4, 7 and 8.7) as data.

One definition drives everything: the ``/Schemas`` documents, input validation and coercion
(:mod:`scim.resources`), PATCH paths (:mod:`scim.patch`) and attribute projection. The User
schema is all of RFC 7643 section 4.1 plus the enterprise extension (section 4.3); the Group
schema is section 4.2 with ``User`` members (the tier rule has no nested groups).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# Entra ID adds this to group creates; it carries nothing we store.
MS_GROUP_SCHEMA = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


@dataclass(frozen=True)
class Attr:
    """One attribute definition (RFC 7643 section 7)."""

    name: str
    type: str = "string"
    multi: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    sub: tuple[Attr, ...] = ()
    canonical: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    description: str = ""

    def child(self, name: str) -> Attr | None:
        lowered = name.lower()
        return next((a for a in self.sub if a.name.lower() == lowered), None)

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name, "type": self.type, "multiValued": self.multi,
            "description": self.description or self.name, "required": self.required,
            "mutability": self.mutability, "returned": self.returned,
        }
        if self.type != "complex" and self.type != "boolean":
            doc["caseExact"] = self.case_exact
            doc["uniqueness"] = self.uniqueness
        if self.canonical:
            doc["canonicalValues"] = list(self.canonical)
        if self.reference_types:
            doc["referenceTypes"] = list(self.reference_types)
        if self.sub:
            doc["subAttributes"] = [a.document() for a in self.sub]
        return doc


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attr, ...]

    def attr(self, name: str) -> Attr | None:
        lowered = name.lower()
        return next((a for a in self.attributes if a.name.lower() == lowered), None)

    def document(self, base_url: str) -> dict[str, Any]:
        return {
            "schemas": [SCHEMA_SCHEMA], "id": self.id, "name": self.name,
            "description": self.description,
            "attributes": [a.document() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{self.id}"},
        }


def _s(name: str, **kw: Any) -> Attr:
    return Attr(name, **kw)


def _multi(name: str, types: tuple[str, ...], *, value_type: str = "string",
           reference_types: tuple[str, ...] = (), description: str = "") -> Attr:
    """A multi-valued attribute with the default sub-attributes of RFC 7643 section 2.4."""
    # RFC 7643 section 2.3.6: "A binary is case exact" (erratum 6000 on section 8.7.1).
    return _s(name, type="complex", multi=True, description=description, sub=(
        _s("value", type=value_type, reference_types=reference_types,
           case_exact=value_type == "binary"), _s("display"),
        _s("type", canonical=types), _s("primary", type="boolean")))


USER = Schema(USER_SCHEMA, "User", "User Account", (
    _s("userName", required=True, uniqueness="server",
       description="Unique identifier for the user within the account (Okta: the login; "
                   "Entra: the UPN). Compared case-insensitively."),
    _s("name", type="complex", sub=(
        _s("formatted"), _s("familyName"), _s("givenName"), _s("middleName"),
        _s("honorificPrefix"), _s("honorificSuffix"))),
    _s("displayName"),
    _s("nickName"),
    _s("profileUrl", type="reference", reference_types=("external",)),
    _s("title"),
    _s("userType"),
    _s("preferredLanguage"),
    _s("locale"),
    _s("timezone"),
    _s("active", type="boolean",
       description="false: disabled in the directory (cannot sign in, sessions revoked)."),
    _s("password", mutability="writeOnly", returned="never",
       description="Accepted and discarded: the bridge never stores passwords."),
    _multi("emails", ("work", "home", "other"),
           description="Addresses on the account's verified claimed domains become the "
                       "user's sign-in addresses (the primary first)."),
    _multi("phoneNumbers", ("work", "home", "mobile", "fax", "pager", "other"),
           description="The service reads the work and mobile numbers (dial-out)."),
    _multi("ims", ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
    _multi("photos", ("photo", "thumbnail"), value_type="reference",
           reference_types=("external",)),
    _s("addresses", type="complex", multi=True, sub=(
        _s("formatted"), _s("streetAddress"), _s("locality"), _s("region"),
        _s("postalCode"), _s("country"), _s("type", canonical=("work", "home", "other")),
        _s("primary", type="boolean"))),
    _s("groups", type="complex", multi=True, mutability="readOnly", sub=(
        _s("value", mutability="readOnly"),
        _s("$ref", type="reference", reference_types=("User", "Group"),
           mutability="readOnly"),
        _s("display", mutability="readOnly"),
        _s("type", canonical=("direct", "indirect"), mutability="readOnly"))),
    _multi("entitlements", ()),
    _multi("roles", ()),
    _multi("x509Certificates", (), value_type="binary"),
))

ENTERPRISE = Schema(ENTERPRISE_SCHEMA, "EnterpriseUser", "Enterprise User", (
    _s("employeeNumber"), _s("costCenter"), _s("organization"), _s("division"),
    _s("department"),
    _s("manager", type="complex", sub=(
        _s("value"),
        _s("$ref", type="reference", reference_types=("User",)),
        _s("displayName", mutability="readOnly"))),
))

GROUP = Schema(GROUP_SCHEMA, "Group", "Group", (
    _s("displayName", required=True,
       description="The name administrators map to a tier (AddOrUpdateGroups)."),
    _s("members", type="complex", multi=True,
       description="Users only: the tier rule has no nested groups.", sub=(
           _s("value", mutability="immutable"),
           _s("$ref", type="reference", reference_types=("User", "Group"),
              mutability="immutable"),
           _s("type", canonical=("User", "Group"), mutability="immutable"),
           _s("display", mutability="readOnly"))),
))

SCHEMAS = {s.id: s for s in (USER, GROUP, ENTERPRISE)}
# Attributes common to every resource (RFC 7643 section 3.1), not part of the schemas.
COMMON = ("id", "externalId", "meta", "schemas")


def resource_types(base_url: str) -> list[dict[str, Any]]:
    """The ``/ResourceTypes`` documents (RFC 7643 section 6)."""
    return [
        {"schemas": [RESOURCE_TYPE_SCHEMA], "id": "User", "name": "User",
         "endpoint": "/Users", "description": "User Account", "schema": USER_SCHEMA,
         "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": False}],
         "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/User"}},
        {"schemas": [RESOURCE_TYPE_SCHEMA], "id": "Group", "name": "Group",
         "endpoint": "/Groups", "description": "Group", "schema": GROUP_SCHEMA,
         "schemaExtensions": [],
         "meta": {"resourceType": "ResourceType",
                  "location": f"{base_url}/ResourceTypes/Group"}},
    ]


def service_provider_config(base_url: str, max_results: int,
                            max_payload: int) -> dict[str, Any]:
    """``/ServiceProviderConfig`` (RFC 7643 section 5)."""
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": f"{base_url}/ServiceProviderConfig",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": max_payload},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "API key",
            "description": "A SCIM API key of the account (CreateApiKey), sent as "
                           "'Authorization: Bearer <key>'.",
            "primary": True,
        }],
        "meta": {"resourceType": "ServiceProviderConfig",
                 "location": f"{base_url}/ServiceProviderConfig"},
    }
