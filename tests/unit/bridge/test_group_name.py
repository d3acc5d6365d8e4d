"""The one rule for a directory group's name (bridge.domain.groups)."""

from __future__ import annotations

import pytest

from bridge.domain.groups import group_name
from bridge.errors import ValidationError


def test_a_name_is_stripped_and_kept() -> None:
    assert group_name("  Sales Pro ", field="GroupName") == "Sales Pro"
    assert group_name("x" * 256, field="GroupName") == "x" * 256


@pytest.mark.parametrize("name", [None, 7, "", "   ", "x" * 257])
def test_anything_else_is_refused_on_the_doors_field(name: object) -> None:
    with pytest.raises(ValidationError) as refused:
        group_name(name, field="displayName")
    assert refused.value.field == "displayName"
