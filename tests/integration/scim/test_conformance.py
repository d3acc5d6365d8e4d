"""python-scim's conformance checker (``scim2_tester.check_server``) against the live door."""

from __future__ import annotations

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tests.integration.scim.conftest import LiveScim


def test_scim2_tester_reports_no_failure(live_scim: LiveScim) -> None:
    http = httpx2.Client(base_url=live_scim.base_url,
                         headers={"Authorization": f"Bearer {live_scim.key}"}, timeout=30)
    with http:
        results = check_server(SyncSCIMClient(http))
    failed = [r for r in results if r.status not in (Status.SUCCESS, Status.SKIPPED)]
    report = "\n".join(f"{r.status.name} {r.title}: {r.reason}" for r in failed)
    assert not failed, report
    passed = [r for r in results if r.status == Status.SUCCESS]
    assert len(passed) >= 100, f"only {len(passed)} checks ran successfully"
