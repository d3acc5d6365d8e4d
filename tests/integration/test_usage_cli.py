"""``bridge billing export`` and ``bridge usage rollup``, and the roll-up as a named job with
one runner at a time — on both stores."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.app import Services
from bridge.cli import main
from bridge.domain import Actor
from bridge.jobs import JobLeases, JobRunner
from bridge.usage_jobs import CSV_COLUMNS, ROLLUP_JOB, rollup_job
from tests.conftest import TEST_SECRET_KEY, FakeClock
from tests.unit.bridge.usage_builders import SERVICE, meeting, team


@pytest.fixture
def month(services: Services, clock: FakeClock, admin: Actor, store_url: str,
          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BRIDGE_DATABASE_URL", store_url)
    monkeypatch.setenv("BRIDGE_SECRET_KEY", TEST_SECRET_KEY)
    engine = services.engine
    clock.now = datetime(2026, 10, 1, tzinfo=UTC)
    account_id, ids = team(engine, admin, "Team", ["amy@team.test", "bo@team.test"])
    clock.now = datetime(2026, 12, 1, 6, tzinfo=UTC)
    records = [meeting(f"a{d}", "amy@team.test", datetime(2026, 11, d, 9, tzinfo=UTC),
                       scheduled=True) for d in range(1, 8)]
    records.append(meeting("b1", "bo@team.test", datetime(2026, 11, 3, 9, tzinfo=UTC),
                           recordings=1))
    assert all(o.error is None for o in engine.put_usage(SERVICE, records, []))
    return account_id, ids


def test_billing_export_is_reproducible(month: tuple[str, dict[str, str]], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    account_id, ids = month
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["billing", "export", "--month", "2026-11", "-o", str(first)]) == 0
    assert main(["billing", "export", "--month", "2026-11", "--account", account_id,
                 "-o", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    rows = list(csv.DictReader(first.open(encoding="utf-8", newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert sorted((r["primary_email"], r["active_pro_days"], r["charge"], r["currency"])
                  for r in rows) == [("amy@team.test", "7", "15.00", "USD"),
                                     ("bo@team.test", "1", "3.00", "USD")]
    assert {r["user_id"] for r in rows} == set(ids.values())
    capsys.readouterr()
    assert main(["billing", "export", "--month", "2026-11"]) == 0
    assert capsys.readouterr().out.replace("\r\n", "\n") == (
        first.read_bytes().decode().replace("\r\n", "\n"))
    assert main(["billing", "export", "--month", "November"]) == 1


def test_rollup_command_and_job(month: tuple[str, dict[str, str]], services: Services,
                                capsys: pytest.CaptureFixture[str]) -> None:
    account_id, _ids = month
    engine = services.engine
    assert engine.usage_summary(account_id, datetime(2026, 11, 1).date(),
                                datetime(2026, 11, 30).date()).meetings_held == 0
    job = rollup_job(engine, 3600)
    first = JobRunner(job, JobLeases(services.sessions))
    second = JobRunner(job, JobLeases(services.sessions))
    assert first.run_once()  # claims the lease, rolls the seven days up
    assert not second.run_once()  # the next pass is not due: no second runner
    assert engine.rollup.pending_days() == []
    summary = engine.usage_summary(account_id, datetime(2026, 11, 1).date(),
                                   datetime(2026, 11, 30).date())
    assert (summary.meetings_held, summary.active_users) == (8, 2)
    assert [lease.name for lease in JobLeases(services.sessions).list()] == [ROLLUP_JOB]
    assert main(["usage", "rollup"]) == 0
    assert "0 days rolled up" in capsys.readouterr().err
