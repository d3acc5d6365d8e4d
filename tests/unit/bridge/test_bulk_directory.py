"""``apply_directory_users`` (the AD sync's bulk path) against the per-user operations it
replaces: the same random pages go through ``upsert_directory_user`` +
``set_user_groups`` on one engine and through the bulk operation on another, on each store,
and the two bridges must end up identical."""

from __future__ import annotations

import random
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bridge.app import build_services
from bridge.domain import Actor, DirectoryKind, IdentitySource, Tier
from bridge.engine import ResolutionEngine, bulk
from bridge.engine.results import DirectoryUserInput, DirectoryUserOutcome
from bridge.errors import BridgeError
from bridge.store.db import transaction
from bridge.store.models import (
    AuditEvent,
    DirectoryGroup,
    EmailAddress,
    ExternalIdentity,
    GroupMembership,
    User,
)
from tests.builders import default_identity, enterprise
from tests.conftest import FakeClock, _fresh_postgres, make_settings

ACTOR = Actor(type="System", principal_id="ad-sync", name="ad-sync")
AD = IdentitySource.ACTIVE_DIRECTORY
EVENT = "SyncDirectoryUser"
GROUP_NAMES = ["Pro-Group", "pro-group", "Basic-Group", "other", " spaced ", "Nested-X"]
DOMAINS = ["example.com", "corp.example", "unclaimed.test"]


@pytest.fixture
def twin(request: pytest.FixtureRequest, store_url: str, tmp_path: Path,
         clock: FakeClock) -> Iterator[ResolutionEngine]:
    """A second engine on a second fresh database of the same store as ``engine``."""
    if store_url.startswith("sqlite"):
        target = tmp_path / "twin.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), target)
        url = f"sqlite:///{target}"
    else:
        url = _fresh_postgres(request.getfixturevalue("postgres_server"),
                              request.getfixturevalue("_postgres_template"))
    built = build_services(make_settings(tmp_path / "twin", url), clock=clock)
    yield built.engine
    built.db.dispose()


def _setup(engine: ResolutionEngine, admin: Actor) -> str:
    account = enterprise(engine, admin, ["example.com", "corp.example"], name="Corp")
    # A console-managed member before the directory arrives: AD users clash with it.
    engine.decide_sign_in(default_identity("boss@example.com"), admin)
    engine.set_directory(admin, account.id, DirectoryKind.ACTIVE_DIRECTORY,
                         event_name="ConnectDirectory")
    engine.add_or_update_group_mappings(admin, account.id,
                                        {"pro-group": Tier.PRO, "basic-group": Tier.BASIC})
    return account.id


def _address(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return "not-an-address"
    if rng.random() < 0.08:
        return "Boss@Example.com"
    return f"{rng.choice('abcdefgh')}@{rng.choice(DOMAINS)}"


def _page(rng: random.Random, guids: list[str]) -> list[dict[str, Any]]:
    """One page of directory facts; ``relink``/``bogus`` are resolved per engine."""
    page = []
    for guid in rng.sample(guids, rng.randint(1, 8)):
        facts: dict[str, Any] = {
            "guid": guid,
            "mail": None if rng.random() < 0.1 else _address(rng),
            "aliases": [_address(rng) for _ in range(rng.randint(0, 3))],
            "name": rng.choice([None, f"User {guid}", f"Renamed {guid}"]),
            "enabled": rng.random() < 0.75,
            "groups": rng.sample(GROUP_NAMES, rng.randint(0, 3)),
            "replace": rng.random() < 0.8,
            "relink": None, "bogus": False,
        }
        roll = rng.random()
        if roll < 0.1:
            facts["relink"] = rng.choice(guids)  # re-link the profile of that guid
        elif roll < 0.13:
            facts["bogus"] = True
        page.append(facts)
    return page


def _linked_user(engine: ResolutionEngine, account_id: str, guid: str) -> str | None:
    view = engine.directory_user(account_id, AD, guid)
    return view.id if view is not None else None


def _inputs(engine: ResolutionEngine, account_id: str,
            page: list[dict[str, Any]]) -> list[DirectoryUserInput]:
    items = []
    for f in page:
        user_id = None
        if f["bogus"]:
            user_id = "00000000-0000-0000-0000-000000000000"
        elif f["relink"] is not None:
            user_id = _linked_user(engine, account_id, f["relink"])
        items.append(DirectoryUserInput(
            external_id=f["guid"], primary_email=f["mail"], other_emails=f["aliases"],
            display_name=f["name"], enabled=f["enabled"], groups=f["groups"],
            replace_groups=f["replace"], user_id=user_id))
    return items


def _per_user(engine: ResolutionEngine, account_id: str,
              items: list[DirectoryUserInput]) -> list[tuple[Any, ...]]:
    """The old path, as the sync ran it: one savepoint per operation in one transaction."""
    out: list[tuple[Any, ...]] = []
    with engine.single_transaction():
        for item in items:
            try:
                result = engine.upsert_directory_user(
                    ACTOR, account_id, source=AD, external_id=item.external_id,
                    primary_email=item.primary_email, other_emails=item.other_emails,
                    display_name=item.display_name, enabled=item.enabled,
                    on_address_conflict="skip", event_name=EVENT, user_id=item.user_id)
                if item.replace_groups or result.created:
                    engine.set_user_groups(ACTOR, account_id, result.user.id, item.groups,
                                           create_missing=True, event_name=EVENT + "Groups")
            except BridgeError as exc:
                out.append(("error", exc.code))
                continue
            out.append(("ok", result.created, result.skipped_addresses))
    return out


def _bulk(engine: ResolutionEngine, account_id: str,
          items: list[DirectoryUserInput]) -> list[tuple[Any, ...]]:
    with engine.single_transaction():
        outcomes = engine.apply_directory_users(ACTOR, account_id, AD, items, event_name=EVENT)
    assert len(outcomes) == len(items)
    # The returned views are the users as stored (for users the page touched once).
    ids = Counter(o.result.user.id for o in outcomes if o.result is not None)
    for o in outcomes:
        if o.result is not None and ids[o.result.user.id] == 1:
            assert engine.get_user(account_id, o.result.user.id) == o.result.user
    return [_outcome(o) for o in outcomes]


def _outcome(o: DirectoryUserOutcome) -> tuple[Any, ...]:
    if o.error is not None:
        assert o.result is None
        return ("error", o.error.code)
    assert o.result is not None
    return ("ok", o.result.created, o.result.skipped_addresses)


def _snapshot(engine: ResolutionEngine) -> dict[str, Any]:
    """Everything the two paths must agree on, keyed by objectGUID / address, not ids
    (ids and PINs are random; ``version`` counts flushes and ``updated_at`` is the wall
    clock where the tier update stamps it, so neither is compared)."""
    with transaction(engine.uow.session_factory) as s:
        links: dict[str, list[str]] = {}
        for uid, ext in s.execute(select(ExternalIdentity.user_id,
                                         ExternalIdentity.external_id)).tuples():
            links.setdefault(uid, []).append(ext)
        groups: dict[str, list[str]] = {}
        for uid, name in s.execute(
                select(GroupMembership.user_id, DirectoryGroup.name)
                .join(DirectoryGroup, DirectoryGroup.id == GroupMembership.group_id)).tuples():
            groups.setdefault(uid, []).append(name)
        addresses: dict[str, list[tuple[str, bool]]] = {}
        for row in s.scalars(select(EmailAddress)):
            addresses.setdefault(row.user_id, []).append((row.address, row.is_primary))
        users = {}
        pins = []
        for u in s.scalars(select(User)):
            key = ",".join(sorted(links.get(u.id, []))) or f"unlinked:{u.primary_email}"
            assert key not in users
            pins.append(u.personal_pin)
            users[key] = (u.primary_email, u.display_name, u.status, u.tier, u.in_directory,
                          u.directory_enabled, u.directory_deleted_at,
                          u.sessions_valid_after, list(u.source_addresses), u.created_at,
                          sorted(addresses.get(u.id, [])), sorted(groups.get(u.id, [])))
        assert len(set(pins)) == len(pins) and all(p and len(p) == 10 for p in pins)
        group_rows = sorted(s.execute(select(DirectoryGroup.name,
                                             DirectoryGroup.name_lower)).tuples())
        events = []
        for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
            if e.event_name.startswith(EVENT):
                body = e.body
                req = dict(body["requestParameters"] or {})
                req.pop("accountId", None)
                resp = dict(body["responseElements"] or {})
                resp.pop("userId", None)
                events.append((e.event_name, e.error_code, req, resp))
    return {"users": users, "groups": group_rows, "events": events}


def _compare_events(old: list[Any], new: list[Any]) -> None:
    """One bulk event per user stands for the old pair (user + its groups event)."""
    old_users = [e for e in old if e[0] == EVENT]
    old_groups = [e for e in old if e[0] == EVENT + "Groups"]
    assert {e[0] for e in new} <= {EVENT}
    assert Counter((e[0], e[1]) for e in old_users) == Counter((e[0], e[1]) for e in new)
    assert len(old_groups) == sum(1 for e in new if "groups" in e[2])
    for (_n1, c1, req1, resp1), (_n2, c2, req2, resp2) in zip(old_users, new, strict=True):
        assert c1 == c2
        req2 = dict(req2)
        req2.pop("groups", None)
        assert req1 == req2
        assert resp1 == resp2


@pytest.mark.parametrize("seed", range(6))
def test_bulk_page_equals_per_user_operations(engine: ResolutionEngine,
                                              twin: ResolutionEngine, admin: Actor,
                                              clock: FakeClock, seed: int) -> None:
    rng = random.Random(seed)
    old_account = _setup(engine, admin)
    new_account = _setup(twin, admin)
    guids = [f"guid-{n:02d}" for n in range(14)]
    seen: set[str] = set()
    for round_no in range(5):
        for _ in range(2):
            page = _page(rng, guids)
            old = _per_user(engine, old_account, _inputs(engine, old_account, page))
            new = _bulk(twin, new_account, _inputs(twin, new_account, page))
            assert old == new, (round_no, page)
            for outcome in new:
                seen.add(outcome[1] if outcome[0] == "error"
                         else "skipped" if outcome[2] else
                         "created" if outcome[1] else "updated")
        # Between runs: some users leave the directory (then come back in a later page).
        for guid in rng.sample(guids, 2):
            for eng, account in ((engine, old_account), (twin, new_account)):
                uid = _linked_user(eng, account, guid)
                if uid is not None:
                    eng.mark_directory_user_deleted(admin, account, uid)
        clock.advance(minutes=5)
        a, b = _snapshot(engine), _snapshot(twin)
        assert a["users"] == b["users"]
        assert a["groups"] == b["groups"]
        _compare_events(a["events"], b["events"])
    # The random pages did exercise clashes, refusals, creations and updates.
    assert {"skipped", "created", "updated", "Conflict", "ValidationError"} <= seen, seen


def test_bulk_refuses_every_item_without_a_directory(twin: ResolutionEngine,
                                                     admin: Actor) -> None:
    account = enterprise(twin, admin, ["example.com"])
    outcomes = twin.apply_directory_users(
        ACTOR, account.id, AD,
        [DirectoryUserInput("g1", "a@example.com"), DirectoryUserInput("g2", "bad")],
        event_name=EVENT)
    assert [_outcome(o) for o in outcomes] == [("error", "Forbidden"),
                                               ("error", "ValidationError")]
    assert _snapshot(twin)["events"] == [
        (EVENT, "Forbidden",
         {"source": "ad", "externalId": "g1",
          "primaryEmail": "a@example.com", "emails": [], "enabled": True}, {})]


def test_bulk_page_in_its_own_transaction_returns_views(twin: ResolutionEngine,
                                                        admin: Actor) -> None:
    account_id = _setup(twin, admin)
    outcomes = twin.apply_directory_users(
        ACTOR, account_id, AD,
        [DirectoryUserInput("g1", "Ann@Example.com", ["smtp-ignored", "ann2@corp.example",
                                                      "ann@unclaimed.test"],
                            display_name="Ann", groups=["pro-group", "x"]),
         DirectoryUserInput("g2", "ann@example.com", groups=["basic-group"])],
        event_name=EVENT)
    first, second = (o.result for o in outcomes)
    assert first is not None and second is not None
    assert first.created and first.skipped_addresses == ()
    assert first.user.primary_email == "ann@example.com"
    assert first.user.aliases == ("ann2@corp.example",)
    assert first.user.tier is Tier.PRO and first.user.groups == ("pro-group", "x")
    assert second.created and second.skipped_addresses == ("ann@example.com",)
    assert second.user.tier is Tier.BASIC and second.user.aliases == ()
    assert twin.get_user(account_id, first.user.id) == first.user


def test_a_conflicting_bulk_write_falls_back_to_the_per_user_path(
        twin: ResolutionEngine, admin: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A uniqueness conflict in the bulk write (a concurrent writer) rolls the page back to
    its savepoint and applies it user by user: same outcomes, two events per user."""
    account_id = _setup(twin, admin)

    def conflict(self: object, items: object) -> list[DirectoryUserOutcome]:
        raise IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    monkeypatch.setattr(bulk._DirectoryPage, "apply", conflict)
    with twin.single_transaction():
        outcomes = twin.apply_directory_users(
            ACTOR, account_id, AD,
            [DirectoryUserInput("g1", "ann@example.com", groups=["pro-group"]),
             DirectoryUserInput("g2", "boss@example.com"),
             DirectoryUserInput("g3", "ann@example.com", user_id="no-such-user")],
            event_name=EVENT)
    assert [_outcome(o) for o in outcomes] == [
        ("ok", True, ()), ("ok", True, ("boss@example.com",)), ("error", "NotFound")]
    first = outcomes[0].result
    assert first is not None and first.user.tier is Tier.PRO
    names = Counter(e[0] for e in _snapshot(twin)["events"])
    assert names == {EVENT: 3, EVENT + "Groups": 2}
