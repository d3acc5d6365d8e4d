"""ad_sync.groups without I/O: reading a DirSync entry and comparing closures."""

from __future__ import annotations

import uuid

from ad_sync import groups
from ad_sync.groups import ClosureGroup

GUID = uuid.UUID("12345678-1234-5678-9abc-def012345678")


def _entry(**raw: list[bytes]) -> dict[str, object]:
    return {"type": "searchResEntry", "dn": "CN=g,DC=x",
            "raw_attributes": {"objectGUID": [GUID.bytes_le], **raw}}


def test_a_dirsync_entry_gives_added_and_removed_member_dns() -> None:
    change = groups._change(_entry(**{
        "member;range=1-1": [b"CN=a,DC=x", b"<GUID=ab>;<SID=S-1-5-1>;CN=b,DC=x"],
        "member;range=0-0": [b"CN=c,DC=x"], "member": [], "cn": []}))
    assert change is not None
    assert change.guid == str(GUID)
    assert change.added == ("CN=a,DC=x", "CN=b,DC=x")
    assert change.removed == ("CN=c,DC=x",)
    assert not change.renamed


def test_a_renamed_or_deleted_group_or_a_whole_member_list_is_a_structural_change() -> None:
    for raw in ({"cn": [b"new"]}, {"isDeleted": [b"TRUE"]}, {"name": [b"x"]},
                {"member": [b"CN=a,DC=x"]}):
        change = groups._change(_entry(**raw))
        assert change is not None and change.renamed, raw


def test_touched_members_only_of_closure_groups() -> None:
    closure = {str(GUID): ClosureGroup("cn=g,dc=x", 1100, ("Pro",))}
    inside = groups.GroupChange(str(GUID), ("CN=a,DC=x",), ("CN=b,DC=x",), False)
    outside = groups.GroupChange("other", ("CN=c,DC=x",), (), False)
    assert groups.touched_members([inside, outside], closure) == ["CN=a,DC=x", "CN=b,DC=x"]


def test_needs_scan_when_a_dn_or_rid_maps_to_other_names() -> None:
    before = {"g1": ClosureGroup("cn=pro,dc=x", 1100, ("Pro",))}
    moved_elsewhere_same_names = {"g1": ClosureGroup("cn=pro,dc=x", 1100, ("Pro",))}
    nested = {**before, "g2": ClosureGroup("cn=team,dc=x", 1200, ("Pro",))}
    renamed = {"g1": ClosureGroup("cn=pro,dc=x", 1100, ("Basic",))}
    assert not groups.needs_scan(before, moved_elsewhere_same_names)
    assert groups.needs_scan(before, nested)
    assert groups.needs_scan(before, renamed)
    assert groups.needs_scan(before, {})
    assert groups.lookup(nested)["rid:1200"] == frozenset({"Pro"})
