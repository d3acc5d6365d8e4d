"""SCIM filters and PATCH paths → the neutral tree of :mod:`bridge.domain.search`.

Filters (RFC 7644 section 3.4.2.2) are parsed by ``scim2-filter-parser``; its AST is turned
into :mod:`bridge.domain.search` nodes with attribute names made canonical (names are
case-insensitive, a schema URN prefix is allowed). A filter the parser rejects raises
:class:`~bridge.domain.search.InvalidFilter` (400 ``invalidFilter``): never "no filter".
One leniency:
Entra's documentation shows unquoted string values (``externalId eq jyoung``); when a filter
fails to parse and quoting such bare words makes it parse, the quoted form is used.

PATCH paths (RFC 7644 section 3.5.2) are parsed here too, and :func:`matches` evaluates a
filter in memory — a value filter such as ``emails[type eq "work"]`` against one element, or
a whole filter against a resource — with the same answers as the store's SQL search
(``tests/integration/scim/test_filter_evaluators_agree.py`` checks they agree).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from scim2_filter_parser import ast as fast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser

from bridge.domain.search import And, Comparison, InvalidFilter, Node, Not, Or, ValueFilter
from scim.errors import invalid_path
from scim.schemas import COMMON, SCHEMAS, Attr, Schema

MAX_FILTER_LENGTH = 4096
# Brackets nest at most this deep: the parser and the code that walks its tree recurse
# once per level (a thousand "(" exhausted the stack). Real clients use one or two.
MAX_FILTER_DEPTH = 16
_META_SUBS = ("created", "lastModified", "version", "resourceType", "location")
_BARE = re.compile(r'(\b(?:eq|ne|co|sw|ew|gt|ge|lt|le)\s+)([^\s"()\[\]]+)', re.IGNORECASE)
_LITERALS = {"true", "false", "null"}


def _parse(text: str) -> Any:
    return SCIMParser().parse(SCIMLexer().tokenize(text))


def _quote_bare_words(text: str) -> str:
    def fix(match: re.Match[str]) -> str:
        word = match.group(2)
        if word.lower() in _LITERALS or re.fullmatch(r"-?\d+(\.\d+)?", word):
            return match.group(0)
        return f'{match.group(1)}"{word}"'

    return _BARE.sub(fix, text)


def bracket_depth(text: str) -> int:
    """How deep ``(`` and ``[`` nest in ``text``, outside quoted strings."""
    depth = deepest = 0
    quoted = escaped = False
    for char in text:
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]":
            depth -= 1
    return deepest


def parse_tree(text: str) -> Any:
    """The parser's AST of ``text``; raises InvalidFilter when it cannot be parsed, is
    longer than MAX_FILTER_LENGTH or nests brackets deeper than MAX_FILTER_DEPTH."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidFilter("The filter is empty.", field="filter")
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter("The filter is too long.", field="filter")
    if bracket_depth(text) > MAX_FILTER_DEPTH:
        raise InvalidFilter(f"The filter nests parentheses or brackets deeper than "
                            f"{MAX_FILTER_DEPTH} levels.", field="filter")
    try:
        return _parse(text)
    except Exception:  # the parser raises several unrelated types for bad input
        fixed = _quote_bare_words(text)
        if fixed != text:
            try:
                return _parse(fixed)
            except Exception:  # noqa: S110 - fall through to the error below
                pass
    raise InvalidFilter(f"The filter {text!r} is not a valid SCIM filter (RFC 7644 "
                        "section 3.4.2.2).", field="filter")


def canonical(schema: Schema, name: str, sub: str | None, uri: str | None) -> str:
    """Canonical dotted name of an attribute of ``schema`` (case and URN resolved); names
    the schema does not define come back as given (the store rejects them)."""
    if uri:
        target = next((s for s in SCHEMAS.values() if s.id.lower() == uri.lower()), None)
        if target is None:
            return f"{uri}:{name}"
        if target.id != schema.id:
            attr = target.attr(name)
            name = attr.name if attr else name
            if sub and attr is not None:
                child = attr.child(sub)
                sub = child.name if child else sub
            return f"{target.id}:{name}.{sub}" if sub else f"{target.id}:{name}"
    lowered = name.lower()
    if lowered == "meta":
        canon = "meta"
        if sub:
            sub = next((m for m in _META_SUBS if m.lower() == sub.lower()), sub)
    else:
        common = next((c for c in COMMON if c.lower() == lowered), None)
        attr = schema.attr(name)
        canon = common or (attr.name if attr else name)
        if sub and attr is not None:
            child = attr.child(sub)
            sub = child.name if child else sub
    return f"{canon}.{sub}" if sub else canon


def _sub_name(schema: Schema, parent: str, name: str) -> str:
    attr = schema.attr(parent)
    child = attr.child(name) if attr else None
    return child.name if child else name


def _value(comp: Any) -> str | None:
    return None if comp is None else str(comp.value)


def _run(tree: Any) -> tuple[list[Any], list[str]]:
    """The operands and operators (lowercased), left to right, of an ungrouped run such as
    ``a or b and c``. scim2-filter-parser gives "and" and "or" the same precedence and
    returns that run as ``(a or b) and c``; a bracketed group comes back wrapped twice in
    Filter nodes (once without brackets), so it stays one operand."""
    if isinstance(tree, fast.Filter) and not tree.negated and tree.namespace is None \
            and isinstance(tree.expr, fast.LogExpr):
        tree = tree.expr
    if isinstance(tree, fast.LogExpr):
        left, left_ops = _run(tree.expr1)
        right, right_ops = _run(tree.expr2)
        return [*left, *right], [*left_ops, str(tree.op).lower(), *right_ops]
    return [tree], []


def to_node(tree: Any, schema: Schema, parent: str | None = None) -> Node:
    """The parser's AST → a :mod:`bridge.domain.search` node. ``parent``: inside ``parent[...]``,
    names are sub-attributes of ``parent``."""
    if isinstance(tree, fast.Filter):
        if tree.namespace is not None:
            ns = tree.namespace
            attr = canonical(schema, ns.attr_name, None, ns.uri)
            node: Node = ValueFilter(attr, to_node(tree.expr, schema, attr))
        else:
            node = to_node(tree.expr, schema, parent)
        return Not(node) if tree.negated else node
    if isinstance(tree, fast.LogExpr):
        operands, ops = _run(tree)
        nodes = [to_node(o, schema, parent) for o in operands]
        # "and" binds tighter than "or" (RFC 7644 3.4.2.2): split the run at each "or".
        terms: list[Node] = [nodes[0]]
        for op, node in zip(ops, nodes[1:], strict=True):
            if op == "and":
                terms[-1] = And(terms[-1], node)
            else:
                terms.append(node)
        result = terms[0]
        for term in terms[1:]:
            result = Or(result, term)
        return result
    if isinstance(tree, fast.AttrExpr):
        op = str(tree.value).lower()
        path = tree.attr_path
        if isinstance(path.attr_name, fast.Filter):
            # emails[type eq "work"].value eq "x": an element with type work and that value.
            inner = path.attr_name
            ns = inner.namespace
            attr = canonical(schema, ns.attr_name, None, ns.uri)
            sub = ns.sub_attr.value if ns.sub_attr is not None else "value"
            leaf = Comparison(_sub_name(schema, attr, sub), op, _value(tree.comp_value))
            return ValueFilter(attr, And(to_node(inner.expr, schema, attr), leaf))
        sub = path.sub_attr.value if path.sub_attr is not None else None
        if parent is not None:
            name = _sub_name(schema, parent, path.attr_name)
            return Comparison(f"{name}.{sub}" if sub else name, op, _value(tree.comp_value))
        return Comparison(canonical(schema, path.attr_name, sub, path.uri), op,
                          _value(tree.comp_value))
    raise InvalidFilter("The filter has a form the service cannot evaluate.", field="filter")


def parse_filter(text: str, schema: Schema) -> Node:
    """A SCIM filter → a neutral tree. Raises InvalidFilter (400 invalidFilter)."""
    return to_node(parse_tree(text), schema)


# --- PATCH paths --------------------------------------------------------------------------

_PATH = re.compile(r"^([A-Za-z$][\w$-]*)(?:\[(.+)\])?(?:\.([A-Za-z$][\w$-]*))?$", re.DOTALL)


@dataclass(frozen=True)
class PatchPath:
    """``[urn:]attr[filter][.sub]``. ``schema`` is the schema URN the attribute belongs to;
    ``attr`` None means the whole extension (a path that is just the extension URN)."""

    schema: str
    attr: str | None
    filter: Node | None = None
    sub: str | None = None


def parse_path(text: str, core: Schema, extensions: tuple[Schema, ...] = ()) -> PatchPath:
    """Parse a PATCH path against ``core`` and its ``extensions``. Raises ScimError 400
    ``invalidPath`` for a malformed path or an attribute the schemas do not define."""
    if not isinstance(text, str) or not text.strip():
        raise invalid_path("The PATCH path is empty.")
    rest = text.strip()
    schema = core
    if rest.lower().startswith("urn:"):
        candidates = sorted((core, *extensions), key=lambda s: -len(s.id))
        found = next((s for s in candidates if rest.lower().startswith(s.id.lower())), None)
        if found is None:
            raise invalid_path(f"The path {text!r} names an unknown schema.")
        schema, rest = found, rest[len(found.id):]
        if not rest:
            if schema is core:
                raise invalid_path(f"The path {text!r} names no attribute.")
            return PatchPath(schema.id, None)
        if not rest.startswith(":"):
            raise invalid_path(f"The path {text!r} is malformed.")
        rest = rest[1:]
    match = _PATH.match(rest)
    if match is None:
        raise invalid_path(f"The path {text!r} is malformed.")
    name, filter_text, sub = match.groups()
    if name.lower() in ("id", "meta", "schemas"):
        raise invalid_path(f"The attribute {name!r} cannot be modified.")
    if name.lower() == "externalid" and schema is core:
        if filter_text or sub:
            raise invalid_path(f"The path {text!r} is malformed.")
        return PatchPath(schema.id, "externalId")
    attr = schema.attr(name)
    if attr is None:
        raise invalid_path(f"The attribute {name!r} is not defined by {schema.name}.")
    if sub is not None:
        child = attr.child(sub)
        if child is None:
            raise invalid_path(f"{attr.name} has no sub-attribute {sub!r}.")
        sub = child.name
    node = None
    if filter_text is not None:
        if not attr.multi:
            raise invalid_path(f"{attr.name} is not multi-valued; it takes no filter.")
        try:
            node = to_node(parse_tree(filter_text), schema, attr.name)
        except InvalidFilter as exc:
            raise invalid_path(f"The filter in path {text!r} is invalid: {exc.message}") \
                from None
        if _nests(node):  # RFC 7644 3.5.2: a valFilter holds no valuePath
            raise invalid_path(f"The filter in path {text!r} nests a value filter.")
    return PatchPath(schema.id, attr.name, node, sub)


def _nests(node: Node) -> bool:
    if isinstance(node, And | Or):
        return _nests(node.left) or _nests(node.right)
    if isinstance(node, Not):
        return _nests(node.node)
    return isinstance(node, ValueFilter)


def _compare(actual: Any, op: str, value: str | None, case_exact: bool) -> bool:
    if op == "pr":
        return actual not in (None, "", [], {})
    if isinstance(actual, list):  # a multi-valued attribute: some value satisfies it
        return any(_compare(a, op, value, case_exact) for a in actual) if actual \
            else op == "ne"
    if actual is None:
        return op == "ne"
    if isinstance(actual, bool):
        wanted = (value or "").lower() == "true"
        return (actual == wanted) if op == "eq" else (actual != wanted) if op == "ne" else False
    a, v = str(actual), value or ""
    if not case_exact:
        a, v = a.lower(), v.lower()
    return {"eq": a == v, "ne": a != v, "co": v in a, "sw": a.startswith(v),
            "ew": a.endswith(v), "gt": a > v, "ge": a >= v, "lt": a < v,
            "le": a <= v}.get(op, False)


def _get(container: Any, name: str) -> Any:
    """``container[name]`` with the name compared case-insensitively (RFC 7643 2.1)."""
    if not isinstance(container, dict):
        return None
    key = next((k for k in container if k.lower() == name.lower()), None)
    return None if key is None else container[key]


def _attr_of(within: Schema | Attr | None, name: str) -> Attr | None:
    if isinstance(within, Schema):
        return within.attr(name)
    return within.child(name) if isinstance(within, Attr) else None


def _value_at(element: dict[str, Any], name: str,
              within: Schema | Attr | None) -> tuple[Any, bool]:
    """(the value(s) ``name`` designates in ``element``, whether they compare case-exactly).

    ``name`` is canonical (``userName``, ``name.givenName``, ``urn:...:User:department``);
    a multi-valued attribute named without a sub-attribute means its ``value``s."""
    for extension in SCHEMAS.values():
        if isinstance(within, Schema) and name.lower().startswith(extension.id.lower() + ":"):
            element, within = _get(element, extension.id) or {}, extension
            name = name[len(extension.id) + 1:]
            break
    head, _, sub = name.partition(".")
    attr = _attr_of(within, head)
    value = _get(element, head)
    if not sub and attr is not None and attr.type == "complex" and attr.child("value"):
        sub = "value"
    if not sub:
        # RFC 7643 section 3.1: a resource's id and externalId are caseExact; the schema
        # says it for the rest.
        common = head in ("id", "externalId") and not isinstance(within, Attr)
        return value, common or (attr is not None and attr.case_exact)
    child = attr.child(sub) if attr is not None else None
    exact = child is not None and child.case_exact
    if isinstance(value, list):
        return [v for v in (_get(i, sub) for i in value) if v is not None], exact
    return _get(value, sub), exact


def matches(node: Node, element: dict[str, Any], within: Schema | Attr | None = None) -> bool:
    """Whether ``element`` satisfies ``node``, in memory, as the store's search would.

    ``element`` is a resource document (``within`` its Schema) or one element of a
    multi-valued attribute (``within`` that Attr, as in a PATCH path ``emails[type eq
    "work"]``). Strings compare case-insensitively unless the attribute is caseExact (RFC
    7643 section 2.2: id, externalId and the schema's caseExact attributes). Raises ScimError
    400 invalidPath for a value filter inside a value filter."""
    if isinstance(node, Comparison):
        actual, exact = _value_at(element, node.attribute, within)
        return _compare(actual, node.op, node.value, exact)
    if isinstance(node, And):
        return matches(node.left, element, within) and matches(node.right, element, within)
    if isinstance(node, Or):
        return matches(node.left, element, within) or matches(node.right, element, within)
    if isinstance(node, Not):
        return not matches(node.node, element, within)
    if isinstance(within, Schema):
        attr = within.attr(node.attribute)
        items = _get(element, node.attribute)
        return attr is not None and isinstance(items, list) and any(
            matches(node.node, item, attr) for item in items if isinstance(item, dict))
    raise invalid_path("Value filters cannot be nested.")
