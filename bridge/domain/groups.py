"""The rule for a directory group's name, the same from every door (admin API, console,
SCIM, AD mappings)."""

from __future__ import annotations

from bridge.errors import ValidationError

MAX_GROUP_NAME = 256


def group_name(name: object, *, field: str) -> str:
    """``name`` without surrounding spaces; ValidationError (on ``field``, the door's own
    name for it) unless it is text of 1 to 256 characters once stripped."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_GROUP_NAME:
        raise ValidationError(f"A group name must be 1 to {MAX_GROUP_NAME} characters.",
                              field=field)
    return name.strip()
