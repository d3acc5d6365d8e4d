"""PATCH (RFC 7644 section 3.5.2) as Okta and Entra ID send it.

Users: :func:`apply_user_patch` applies the operations to the user's document in memory; the
door then writes the result through the engine with the version it read (the write is
``UPDATE ... WHERE version = ?``, so a concurrent change is detected, never overwritten).
Groups: :func:`plan_group_patch` turns the operations into one rename and one membership
change (add/remove per member row, or a replacement list): a group is never loaded whole.

Quirks handled (``notes/scim-clients.md``): operation names in any case (``Replace``);
path-less ``replace``/``add`` with a value object whose keys may be dotted
(``name.givenName``) or URN-qualified; ``"True"``/``"False"`` strings for booleans;
``emails[type eq "work"].value`` creating the element when missing; ``Remove`` of members
with a value list instead of a filter; an empty ``Operations`` list (no change).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from bridge.domain.search import And, Comparison, Node
from scim.errors import ScimError, invalid_path, invalid_syntax, invalid_value
from scim.filters import PatchPath, matches, parse_path
from scim.resources import check_required, coerce, group_member_ids
from scim.schemas import PATCH_OP, Attr, Schema

OPS = ("add", "replace", "remove")


def operations(body: Any) -> list[tuple[str, str | None, Any]]:
    """Validate a PatchOp message; returns (op lowercased, path or None, value) triples."""
    if not isinstance(body, dict):
        raise invalid_syntax("The request body must be a JSON object.")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP.lower() not in {
            s.lower() for s in schemas if isinstance(s, str)}:
        raise invalid_syntax(f"'schemas' must be [{PATCH_OP!r}].")
    ops = body.get("Operations", body.get("operations"))
    if ops is None:
        raise invalid_syntax("'Operations' is required.")
    if not isinstance(ops, list):
        raise invalid_syntax("'Operations' must be a list.")
    out: list[tuple[str, str | None, Any]] = []
    for item in ops:
        if not isinstance(item, dict):
            raise invalid_syntax("Each operation must be an object.")
        op = item.get("op")
        if not isinstance(op, str) or op.lower() not in OPS:
            raise invalid_syntax(f"Unknown PATCH operation {op!r} (add, replace or remove).")
        path = item.get("path")
        if path is not None and not isinstance(path, str):
            raise invalid_path("'path' must be a string.")
        if path is not None and not path.strip():
            path = None
        if op.lower() == "remove" and path is None:
            raise ScimError(400, "A remove operation needs a path.", "noTarget")
        if op.lower() != "remove" and "value" not in item:
            raise invalid_value(f"The {op} operation needs a value.")
        out.append((op.lower(), path, item.get("value")))
    return out


# --- users --------------------------------------------------------------------------------

def _schema_of(path: PatchPath, core: Schema, extensions: tuple[Schema, ...]) -> Schema:
    return next((s for s in (core, *extensions) if s.id == path.schema), core)


def _seed(node: Node | None) -> dict[str, Any]:
    """The element a filter describes (its ``eq`` comparisons), to create a missing one."""
    if isinstance(node, Comparison) and node.op == "eq" and node.value is not None:
        value: Any = node.value
        if node.value.lower() in ("true", "false"):
            value = node.value.lower() == "true"
        return {node.attribute: value}
    if isinstance(node, And):
        return {**_seed(node.left), **_seed(node.right)}
    return {}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict) and "value" in a and "value" in b:
        return str(a["value"]).lower() == str(b["value"]).lower()
    return bool(a == b)


def _merge_multi(current: list[Any], new: list[Any]) -> list[Any]:
    out = list(current)
    for item in new:
        existing = next((i for i, c in enumerate(out) if _same(c, item)), None)
        if existing is None:
            out.append(item)
        elif isinstance(item, dict) and isinstance(out[existing], dict):
            out[existing] = {**out[existing], **item}
    return _one_primary(out, new)


def _one_primary(items: list[Any], latest: list[Any]) -> list[Any]:
    """At most one element is primary (RFC 7643 2.4): the most recently set one wins."""
    winner = next((i for i in reversed(latest) if isinstance(i, dict) and i.get("primary")),
                  None)
    if winner is None:
        return items
    return [{**i, "primary": False} if isinstance(i, dict) and i.get("primary")
            and not _same(i, winner) else i for i in items]


# Sub-attributes that only qualify an element: one left with nothing else says nothing.
_QUALIFIERS = frozenset({"type", "primary", "display"})


def _without_empty(items: list[Any]) -> list[Any]:
    """``items`` without the elements a removal left empty: Entra clears a work phone with
    ``remove phoneNumbers[type eq "work"].value`` and means the number is gone."""
    return [i for i in items if not isinstance(i, dict) or set(i) - _QUALIFIERS]


def _apply(doc: dict[str, Any], op: str, path: PatchPath, value: Any, core: Schema,
           extensions: tuple[Schema, ...]) -> None:
    schema = _schema_of(path, core, extensions)
    if path.attr is None:  # the whole extension
        container_attr = Attr(schema.id, type="complex", sub=schema.attributes)
        if op == "remove":
            doc.pop(schema.id, None)
            return
        new = coerce(container_attr, value, schema.name) or {}
        doc[schema.id] = {**doc.get(schema.id, {}), **new} if op == "add" else new
        return
    if path.attr == "externalId":
        if op == "remove":
            doc.pop("externalId", None)
        else:
            new = coerce(Attr("externalId"), value, "externalId")
            doc.pop("externalId", None) if new is None else doc.__setitem__("externalId", new)
        return
    container = doc if schema is core else doc.setdefault(schema.id, {})
    attr = schema.attr(path.attr)
    if attr is None:  # parse_path checked it; kept for the type checker
        raise invalid_path(f"Unknown attribute {path.attr!r}.")
    if attr.mutability == "readOnly":
        raise ScimError(400, f"{attr.name} is read-only.", "mutability")
    where = attr.name
    if path.filter is None and path.sub is None:
        if op == "remove":
            if attr.multi and isinstance(value, list) and isinstance(container.get(where),
                                                                    list):
                drop = coerce(attr, value, where) or []
                kept = [c for c in container[where] if not any(_same(c, d) for d in drop)]
                container[where] = kept
            else:
                container.pop(where, None)
        elif attr.multi:
            items = value if isinstance(value, list) else [value]
            new = coerce(attr, items, where) or []
            container[where] = _merge_multi(container.get(where) or [], new) if op == "add" \
                else _one_primary(new, new)
        elif attr.type == "complex":
            new = coerce(attr, value, where)
            container[where] = {**(container.get(where) or {}), **(new or {})}
        else:
            new = coerce(attr, value, where)
            if new is None:
                container.pop(where, None)
            else:
                container[where] = new
    elif path.filter is None:  # attr.sub without a filter
        child = attr.child(path.sub or "")
        if child is None:
            raise invalid_path(f"{attr.name} has no sub-attribute {path.sub!r}.")
        if attr.multi:
            items = container.get(where) or []
            if op == "remove":
                container[where] = _without_empty([{k: v for k, v in i.items()
                                                    if k != child.name} for i in items])
            else:
                new = coerce(child, value, f"{where}.{child.name}")
                container[where] = [{**i, child.name: new} for i in items] or [
                    {child.name: new}]
        else:
            target = dict(container.get(where) or {})
            if op == "remove":
                target.pop(child.name, None)
            else:
                new = coerce(child, value, f"{where}.{child.name}")
                if new is None:
                    target.pop(child.name, None)
                else:
                    target[child.name] = new
            container[where] = target
    else:  # attr[filter] or attr[filter].sub
        items = list(container.get(where) or [])
        hits = [i for i, item in enumerate(items)
                if isinstance(item, dict) and matches(path.filter, item, attr)]
        if op == "remove":
            if path.sub is None:
                items = [item for i, item in enumerate(items) if i not in hits]
            else:
                for i in hits:
                    items[i] = {k: v for k, v in items[i].items() if k != path.sub}
                items = _without_empty(items)
        elif path.sub is None:
            new_items = coerce(attr, value if isinstance(value, list) else [value], where) or []
            if hits:
                merged = {**items[hits[0]], **(new_items[0] if new_items else {})}
                items = [merged if i == hits[0] else item for i, item in enumerate(items)
                         if i not in hits[1:]]
            else:
                items.extend(new_items)
        else:
            child = attr.child(path.sub)
            if child is None:
                raise invalid_path(f"{attr.name} has no sub-attribute {path.sub!r}.")
            new = coerce(child, value, f"{where}.{child.name}")
            if new is None:  # a null value: the sub-attribute is cleared
                for i in hits:
                    items[i] = {k: v for k, v in items[i].items() if k != child.name}
                items = _without_empty(items)
            elif hits:
                for i in hits:
                    items[i] = {**items[i], child.name: new}
            else:
                # Entra: emails[type eq "work"].value on a user without a work email
                # creates it.
                seed = coerce(attr, [{**_seed(path.filter), child.name: new}], where) or []
                items.extend(seed)
        container[where] = _one_primary(items, items)
    if schema is not core and not container:
        doc.pop(schema.id, None)
    for key in [k for k, v in list(doc.items()) if v in (None, [], {})]:
        doc.pop(key)


def apply_user_patch(doc: dict[str, Any], ops: list[tuple[str, str | None, Any]],
                     core: Schema, extensions: tuple[Schema, ...]) -> dict[str, Any]:
    """The document after ``ops`` (the input is not modified). Raises ScimError 400
    (invalidPath, invalidValue, mutability, noTarget) for an operation that cannot apply."""
    result = copy.deepcopy(doc)
    for op, path, value in ops:
        if path is None:
            if not isinstance(value, dict):
                raise invalid_value("A path-less operation needs an object value.")
            for key, item in value.items():
                if key.lower() in ("schemas", "id", "meta"):
                    continue
                _apply(result, op, parse_path(key, core, extensions), item, core, extensions)
        else:
            _apply(result, op, parse_path(path, core, extensions), value, core, extensions)
    check_required(result, core)
    return result


# --- groups -------------------------------------------------------------------------------

_UNSET: Any = object()


@dataclass
class GroupPlan:
    """What a group PATCH changes: a new name / external id, and the net membership change."""

    display_name: str | None = None
    external_id: Any = _UNSET  # _UNSET: unchanged; None: removed
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    replace: list[str] | None = None

    @property
    def renames(self) -> bool:
        return self.display_name is not None or self.external_id is not _UNSET

    @property
    def new_external_id(self) -> str | None:
        """The new external id (None: removed, or unchanged — see ``external_id_changed``)."""
        return self.external_id if isinstance(self.external_id, str) else None

    @property
    def external_id_changed(self) -> bool:
        return self.external_id is not _UNSET

    @property
    def changes_members(self) -> bool:
        return bool(self.add or self.remove or self.replace is not None)

    def _add(self, ids: list[str]) -> None:
        if self.replace is not None:
            self.replace = list(dict.fromkeys([*self.replace, *ids]))
        self.add = list(dict.fromkeys([*self.add, *ids]))
        self.remove = [r for r in self.remove if r not in ids]

    def _remove(self, ids: list[str]) -> None:
        if self.replace is not None:
            self.replace = [r for r in self.replace if r not in ids]
        self.remove = list(dict.fromkeys([*self.remove, *ids]))
        self.add = [a for a in self.add if a not in ids]

    def _replace(self, ids: list[str]) -> None:
        self.replace, self.add, self.remove = list(ids), [], []


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid_value(f"{where} must be a non-empty string.")
    return value


def _group_op(plan: GroupPlan, op: str, path: str, value: Any, core: Schema) -> None:
    parsed = parse_path(path, core)
    if parsed.attr == "displayName":
        if op == "remove":
            raise ScimError(400, "displayName is required and cannot be removed.", "mutability")
        plan.display_name = _string(value, "displayName")
    elif parsed.attr == "externalId":
        plan.external_id = None if op == "remove" else (
            _string(value, "externalId") if value is not None else None)
    elif parsed.attr == "members":
        if parsed.sub is not None:
            raise invalid_path("Member sub-attributes cannot be changed.")
        if parsed.filter is not None:
            if op != "remove":
                raise invalid_path("Only remove takes a members filter; add members with "
                                   "path 'members'.")
            ids = _filter_ids(parsed.filter)
            if ids is None:
                raise invalid_path("A members filter must be 'value eq \"<id>\"' (or an 'or' "
                                   "of them).")
            plan._remove(ids)
        elif op == "remove":
            if value is None:
                plan._replace([])  # remove "members" with no value: every member
            else:
                plan._remove(group_member_ids(value))  # Entra: a value list, not a filter
        elif op == "add":
            plan._add(group_member_ids(value))
        else:
            plan._replace(group_member_ids(value))
    else:
        raise invalid_path(f"The path {path!r} cannot be patched on a group.")


def _filter_ids(node: Node) -> list[str] | None:
    from bridge.domain.search import Or

    if isinstance(node, Comparison) and node.attribute.lower() == "value" and node.op == "eq" \
            and node.value:
        return [node.value.lower()]  # not caseExact (RFC 7643 8.7.1): ids are lowercase
    if isinstance(node, Or):
        left, right = _filter_ids(node.left), _filter_ids(node.right)
        return None if left is None or right is None else [*left, *right]
    return None


def plan_group_patch(ops: list[tuple[str, str | None, Any]], group_id: str,
                     core: Schema) -> GroupPlan:
    """The net effect of a group PATCH, in operation order. Raises ScimError 400."""
    plan = GroupPlan()
    for op, path, value in ops:
        if path is not None:
            _group_op(plan, op, path, value, core)
            continue
        if not isinstance(value, dict):
            raise invalid_value("A path-less operation needs an object value.")
        for key, item in value.items():
            lowered = key.lower()
            if lowered == "id":
                if item != group_id:
                    raise ScimError(400, "The group id cannot be changed.", "mutability")
                continue  # Okta repeats the id in its rename operation
            if lowered in ("schemas", "meta"):
                continue
            _group_op(plan, op, key, item, core)
    return plan
