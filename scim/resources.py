"""SCIM resources ↔ engine arguments and views (RFC 7643).

Input: :func:`validate` checks a resource against its schema (``scim.schemas``) and returns
its *document*: attribute names made canonical, values coerced (Entra's ``"False"`` strings),
read-only values dropped (RFC 7644 section 3.5.1), unknown attributes refused (400
``invalidSyntax``). :func:`user_args` turns a User document into the engine's
``upsert_directory_user`` arguments. Output: :func:`render_user` / :func:`render_group` build
the full resource from the engine's views; :func:`project` applies ``attributes`` /
``excludedAttributes`` (RFC 7644 section 3.4.2.5).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from bridge.domain import normalize_email, provisioned_primary_address
from bridge.domain.search import Ref
from bridge.engine.results import DirectoryGroupView, UserView
from bridge.errors import ValidationError
from scim.errors import ScimError, invalid_syntax, invalid_value
from scim.schemas import (
    ENTERPRISE,
    ENTERPRISE_SCHEMA,
    GROUP,
    GROUP_SCHEMA,
    MS_GROUP_SCHEMA,
    USER,
    USER_SCHEMA,
    Attr,
    Schema,
)

MAX_STRING = 2048
# A DER certificate in base64 (x509Certificates.value) is larger than any string attribute.
MAX_BINARY = 16384
# Column limits of the store (a longer value would be a database error, i.e. a 500).
LIMITS = {"userName": 256, "displayName": 256, "externalId": 256}
# User-document keys the engine keeps in columns rather than in ``attributes``.
_COLUMNS = ("userName", "displayName", "password")


def etag(version: int) -> str:
    return f'W/"{version}"'


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- input ------------------------------------------------------------------------------

def coerce(attr: Attr, value: Any, where: str) -> Any:
    """``value`` checked and coerced for ``attr``; None means "no value" (drop it)."""
    if value is None:
        return None
    if attr.multi:
        items = value if isinstance(value, list) else None
        if items is None:
            raise invalid_value(f"{where} must be a list.")
        out = [v for v in (_single(attr, item, f"{where}[]") for item in items) if v is not None]
        return out or None
    return _single(attr, value, where)


def _single(attr: Attr, value: Any, where: str) -> Any:
    if value is None:
        return None
    if attr.type == "complex":
        if isinstance(value, str) and attr.child("value") is not None:
            value = {"value": value}  # Entra sends manager as a plain id
        if not isinstance(value, dict):
            raise invalid_value(f"{where} must be an object.")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "schemas" and attr.name.startswith("urn:"):
                continue  # an extension object repeating its schema URN
            child = attr.child(key)
            if child is None:
                raise invalid_syntax(f"{where} has no sub-attribute {key!r}.")
            if child.mutability == "readOnly":
                continue
            coerced = _single(child, item, f"{where}.{child.name}")
            if coerced is not None:
                out[child.name] = coerced
        return out or None
    if attr.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"  # Entra sends "True" / "False"
        raise invalid_value(f"{where} must be true or false.")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise invalid_value(f"{where} must be a string.")
    text = str(value)
    if len(text) > LIMITS.get(attr.name, MAX_BINARY if attr.type == "binary" else MAX_STRING):
        raise invalid_value(f"{where} is too long.")
    if attr.type == "binary":
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_value(f"{where} must be base64 (RFC 7643 section 2.3.6).") from None
    return text


def _schema_for(key: str, extensions: tuple[Schema, ...]) -> Schema | None:
    return next((s for s in extensions if s.id.lower() == key.lower()), None)


def validate(body: Any, core: Schema, extensions: tuple[Schema, ...] = ()) -> dict[str, Any]:
    """A resource body → its document. Raises ScimError 400 for a body that is not an object,
    ``schemas`` without the core schema or with an unknown one, an unknown attribute, a
    value of the wrong type or a missing required attribute."""
    if not isinstance(body, dict):
        raise invalid_syntax("The request body must be a JSON object.")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise invalid_syntax(f"'schemas' must be a list naming {core.id}.")
    known = {core.id.lower(), *(e.id.lower() for e in extensions), MS_GROUP_SCHEMA.lower()}
    if core.id.lower() not in {s.lower() for s in schemas}:
        raise invalid_syntax(f"'schemas' must include {core.id}.")
    unknown = [s for s in schemas if s.lower() not in known]
    if unknown:
        raise invalid_value(f"Unknown schema {unknown[0]!r}.")
    doc: dict[str, Any] = {}
    for key, value in body.items():
        lowered = key.lower()
        if lowered in ("schemas", "id", "meta"):
            continue  # id and meta are the server's (ignored on input, RFC 7643 3.1)
        if lowered == "externalid":
            external = _single(Attr("externalId"), value, "externalId")
            if external is not None:
                doc["externalId"] = external
            continue
        extension = _schema_for(key, extensions)
        if extension is not None:
            coerced = _single(Attr(extension.id, type="complex", sub=extension.attributes),
                              value, extension.name)
            if coerced is not None:
                doc[extension.id] = coerced
            continue
        if lowered == MS_GROUP_SCHEMA.lower():
            continue
        name = key
        if lowered.startswith(core.id.lower() + ":"):
            name = key[len(core.id) + 1:]
        attr = core.attr(name)
        if attr is None:
            raise invalid_syntax(f"Unknown attribute {key!r} for {core.name}.")
        if attr.mutability == "readOnly":
            continue
        coerced = coerce(attr, value, attr.name)
        if coerced is not None:
            doc[attr.name] = coerced
    check_required(doc, core)
    return doc


def check_required(doc: dict[str, Any], core: Schema) -> None:
    for attr in core.attributes:
        if attr.required and (doc.get(attr.name) in (None, "") or (
                isinstance(doc.get(attr.name), str) and not doc[attr.name].strip())):
            raise invalid_value(f"{attr.name} is required.")


def _email(value: str) -> str | None:
    try:
        return normalize_email(value)
    except ValidationError:
        return None


def user_args(doc: dict[str, Any]) -> dict[str, Any]:
    """A User document → keyword arguments of ``ResolutionEngine.upsert_directory_user``.

    Primary address: :func:`bridge.domain.provisioned_primary_address` (the email marked
    ``primary``, else ``userName`` when it is an address, else the first email).
    The password is dropped here: the bridge never stores one.
    """
    emails = [e for e in doc.get("emails") or [] if isinstance(e.get("value"), str)]
    marked = next((e["value"] for e in emails if e.get("primary") is True), None)
    try:
        # The rule is the domain's; the door only reads the document.
        primary_raw = provisioned_primary_address(marked, doc["userName"],
                                                  [e["value"] for e in emails])
    except ValidationError:
        raise invalid_value(f"The primary email {marked!r} is not a valid address.") from None
    others = [e["value"] for e in emails if e["value"] != primary_raw]
    attributes = {k: v for k, v in doc.items() if k not in _COLUMNS}
    return {
        "user_name": doc["userName"],
        "external_id": doc.get("externalId"),
        "primary_email": primary_raw,
        "other_emails": others,
        "display_name": doc.get("displayName"),
        "enabled": doc.get("active", True),
        "attributes": attributes,
    }


def user_document(view: UserView) -> dict[str, Any]:
    """The stored user as a document (what PATCH operates on)."""
    doc = dict(view.attributes)
    doc["userName"] = view.user_name or view.primary_email
    if view.display_name is not None:
        doc["displayName"] = view.display_name
    if "active" in doc or view.user_name is None:
        # ``active`` as the client last set it is kept with the attributes; the column is
        # the truth (a disabled user renders false), and "absent" stays absent.
        doc["active"] = view.directory_enabled
    if "emails" not in doc and view.user_name is None and view.primary_email:
        # A user the account had before SCIM: show the address it has.
        doc["emails"] = [{"value": view.primary_email, "type": "work", "primary": True}]
    return doc


def group_member_ids(members: Any, where: str = "members") -> list[str]:
    """The user ids of a ``members`` value (a list of ``{"value": id, ...}``), lowercased
    (the form the bridge mints them in)."""
    if members is None:
        return []
    if isinstance(members, dict):
        members = [members]
    if not isinstance(members, list):
        raise invalid_value(f"{where} must be a list.")
    ids: list[str] = []
    for item in members:
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, str) or not value:
            raise invalid_value(f"Each of {where} needs a 'value' (a user id).")
        kind = item.get("type")
        if isinstance(kind, str) and kind.lower() != "user":
            # The tier rule has no nested groups (the schema says so).
            raise invalid_value(f"{where} can only hold users, not {kind!r}.")
        # members.value is not caseExact (RFC 7643 section 8.7.1) and user ids are
        # minted lowercase: an id in another case names the same user.
        ids.append(value.lower())
    return list(dict.fromkeys(ids))


# --- output -----------------------------------------------------------------------------

def render_user(view: UserView, groups: list[Ref] | None, base_url: str) -> dict[str, Any]:
    """The full User resource (before projection)."""
    doc = user_document(view)
    out: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": view.id}
    if "externalId" in doc:
        out["externalId"] = doc["externalId"]
    for attr in USER.attributes:
        if attr.name in doc and attr.returned != "never":
            out[attr.name] = doc[attr.name]
    if groups:
        out["groups"] = [{"value": g.id, "$ref": f"{base_url}/Groups/{g.id}",
                          "display": g.display} for g in groups]
    if doc.get(ENTERPRISE_SCHEMA):
        out["schemas"].append(ENTERPRISE_SCHEMA)
        out[ENTERPRISE_SCHEMA] = doc[ENTERPRISE_SCHEMA]
    out["meta"] = {"resourceType": "User", "created": _iso(view.created_at),
                   "lastModified": _iso(view.updated_at), "version": etag(view.version),
                   "location": f"{base_url}/Users/{view.id}"}
    return out


def render_group(view: DirectoryGroupView, members: list[Ref] | None,
                 base_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": view.id}
    if view.external_id is not None:
        out["externalId"] = view.external_id
    out["displayName"] = view.name
    if members:
        out["members"] = [{"value": m.id, "$ref": f"{base_url}/Users/{m.id}", "type": "User",
                           **({"display": m.display} if m.display else {})} for m in members]
    out["meta"] = {"resourceType": "Group", "created": _iso(view.created_at),
                   "lastModified": _iso(view.updated_at), "version": etag(view.version),
                   "location": f"{base_url}/Groups/{view.id}"}
    return out


# --- projection (attributes / excludedAttributes) ---------------------------------------

def _split(paths: str | None) -> list[str] | None:
    if paths is None:
        return None
    return [p.strip() for p in paths.split(",") if p.strip()]


def _resolve(path: str, core: Schema, extensions: tuple[Schema, ...]) -> tuple[str, str | None]:
    """(top-level key, sub-attribute or None) of a projection path; keys as rendered."""
    rest, owner = path, core
    for schema in sorted((core, *extensions), key=lambda s: -len(s.id)):
        if rest.lower().startswith(schema.id.lower()):
            owner, rest = schema, rest[len(schema.id):].lstrip(":")
            break
    if not rest:
        return owner.id, None
    top, _, sub = rest.partition(".")
    if top.lower() in ("id", "externalid", "meta", "schemas"):
        key = {"id": "id", "externalid": "externalId", "meta": "meta",
               "schemas": "schemas"}[top.lower()]
        return key, sub or None
    attr = owner.attr(top)
    if attr is None:
        raise ScimError(400, f"Unknown attribute {path!r} in attributes.", "invalidValue")
    name = attr.name
    sub_name = None
    if sub:
        child = attr.child(sub)
        sub_name = child.name if child else sub
    if owner is not core:
        return owner.id, f"{name}.{sub_name}" if sub_name else name
    return name, sub_name


class Projection:
    """``attributes`` / ``excludedAttributes`` of a request, resolved against a schema."""

    def __init__(self, attributes: str | None, excluded: str | None, core: Schema,
                 extensions: tuple[Schema, ...] = ()) -> None:
        self.core = core
        include = _split(attributes)
        exclude = _split(excluded)
        self.include = [_resolve(p, core, extensions) for p in include] if include else None
        self.exclude = [_resolve(p, core, extensions) for p in exclude] if exclude else []

    def wants(self, key: str) -> bool:
        """Whether the top-level attribute ``key`` is returned (decides what to load)."""
        if any(k == key and s is None for k, s in self.exclude):
            return False
        return self.include is None or any(k == key for k, _ in self.include)

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        if self.include is not None:
            out: dict[str, Any] = {"schemas": doc["schemas"], "id": doc["id"]}
            for key, sub in self.include:
                if key not in doc:
                    continue
                if sub is None:
                    out[key] = doc[key]
                else:
                    _copy_sub(doc, out, key, sub)
            doc = out
        else:
            doc = dict(doc)
        for key, sub in self.exclude:
            if key in ("id", "schemas"):
                continue  # returned always (RFC 7643 section 7)
            if sub is None:
                doc.pop(key, None)
            elif isinstance(doc.get(key), dict | list):
                doc[key] = _without_sub(doc[key], sub)
        return doc


def _copy_sub(doc: dict[str, Any], out: dict[str, Any], key: str, sub: str) -> None:
    value = doc[key]
    head, _, tail = sub.partition(".")
    if isinstance(value, list):
        picked = [{head: v[head]} for v in value if isinstance(v, dict) and head in v]
        if picked:
            out[key] = picked
    elif isinstance(value, dict) and head in value:
        target = out.setdefault(key, {})
        if tail and isinstance(value[head], dict):
            if tail in value[head]:
                target.setdefault(head, {})[tail] = value[head][tail]
        else:
            target[head] = value[head]


def _without_sub(value: Any, sub: str) -> Any:
    head, _, tail = sub.partition(".")
    if isinstance(value, list):
        return [_without_sub(v, sub) for v in value]
    if isinstance(value, dict):
        copy = dict(value)
        if tail and isinstance(copy.get(head), dict):
            copy[head] = _without_sub(copy[head], tail)
        else:
            copy.pop(head, None)
        return copy
    return value


USER_EXTENSIONS = (ENTERPRISE,)
GROUP_EXTENSIONS: tuple[Schema, ...] = ()
SCHEMA_OF = {"Users": (USER, USER_EXTENSIONS), "Groups": (GROUP, GROUP_EXTENSIONS)}
