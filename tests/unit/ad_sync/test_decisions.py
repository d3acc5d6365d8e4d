"""The AD sync's decisions without a directory: full or incremental, the mass-change guard,
mapped groups from memberOf and primaryGroupID, and which users changed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ad_sync import decisions
from ad_sync.records import KnownUser, fingerprint
from ad_sync.vendor.ms_ad import DirectoryUser, RootDse

BASE = "OU=Staff,DC=corp,DC=example"
PRO = "CN=Pro,OU=Groups,DC=corp,DC=example"
NESTED = "CN=Pro Nested,OU=Groups,DC=corp,DC=example"
CLOSURE = {decisions.norm_dn(PRO): frozenset({"Pro"}),
           decisions.norm_dn(NESTED): frozenset({"Pro"}),
           "rid:513": frozenset({"Domain Users"})}


def _state(**kw: object) -> SimpleNamespace:
    base = {"highest_usn": 100, "invocation_id": "inv-1", "dc_name": "dc1",
            "full_run_started_usn": None, "mappings_fingerprint": "fp"}
    return SimpleNamespace(**{**base, **kw})


def _user(guid: str = "g1", *, member_of: tuple[str, ...] = (), primary: int | None = None,
          enabled: bool = True, mail: str | None = "a@corp.example") -> DirectoryUser:
    return DirectoryUser(guid=guid, dn=f"CN={guid},{BASE}", mail=mail, aliases=(),
                         display_name="A", enabled=enabled, usn_changed=1,
                         member_of=member_of, primary_group_id=primary)


def test_a_run_is_full_when_the_bridge_has_no_usable_watermark() -> None:
    assert decisions.needs_full(_state(), "fp") is None
    assert decisions.needs_full(_state(highest_usn=None), "fp") == "no watermark yet"
    assert decisions.needs_full(_state(full_run_started_usn=5), "fp") == \
        "the previous full sync did not finish"
    assert decisions.needs_full(_state(), "other") == "the mapped groups changed"


def test_a_run_is_full_when_the_domain_controller_changed() -> None:
    dse = RootDse(dc_name="dc1", invocation_id="inv-1", highest_usn=150,
                  default_naming_context="DC=corp,DC=example")
    assert decisions.dc_changed(_state(), dse) is None
    assert "invocationID" in (decisions.dc_changed(_state(invocation_id="inv-2"), dse) or "")
    assert "invocationID" in (decisions.dc_changed(_state(dc_name="dc2"), dse) or "")
    assert decisions.dc_changed(_state(highest_usn=200), dse) == "the DC's USN went backwards"


@pytest.mark.parametrize(("count", "known", "stops"), [
    (0, 0, False), (5, 5, False),        # nobody, or a tiny directory: the percent rule waits
    (9, 10, False),                      # under PERCENT_RULE_MIN suspensions
    (10, 40, True),                      # 25 % of 40 > 20 %
    (10, 60, False),                     # 16.7 %
    (501, 100_000, True),                # over the absolute limit
    (500, 100_000, False),
])
def test_the_mass_change_guard(count: int, known: int, stops: bool) -> None:
    def run(allowed: bool = False) -> None:
        decisions.mass_change_guard(count, known, max_users=500, max_percent=20,
                                    allowed=allowed)

    if stops:
        with pytest.raises(decisions.MassChangeStopped) as raised:
            run()
        assert (raised.value.count, raised.value.known) == (count, known)
    else:
        run()
    run(allowed=True)  # the operator's --allow-mass-change always passes


def test_an_allowed_mass_change_is_bounded_by_the_count_confirmed() -> None:
    """Apply the mass change confirms the count a stopped run showed: a run that would
    now suspend more (the directory changed meanwhile) stops all the same."""
    def run(count: int, up_to: int | None) -> None:
        decisions.mass_change_guard(count, 10_000, max_users=2, max_percent=20,
                                    allowed=True, allowed_up_to=up_to)

    run(3, 3)
    run(3, None)  # the CLI's --allow-mass-change: no bound
    with pytest.raises(decisions.MassChangeStopped) as raised:
        run(3_000, 3)
    assert raised.value.count == 3_000
    decisions.mass_change_guard(2, 10_000, max_users=2, max_percent=20, allowed=True,
                                allowed_up_to=0)  # within the limit: the bound is moot


@given(st.integers(0, 2000), st.integers(0, 5000))
def test_the_guard_never_stops_a_run_within_both_limits(count: int, known: int) -> None:
    within = count <= 500 and (count < decisions.PERCENT_RULE_MIN or known == 0
                               or count * 100.0 / known <= 20)
    try:
        decisions.mass_change_guard(count, known, max_users=500, max_percent=20)
        assert within
    except decisions.MassChangeStopped:
        assert not within


def test_mapped_groups_come_from_member_of_nesting_and_the_primary_group() -> None:
    shared: dict[frozenset[str], tuple[str, ...]] = {}
    assert decisions.groups_for(_user(member_of=(NESTED.upper(),)), CLOSURE, shared) == \
        ("Pro",)
    assert decisions.groups_for(_user(primary=513), CLOSURE, shared) == ("Domain Users",)
    assert decisions.groups_for(_user(member_of=(PRO,), primary=513), CLOSURE, shared) == \
        ("Domain Users", "Pro")
    assert decisions.groups_for(_user(member_of=("CN=Other,DC=corp,DC=example",)), CLOSURE,
                                shared) == ()
    # Equal group sets are one shared tuple.
    first = decisions.groups_for(_user("g2", member_of=(PRO,)), CLOSURE, shared)
    assert first is decisions.groups_for(_user("g3", member_of=(NESTED,)), CLOSURE, shared)


def _known(user: DirectoryUser, groups: tuple[str, ...], *, present: bool = True,
           user_id: str | None = "u1") -> KnownUser:
    fp = fingerprint(user.mail, user.aliases, user.display_name, user.enabled, groups)
    return KnownUser(user.guid, user_id, user.dn, fp, user.enabled, present, groups)


def test_only_changed_users_are_applied() -> None:
    same, moved_group, back, new = (_user("same", member_of=(PRO,)),
                                    _user("moved", member_of=(PRO,)),
                                    _user("back", member_of=(PRO,)), _user("new"))
    known = {"same": _known(same, ("Pro",)), "moved": _known(moved_group, ()),
             "back": _known(back, ("Pro",), present=False)}
    changes, unchanged = decisions.classify([same, moved_group, back, new], CLOSURE, known)
    assert unchanged == ["same"]
    assert [(c.user.guid, c.groups, c.known is not None) for c in changes] == [
        ("moved", ("Pro",), True), ("back", ("Pro",), True), ("new", (), False)]


def test_disabling_counts_as_a_suspension_only_for_an_enabled_present_user() -> None:
    enabled = _user("e")
    disabled = _user("e", enabled=False)
    change = decisions.Change(disabled, (), "fp", _known(enabled, ()))
    assert decisions.disables(change)
    assert not decisions.disables(decisions.Change(disabled, (), "fp", None))
    assert not decisions.disables(decisions.Change(disabled, (), "fp",
                                                   _known(enabled, (), present=False)))


def test_staged_changes_round_trip_through_their_facts() -> None:
    change = decisions.Change(_user("g", member_of=(PRO,)), ("Pro",), "fp", None)
    again = decisions.change_from_facts("g", decisions.facts(change), None)
    assert (again.user.dn, again.user.mail, again.groups, again.fingerprint) == \
        (change.user.dn, change.user.mail, change.groups, change.fingerprint)


def test_scope_and_dn_comparison_ignore_case_and_spacing() -> None:
    assert decisions.in_scope(f"CN=x, {BASE.lower()}", BASE)
    assert decisions.in_scope(BASE, BASE)
    assert not decisions.in_scope("CN=x,OU=Staff2,DC=corp,DC=example", BASE)
    assert not decisions.in_scope("CN=x,OU=Other,DC=corp,DC=example", BASE)
    assert decisions.escape("a*(b)") == "a\\2a\\28b\\29"
