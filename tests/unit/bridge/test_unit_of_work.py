"""The unit of work: a change and its one event in one transaction; a refusal recorded
once; a write that lost a race run again, recording only its outcome."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bridge.domain import Actor
from bridge.engine import ResolutionEngine
from bridge.errors import StaleVersion
from bridge.store.db import transaction
from bridge.store.models import Account, AuditEvent
from bridge.store.repository import Repository


def _events(engine: ResolutionEngine) -> list[tuple[str, str | None]]:
    with transaction(engine.uow.session_factory) as session:
        return [(e.event_name, e.error_code) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.event_name == "Probe")
            .order_by(AuditEvent.seq))]


def _racy(losses: int) -> Any:
    tries = {"n": 0}

    def work(repo: Repository) -> tuple[str, dict[str, Any]]:
        tries["n"] += 1
        repo.session.add(Account(name=f"try {tries['n']}", name_lower=f"try {tries['n']}",
                                 owner_principal="p"))
        repo.session.flush()
        if tries["n"] <= losses:
            raise StaleVersion("lost a race")
        return "done", {"tries": tries["n"]}

    return work, tries


def _accounts(engine: ResolutionEngine) -> list[str]:
    with transaction(engine.uow.session_factory) as session:
        return sorted(session.scalars(select(Account.name)))


def test_a_race_lost_is_run_again_and_recorded_once(engine: ResolutionEngine,
                                                    admin: Actor) -> None:
    work, tries = _racy(losses=2)
    assert engine.uow.run(admin, "Probe", {}, work, attempts=5) == "done"
    assert tries["n"] == 3
    assert _events(engine) == [("Probe", None)]
    assert _accounts(engine) == ["try 3"]  # the lost tries were rolled back


def test_without_attempts_a_lost_race_is_the_callers_answer(engine: ResolutionEngine,
                                                            admin: Actor) -> None:
    work, tries = _racy(losses=1)
    with pytest.raises(StaleVersion) as raised:
        engine.uow.run(admin, "Probe", {}, work)
    assert raised.value.audited and tries["n"] == 1
    assert _events(engine) == [("Probe", "StaleVersion")]
    assert _accounts(engine) == []


def test_attempts_are_bounded(engine: ResolutionEngine, admin: Actor) -> None:
    work, tries = _racy(losses=10)
    with pytest.raises(StaleVersion):
        engine.uow.run(admin, "Probe", {}, work, attempts=3)
    assert tries["n"] == 3
    assert _events(engine) == [("Probe", "StaleVersion")]
